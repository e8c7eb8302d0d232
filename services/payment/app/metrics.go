package app

// The payment service's Prometheus metrics: paymentMetrics implements
// payment.Observer with counters, and the router's breakers are read at
// scrape time. The Grafana dashboard (deploy/grafana) charts them;
// docs/operations.md says where.

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/payment"
)

// paymentMetrics counts what the payment service settles. Marked work (a
// pressure test, platform/shadow) moves a second set of the same counters
// named with the prefix shadow_, never the real ones (docs/pressure-test.md).
type paymentMetrics struct {
	real, marked *paymentCounters
}

// paymentCounters is one traffic class's set of counters.
type paymentCounters struct {
	payments    *prometheus.CounterVec
	refunds     *prometheus.CounterVec
	callbacks   *prometheus.CounterVec
	differences *prometheus.CounterVec
	queries     prometheus.Counter
	behind      prometheus.Gauge
}

// newPaymentMetrics registers the payment metrics on reg, the breakers
// of router and of stub (the pressure-test stub's, nil without one), and
// returns the observer that moves them. Every channel's payment counters
// start at zero, so the first payment of a channel shows in rate()
// instead of starting the series.
func newPaymentMetrics(reg prometheus.Registerer, router, stub *payment.Router) *paymentMetrics {
	marked := prometheus.WrapRegistererWithPrefix(shadow.MetricPrefix, reg)
	registerBreakers(reg, router)
	if stub != nil {
		// The stub's breakers, which pressure tests pay through, under
		// the shadow_ name.
		registerBreakers(marked, stub)
	}
	return &paymentMetrics{
		real:   newPaymentCounters(reg, router),
		marked: newPaymentCounters(marked, router),
	}
}

// registerBreakers registers the gauge of router's breakers on reg.
func registerBreakers(reg prometheus.Registerer, router *payment.Router) {
	reg.MustRegister(&breakers{
		router: router,
		desc: prometheus.NewDesc("payment_channel_breaker_state",
			"Circuit breaker state per payment channel: 0 closed, 1 half-open, 2 open.", []string{"channel"}, nil),
	})
}

// of is the counters of ctx's traffic class.
func (m *paymentMetrics) of(ctx context.Context) *paymentCounters {
	return shadow.Pick(ctx, m.real, m.marked)
}

func newPaymentCounters(reg prometheus.Registerer, router *payment.Router) *paymentCounters {
	m := &paymentCounters{
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_payments_total",
			Help: "Payments that reached a final state, by channel and status (succeeded, failed).",
		}, []string{"channel", "status"}),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_refunds_total",
			Help: "Refunds the channel confirmed, by channel and reason (buyer, duplicate, late, refused).",
		}, []string{"channel", "reason"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_callbacks_total",
			Help: "Channel callbacks handled, by channel and result (accepted, duplicate, bad_signature...).",
		}, []string{"channel", "result"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_reconcile_differences_total",
			Help: "Differences reconciliation found between a channel's statement and the ledger, by channel and kind " +
				"(repaired, unknown_trade, mismatched, unpaid_at_channel); all but repaired need a human.",
		}, []string{"channel", "kind"}),
		queries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payment_sweep_queries_total",
			Help: "Questions the sweep asked the channels about payments stuck in PAYING.",
		}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payment_sweep_behind_seconds",
			Help: "How long past its time the most overdue question of the last sweep was: " +
				"above a few sweeps, the sweep does not keep up with the payments it has to ask about.",
		}),
	}
	reg.MustRegister(m.payments, m.refunds, m.callbacks, m.differences, m.queries, m.behind)
	for _, st := range router.States() {
		for _, s := range []payment.Status{payment.StatusSucceeded, payment.StatusFailed} {
			m.payments.WithLabelValues(st.Name, status(s))
		}
		for _, d := range payment.Differences {
			m.differences.WithLabelValues(st.Name, string(d))
		}
	}
	return m
}

// status is a ledger state as a label value.
func status(s payment.Status) string { return strings.ToLower(string(s)) }

// Settled counts a payment that reached a final state.
func (m *paymentMetrics) Settled(ctx context.Context, channel string, s payment.Status) {
	m.of(ctx).payments.WithLabelValues(channel, status(s)).Inc()
}

// Refunded counts a refund the channel confirmed.
func (m *paymentMetrics) Refunded(ctx context.Context, channel string, kind payment.RefundKind) {
	m.of(ctx).refunds.WithLabelValues(channel, string(kind)).Inc()
}

// Callback counts a handled callback.
func (m *paymentMetrics) Callback(ctx context.Context, channel string, result payment.CallbackResult) {
	m.of(ctx).callbacks.WithLabelValues(channel, string(result)).Inc()
}

// Reconciled counts differences reconciliation found.
func (m *paymentMetrics) Reconciled(ctx context.Context, channel string, kind payment.Difference, n int) {
	m.of(ctx).differences.WithLabelValues(channel, string(kind)).Add(float64(n))
}

// Swept counts a sweep's questions and sets how far behind it was.
func (m *paymentMetrics) Swept(ctx context.Context, rep payment.SweepReport) {
	c := m.of(ctx)
	c.queries.Add(float64(rep.Queried))
	c.behind.Set(rep.Behind.Seconds())
}

// breakers reports each channel's breaker state when scraped. The router
// holds the breakers and an open one turns half-open by the passing of
// time, not by an event, so reading them at scrape time is what keeps the
// gauge true.
type breakers struct {
	router *payment.Router
	desc   *prometheus.Desc
}

func (b *breakers) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *breakers) Collect(ch chan<- prometheus.Metric) {
	for _, st := range b.router.States() {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, breakerValue[st.Breaker], st.Name)
	}
}

// breakerValue numbers the states as the gateway's
// gateway_circuit_breaker_state does (gobreaker's order), so one
// dashboard panel reads both.
var breakerValue = map[string]float64{
	payment.BreakerClosed:   0,
	payment.BreakerHalfOpen: 1,
	payment.BreakerOpen:     2,
}
