package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/flashsale/flashsale/platform/clock"
)

// DefaultAccessLogRate is how many ordinary access-log lines a replica
// writes a second at most (Options.AccessLogRate).
const DefaultAccessLogRate = 100

// accessLog decides which answered requests the access log writes. A
// line per request is a JSON encoding and a write on the request's own
// goroutine: at a spike's thousands of requests a second on one replica
// it costs more than many a request's own work, and the lines say
// nothing the metrics do not. So the log keeps every line that needs
// reading (a 5xx, or a request slower than half the call budget) and, of
// the ordinary ones, at most rate a second (a token bucket: quiet hours
// log every request, a spike a steady sample); the ones it leaves out
// are counted in gateway_access_log_dropped_total.
type accessLog struct {
	log     *slog.Logger
	clock   clock.Clock
	sample  *rate.Limiter // nil: every request
	slow    time.Duration
	dropped prometheus.Counter
}

func newAccessLog(log *slog.Logger, c clock.Clock, perSecond float64, callBudget time.Duration, reg prometheus.Registerer) (*accessLog, error) {
	a := &accessLog{log: log, clock: c, slow: callBudget / 2, dropped: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_access_log_dropped_total", Help: "Ordinary access-log lines left out past FLASHSALE_ACCESS_LOG_RATE a second (5xx and slow requests are always written).",
	})}
	if perSecond > 0 {
		a.sample = rate.NewLimiter(rate.Limit(perSecond), max(int(perSecond), 1))
	}
	if err := reg.Register(a.dropped); err != nil {
		return nil, err
	}
	return a, nil
}

// write logs one answered request at level, unless the level is off or
// the sample leaves an ordinary line out; attrs builds the line only when
// it is written.
func (a *accessLog) write(ctx context.Context, level slog.Level, status int, took time.Duration, attrs func() []slog.Attr) {
	if !a.log.Enabled(ctx, level) {
		return
	}
	if status < 500 && took <= a.slow && a.sample != nil && !a.sample.AllowN(a.clock.Now(), 1) {
		a.dropped.Inc()
		return
	}
	a.log.LogAttrs(ctx, level, "http request", attrs()...)
}
