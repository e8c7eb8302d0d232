package app

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/order"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// lagCollector reports, at scrape time, how many messages of topic the
// consumer group has not committed yet: the number to watch when orders
// stay PROCESSING (see docs/operations.md, "a stuck consumer"). Reading
// it costs three small broker requests per scrape, and every replica
// reports the same group-wide figure.
type lagCollector struct {
	brokers      []string
	group, topic string
	desc         *prometheus.Desc
	failures     prometheus.Counter
}

func newLagCollector(brokers []string, group, topic string) *lagCollector {
	return &lagCollector{
		brokers: brokers, group: group, topic: topic,
		desc: prometheus.NewDesc("order_consumer_lag_messages",
			"Messages of the topic the consumer group has not committed yet.", []string{"group", "topic"}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "order_consumer_lag_errors_total", Help: "Scrapes that could not read the consumer lag from Kafka.",
		}),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.failures.Describe(ch)
}

// Collect leaves the lag out of a scrape when Kafka does not answer in
// time, and counts the failure instead.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lag, err := pkafka.Lag(ctx, c.brokers, c.group, c.topic)
	if err != nil {
		c.failures.Inc()
	} else {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), c.group, c.topic)
	}
	c.failures.Collect(ch)
}

// businessMetrics counts the orders' business facts (order.Observer):
// the counters the "Business" row of the Grafana dashboard and the alert
// rules in deploy/prometheus/alerts.yml read. Each replica counts what it
// did, so the platform's figure is the sum over replicas. Labels stay few:
// kind (seckill, regular), the paying channel, the end state, the
// dead-letter reason and the invariant. Money is int64 cents, exported as
// a counter of cents.
//
// Marked work (a pressure test, platform/shadow) moves a second set of the
// same counters, named with the prefix shadow_ (shadow_order_gmv_cents_total):
// never the real ones, which the dashboard, the alerts and the degrade
// controller sum (docs/pressure-test.md).
type businessMetrics struct {
	real, marked *businessCounters
}

// businessCounters is one traffic class's set of counters.
type businessCounters struct {
	placed, stored *prometheus.CounterVec
	paid, gmv      *prometheus.CounterVec
	expired        *prometheus.CounterVec
	cancelled      *prometheus.CounterVec
	refundedUnits  *prometheus.CounterVec
	refundedCents  *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	violations     *prometheus.CounterVec
	strays         *prometheus.CounterVec
}

// newBusinessMetrics registers the counters on reg. Every series whose
// label values are known up front starts at zero, so its first count
// shows in rate() and increase() (an alert on "any increase" would miss
// a series born at 1).
func newBusinessMetrics(reg prometheus.Registerer) *businessMetrics {
	return &businessMetrics{
		real:   newBusinessCounters(reg),
		marked: newBusinessCounters(prometheus.WrapRegistererWithPrefix(shadow.MetricPrefix, reg)),
	}
}

// of is the counters of ctx's traffic class.
func (m *businessMetrics) of(ctx context.Context) *businessCounters {
	return shadow.Pick(ctx, m.real, m.marked)
}

func newBusinessCounters(reg prometheus.Registerer) *businessCounters {
	m := &businessCounters{
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_orders_placed_total",
			Help: "Orders accepted for the buyer: a flash-sale order published (answered 202), a regular order stored; by kind.",
		}, []string{"kind"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_orders_stored_total",
			Help: "Orders written to Postgres for the first time (flash sale: by the consumer), by kind.",
		}, []string{"kind"}),
		paid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_orders_paid_total", Help: "Orders moved to PAID, by kind and channel.",
		}, []string{"kind", "channel"}),
		gmv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_gmv_cents_total", Help: "Gross merchandise value: cents paid for orders moved to PAID, by kind and channel.",
		}, []string{"kind", "channel"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_orders_expired_total", Help: "Orders moved from PENDING_PAYMENT to EXPIRED, by kind.",
		}, []string{"kind"}),
		cancelled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_orders_cancelled_total", Help: "Orders moved from PENDING_PAYMENT to CANCELLED, by kind.",
		}, []string{"kind"}),
		refundedUnits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_refunded_units_total", Help: "Units of refunds that finished (money returned), by kind.",
		}, []string{"kind"}),
		refundedCents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_refunded_cents_total", Help: "Cents of refunds that finished (money returned), by kind.",
		}, []string{"kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_dead_letters_total",
			Help: "Order events written to the dead-letter topic, by reason (poison, released_unpublished, no_reservation, key_conflict).",
		}, []string{"reason"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_invariant_violations_total",
			Help: "Times the books were found to disagree in a way only a person can settle, by invariant.",
		}, []string{"invariant"}),
		strays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_stray_holds_released_total",
			Help: "Holds (stock, coupon) a regular checkout took for an order it never stored, given back by the expiry worker, by hold.",
		}, []string{"hold"}),
	}
	reg.MustRegister(m.placed, m.stored, m.paid, m.gmv, m.expired, m.cancelled,
		m.refundedUnits, m.refundedCents, m.deadLetters, m.violations, m.strays)
	for _, h := range order.HoldKinds {
		m.strays.WithLabelValues(h)
	}
	for _, k := range order.Kinds {
		for _, c := range []*prometheus.CounterVec{m.placed, m.stored, m.expired, m.cancelled, m.refundedUnits, m.refundedCents} {
			c.WithLabelValues(kind(k))
		}
	}
	for _, r := range orderkafka.DeadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	for _, inv := range order.Invariants {
		m.violations.WithLabelValues(string(inv))
	}
	return m
}

// kind is an order kind as a label value.
func kind(k order.Kind) string { return strings.ToLower(string(k)) }

func (m *businessMetrics) Placed(ctx context.Context, k order.Kind) {
	m.of(ctx).placed.WithLabelValues(kind(k)).Inc()
}

func (m *businessMetrics) Stored(ctx context.Context, k order.Kind, n int) {
	m.of(ctx).stored.WithLabelValues(kind(k)).Add(float64(n))
}

func (m *businessMetrics) Paid(ctx context.Context, k order.Kind, channel string, amount int64) {
	c := m.of(ctx)
	c.paid.WithLabelValues(kind(k), channel).Inc()
	c.gmv.WithLabelValues(kind(k), channel).Add(float64(amount))
}

func (m *businessMetrics) Ended(ctx context.Context, k order.Kind, to order.Status, n int) {
	c := m.of(ctx)
	switch to {
	case order.StatusExpired:
		c.expired.WithLabelValues(kind(k)).Add(float64(n))
	case order.StatusCancelled:
		c.cancelled.WithLabelValues(kind(k)).Add(float64(n))
	}
}

func (m *businessMetrics) Refunded(ctx context.Context, k order.Kind, units, amount int64) {
	c := m.of(ctx)
	c.refundedUnits.WithLabelValues(kind(k)).Add(float64(units))
	c.refundedCents.WithLabelValues(kind(k)).Add(float64(amount))
}

func (m *businessMetrics) DeadLettered(ctx context.Context, reason string, n int) {
	m.of(ctx).deadLetters.WithLabelValues(reason).Add(float64(n))
}

func (m *businessMetrics) Violated(ctx context.Context, inv order.Invariant) {
	m.of(ctx).violations.WithLabelValues(string(inv)).Inc()
}

func (m *businessMetrics) StrayReleased(ctx context.Context, hold string) {
	m.of(ctx).strays.WithLabelValues(hold).Inc()
}
