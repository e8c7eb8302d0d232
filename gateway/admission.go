package gateway

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
)

// AdmissionLimit bounds how many requests of a group of routes one
// gateway replica works on at once. The bound itself moves between Min
// and Max with the latency the routes show (failsafe-go's adaptive
// limiter): it grows while latency stays at its baseline and shrinks
// when latency rises above it, so the replica keeps what it admits fast
// and refuses the rest at once. Max zero turns the limit off.
type AdmissionLimit struct {
	Min, Initial, Max int
}

// Defaults of the admission limits: the seckill route's in-flight bound
// never falls below what this machine's capacity needs (about 3,000 buys
// a second at 10 ms is 30 in flight), so latency that rises for reasons
// fewer buys cannot cure (the refusals themselves and other processes
// taking the CPU) does not shrink admitted throughput below capacity;
// it starts above that and may grow far beyond it on a larger machine.
var (
	DefaultSeckillAdmission = AdmissionLimit{Min: 32, Initial: 64, Max: 2000}
	DefaultWriteAdmission   = AdmissionLimit{Min: 4, Initial: 32, Max: 500}
)

// admissionWindow is how often at most the limit moves: the limiter
// compares the p90 latency of each window of at least admissionSamples
// requests with its baseline.
const (
	admissionWindow  = 250 * time.Millisecond
	admissionSamples = 50
)

// overloadRetryAfter is the Retry-After of a request refused by the
// admission limit: a second is long on the scale of a limit that moves
// every admissionWindow, and the shortest Retry-After says.
const overloadRetryAfter = time.Second

// admission is the adaptive concurrency limit of a group of routes, with
// the guard that keeps what it admits within the call budget.
type admission struct {
	name  string
	lim   adaptivelimiter.AdaptiveLimiter[any]
	guard *budgetGuard
	// admitted and refused count the requests it let in and turned away,
	// for the degrade controller.
	admitted, refused atomic.Int64
}

// counts returns how many requests the limit admitted and refused so far
// (none when it is off).
func (a *admission) counts() (admitted, refused int64) {
	if a == nil {
		return 0, 0
	}
	return a.admitted.Load(), a.refused.Load()
}

// newAdmission returns the limit named name (the label of its gauges),
// nil when l is off, with its limit, in-flight and budget-cap gauges
// registered; budget is the routes' call budget, which the guard keeps
// admitted requests within, timed on c. Its limit changes are logged at
// debug level, and so are its budget guard's.
func newAdmission(name string, l AdmissionLimit, window time.Duration, samples uint, c clock.Clock, budget time.Duration, reg prometheus.Registerer, log *slog.Logger) (*admission, error) {
	if l.Max <= 0 {
		return nil, nil
	}
	if l.Min < 1 || l.Min > l.Initial || l.Initial > l.Max {
		return nil, fmt.Errorf("gateway: admission %s: want 1 <= min <= initial <= max, got %d/%d/%d", name, l.Min, l.Initial, l.Max)
	}
	log = log.With("admission", name)
	a := &admission{name: name, lim: adaptivelimiter.NewBuilder[any]().
		WithLimits(uint(l.Min), uint(l.Max), uint(l.Initial)).
		WithRecentWindow(window, 10*window, samples).
		WithLogger(log).
		Build()}
	a.guard = newBudgetGuard(c, budget, window, l.Min, a.lim.Limit, log)
	labels := prometheus.Labels{"route": name}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_admission_limit", Help: "Requests the route group may have in flight on this replica, as the adaptive limit set it.",
			ConstLabels: labels,
		}, func() float64 { return float64(a.lim.Limit()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_admission_inflight", Help: "Requests of the route group in flight on this replica.",
			ConstLabels: labels,
		}, func() float64 { return float64(a.lim.Inflight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_admission_budget_cap", Help: "Requests the route group may have in flight while its budget guard holds them below the adaptive limit; 0 when the guard is off.",
			ConstLabels: labels,
		}, func() float64 { return float64(a.guard.capped()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register admission metrics: %w", err)
		}
	}
	return a, nil
}

// markedShare is the part of a limit that pressure-test requests may
// fill: a marked request is admitted only while fewer than that many
// requests are in flight, so real buyers always keep the rest, and as the
// limit shrinks under load the pressure test is refused first.
const markedShare = 0.5

// Why enter refused a request, the reason label of
// gateway_admission_refused_total.
const (
	refusedLimit = "limit"
	// refusedYield is a pressure-test request that yielded its place to
	// real traffic.
	refusedYield = "pressure_test"
	// refusedBudget is a request over the budget guard's cap.
	refusedBudget = "budget"
)

// errOverloaded is the answer to a request the limit refused.
func errOverloaded() error {
	return &Error{Code: errcode.Overloaded, Message: "the service is at capacity, retry later", RetryAfter: overloadRetryAfter}
}

// enter takes a place for one request, or refuses it at once (no queue:
// a request that waited would spend its budget waiting and add to the
// latency the limit is there to keep down), saying why: over the budget
// guard's cap, or over the limit. done gives the place back and tells
// the limiter and the guard how long the request took. A marked
// (pressure-test) request yields (markedShare) and is left out of the
// counts the degrade controller reads: a pressure test refused in bulk is
// the test meeting the platform's edge, not a reason to degrade the
// real sale.
func (a *admission) enter(marked bool) (done func(), refusal string, err error) {
	if a == nil {
		return func() {}, "", nil
	}
	if marked && float64(a.lim.Inflight()) >= markedShare*float64(a.lim.Limit()) {
		return nil, refusedYield, errOverloaded()
	}
	refusal = refusedBudget
	var p adaptivelimiter.Permit
	ok := a.guard.admits(a.lim.Inflight())
	if ok {
		refusal = refusedLimit
		p, ok = a.lim.TryAcquirePermit()
	}
	switch {
	case marked: // the degrade controller counts real traffic only
	case ok:
		a.admitted.Add(1)
	default:
		a.refused.Add(1)
	}
	if !ok {
		return nil, refusal, errOverloaded()
	}
	start := a.guard.clock.Now()
	slot := a.guard.started(start)
	return func() {
		p.Record()
		a.guard.left(slot)
		a.guard.answered(a.guard.clock.Now().Sub(start))
	}, "", nil
}
