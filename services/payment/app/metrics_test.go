package app_test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/channelsim"
	"github.com/flashsale/flashsale/services/payment/app"
)

// scrape reads the /metrics of the service at admin as Prometheus does.
func scrape(tb testing.TB, admin string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// metric is the value of the payment service's series of name with
// exactly labels, or -1 when there is none.
func (p *platform) metric(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	return metricAt(tb, p.admin, name, labels)
}

// metricAt is metric of the service at admin.
func metricAt(tb testing.TB, admin, name string, labels map[string]string) float64 {
	tb.Helper()
	f, ok := scrape(tb, admin)[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		// An empty label is no label, as Prometheus reads it.
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			if l.GetValue() != "" {
				got[l.GetName()] = l.GetValue()
			}
		}
		if !maps.Equal(got, labels) {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// Payments, refunds and callbacks move the counters the Grafana dashboard
// charts, with the channel and the outcome as labels, and the breakers'
// gauge follows a channel's outage.
func TestMetricsCountPaymentsRefundsAndCallbacks(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.Router.OpenFor = time.Hour })
	series := func(name, k1, v1, k2, v2 string) func() float64 {
		return func() float64 { return p.metric(t, name, map[string]string{k1: v1, k2: v2}) }
	}
	payments := func(channel, status string) func() float64 {
		return series("payment_payments_total", "channel", channel, "status", status)
	}
	refunds := func(channel, reason string) func() float64 {
		return series("payment_refunds_total", "channel", channel, "reason", reason)
	}
	callbacks := func(channel, result string) func() float64 {
		return series("payment_callbacks_total", "channel", channel, "result", result)
	}
	breaker := func(channel string) func() float64 {
		return func() float64 {
			return p.metric(t, "payment_channel_breaker_state", map[string]string{"channel": channel})
		}
	}
	// waitAt waits until the series reaches want; a count past it fails
	// at once, since counters only grow.
	waitAt := func(what string, got func() float64, want float64) {
		t.Helper()
		waitFor(t, what, func() bool {
			v := got()
			if v > want {
				t.Fatalf("%s: %v, want %v", what, v, want)
			}
			return v == want
		})
	}

	if got := payments("wechat", "succeeded")(); got != 0 {
		t.Errorf("payments of wechat before any = %v, want a series at 0", got)
	}
	if got := breaker("unionpay")(); got != 0 {
		t.Errorf("unionpay breaker before any call = %v, want 0 (closed)", got)
	}

	orders := p.MustOrders(t, 8)

	// Every alipay notification arrives twice: one accepted, one a
	// duplicate, one payment succeeded.
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{NotifyDuplicateRate: 1}); err != nil {
		t.Fatal(err)
	}
	p.MustBuyerPays(t, p.MustPay(t, orders[0], "alipay"))
	waitAt("alipay callbacks accepted", callbacks("alipay", "accepted"), 1)
	waitAt("alipay callbacks duplicate", callbacks("alipay", "duplicate"), 1)
	waitAt("alipay payments succeeded", payments("alipay", "succeeded"), 1)
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{}); err != nil {
		t.Fatal(err)
	}

	// A second payment through another channel is refunded as a
	// duplicate.
	first, second := p.MustPay(t, orders[1], "alipay"), p.MustPay(t, orders[1], "unionpay")
	p.MustBuyerPays(t, first)
	waitFor(t, "the order paid", func() bool { return p.orderStatus(t, orders[1]) == paid })
	p.MustBuyerPays(t, second)
	waitAt("unionpay duplicate refunds", refunds("unionpay", "duplicate"), 1)
	waitAt("unionpay payments succeeded", payments("unionpay", "succeeded"), 1)
	waitAt("alipay payments succeeded", payments("alipay", "succeeded"), 2)

	// Money for an expired order is refunded as late.
	late := p.MustPay(t, orders[2], "wechat")
	mustExpire(t, p, orders[2])
	p.MustBuyerPays(t, late)
	waitAt("wechat late refunds", refunds("wechat", "late"), 1)

	// A buyer's refund of a paid regular order.
	user := users.Add(1)
	o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{10_00}, []int64{1})
	if _, err := p.refund(o, user, map[int64]int64{o.GetLines()[0].GetLineId(): 1}); err != nil {
		t.Fatal(err)
	}
	waitAt("wechat buyer refunds", refunds("wechat", "buyer"), 1)

	// Forged and misdirected callbacks.
	ctx := context.Background()
	if _, err := p.payment.HandleCallback(ctx, &paymentv1.CallbackRequest{Channel: "wechat", Body: []byte(`{}`), Signature: "forged"}); err == nil {
		t.Error("a forged callback was accepted")
	}
	if _, err := p.payment.HandleCallback(ctx, &paymentv1.CallbackRequest{Channel: "paypal", Body: []byte(`{}`)}); err == nil {
		t.Error("a callback for an unknown channel was accepted")
	}
	waitAt("wechat bad signatures", callbacks("wechat", "bad_signature"), 1)
	if got := p.metric(t, "payment_callbacks_total", map[string]string{"result": "unknown_channel"}); got != 1 {
		t.Errorf("unknown-channel callbacks = %v, want 1, without the made-up channel as a label", got)
	}

	// unionpay is down: the buyers who prefer it are served by the other
	// channels, each attempt at unionpay fails its payment, and within
	// five attempts its breaker opens (TripCalls calls, half of them
	// failed, counting its earlier success).
	if err := p.sim.SetBehaviour("unionpay", channelsim.Behaviour{Down: true}); err != nil {
		t.Fatal(err)
	}
	for _, o := range orders[3:8] {
		if pay := p.MustPay(t, o, "unionpay"); pay.GetChannel() == "unionpay" {
			t.Fatalf("order %d paid through unionpay during its outage", o.ID)
		}
	}
	// Only this test's orders: the package's tests share the ledger's
	// database, and other tests fail unionpay payments of their own.
	var ids []int64
	for _, o := range orders[3:8] {
		ids = append(ids, o.ID)
	}
	var failed float64
	if err := p.ledger.QueryRow(ctx, `SELECT count(*) FROM payments WHERE channel = 'unionpay' AND status = 'FAILED'
		AND order_id = ANY($1)`, ids).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed == 0 {
		t.Fatal("no unionpay payment failed during its outage")
	}
	waitAt("unionpay payments failed, as many as the ledger holds", payments("unionpay", "failed"), failed)
	if got := breaker("unionpay")(); got != 2 {
		t.Errorf("unionpay breaker = %v, want 2 (open)", got)
	}
	if got := breaker("alipay")(); got != 0 {
		t.Errorf("alipay breaker = %v, want 0 (closed)", got)
	}
}

// The order service's business counters follow a regular order through
// payment and a partial refund: placed and stored once, paid once with
// its amount as GMV, and the refund's units and cents once its money is
// back.
func TestOrderMetricsCountPaymentAndRefund(t *testing.T) {
	p := MustPlatform(t, nil)
	regular := map[string]string{"kind": "regular"}
	read := func(name string, labels map[string]string) func() float64 {
		return func() float64 { return metricAt(t, p.orderAdmin, name, labels) }
	}
	user := users.Add(1)
	o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{10_00, 7_50}, []int64{2, 1})
	paid := map[string]string{"kind": "regular", "channel": "wechat"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"order_orders_placed_total", regular, 1},
		{"order_orders_stored_total", regular, 1},
		{"order_orders_paid_total", paid, 1},
		{"order_gmv_cents_total", paid, 27_50},
		{"order_refunded_units_total", regular, 0},
	} {
		if got := read(c.name, c.labels)(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Two units of the first line come back: 20.00.
	if _, err := p.refund(o, user, map[int64]int64{o.GetLines()[0].GetLineId(): 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refund's cents counted", func() bool { return read("order_refunded_cents_total", regular)() >= 20_00 })
	if got := read("order_refunded_cents_total", regular)(); got != 20_00 {
		t.Errorf("refunded cents = %v, want 2000", got)
	}
	if got := read("order_refunded_units_total", regular)(); got != 2 {
		t.Errorf("refunded units = %v, want 2", got)
	}
	if got := read("order_gmv_cents_total", paid)(); got != 27_50 {
		t.Errorf("GMV after the refund = %v, want 2750 (refunds are counted beside it)", got)
	}
}
