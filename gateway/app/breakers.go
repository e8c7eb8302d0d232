package app

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// breakerGauge publishes each downstream's circuit breaker state as
// gateway_circuit_breaker_state{downstream}: 0 closed, 1 half-open, 2
// open (gobreaker's numbering), and logs every transition.
type breakerGauge struct {
	state *prometheus.GaugeVec
	log   *slog.Logger
}

func newBreakerGauge(reg prometheus.Registerer, log *slog.Logger) *breakerGauge {
	b := &breakerGauge{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_circuit_breaker_state",
			Help: "Circuit breaker state per downstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"downstream"}),
		log: log,
	}
	reg.MustRegister(b.state)
	return b
}

// record is the breakers' OnStateChange.
func (b *breakerGauge) record(name string, from, to gobreaker.State) {
	b.state.WithLabelValues(name).Set(float64(to))
	if from != to {
		b.log.Warn("circuit breaker changed state", "downstream", name, "from", from.String(), "to", to.String())
	}
}
