package app

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// breakerGauge publishes each downstream's circuit breaker state as
// gateway_circuit_breaker_state{downstream}: 0 closed, 1 half-open, 2
// open (gobreaker's numbering), and logs every transition.
type breakerGauge struct {
	state *prometheus.GaugeVec
	log   *slog.Logger

	mu     sync.Mutex
	isOpen map[string]bool
}

func newBreakerGauge(reg prometheus.Registerer, log *slog.Logger) *breakerGauge {
	b := &breakerGauge{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_circuit_breaker_state",
			Help: "Circuit breaker state per downstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"downstream"}),
		log:    log,
		isOpen: map[string]bool{},
	}
	reg.MustRegister(b.state)
	return b
}

// record is the breakers' OnStateChange.
func (b *breakerGauge) record(name string, from, to gobreaker.State) {
	b.state.WithLabelValues(name).Set(float64(to))
	b.mu.Lock()
	b.isOpen[name] = to == gobreaker.StateOpen
	b.mu.Unlock()
	if from != to {
		b.log.Warn("circuit breaker changed state", "downstream", name, "from", from.String(), "to", to.String())
	}
}

// open counts the downstreams whose breaker is open now (the degrade
// controller's signal).
func (b *breakerGauge) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, o := range b.isOpen {
		if o {
			n++
		}
	}
	return n
}
