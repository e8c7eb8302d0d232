package app

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/payment"
)

// A pressure test's payments move the shadow_ counters only, never the
// real channels' success figures the alerts watch.
func TestMarkedPaymentsCountApartFromRealOnes(t *testing.T) {
	router, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newPaymentMetrics(reg, router, nil)
	real, marked := context.Background(), shadow.With(context.Background())
	m.Settled(real, "alipay", payment.StatusSucceeded)
	m.Settled(marked, "alipay", payment.StatusFailed)
	m.Settled(marked, "alipay", payment.StatusFailed)
	m.Refunded(marked, "alipay", payment.RefundBuyer)

	failed := []string{"alipay", "failed"}
	if got := testutil.ToFloat64(m.real.payments.WithLabelValues(failed...)); got != 0 {
		t.Errorf("real failed payments = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.marked.payments.WithLabelValues(failed...)); got != 2 {
		t.Errorf("shadow failed payments = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.real.payments.WithLabelValues("alipay", "succeeded")); got != 1 {
		t.Errorf("real succeeded payments = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.real.refunds.WithLabelValues("alipay", string(payment.RefundBuyer))); got != 0 {
		t.Errorf("real refunds = %v, want 0", got)
	}
	// One breaker gauge (the channels are shared), and the shadow
	// counters under their own names.
	if n, err := testutil.GatherAndCount(reg, "payment_channel_breaker_state", "shadow_payment_payments_total"); err != nil || n != 3 {
		t.Errorf("gathered = %d, %v; want 1 breaker and 2 shadow payment series", n, err)
	}
}

// With a stub of the channels, its breakers (which pressure tests pay
// through) have a gauge of their own under the shadow_ name, beside the
// live channels'.
func TestStubBreakersAreGaugedApart(t *testing.T) {
	live, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay", "wechat"}})
	if err != nil {
		t.Fatal(err)
	}
	stub, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay", "wechat"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	newPaymentMetrics(reg, live, stub)
	for name, want := range map[string]int{"payment_channel_breaker_state": 2, "shadow_payment_channel_breaker_state": 2} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series, %v; want %d", name, n, err, want)
		}
	}
}
