package app

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/order"
)

// Marked work (a pressure test) moves the shadow_ counters only: the
// real sales' GMV and counts, which the dashboard, the alerts and the
// big screen's checks read, never see it.
func TestMarkedWorkCountsApartFromRealSales(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newBusinessMetrics(reg)
	real, marked := context.Background(), shadow.With(context.Background())
	m.Paid(real, order.KindSeckill, "alipay", 100)
	m.Paid(marked, order.KindSeckill, "alipay", 7_00)
	m.Paid(marked, order.KindSeckill, "alipay", 7_00)
	m.Placed(marked, order.KindSeckill)
	m.Ended(marked, order.KindSeckill, order.StatusExpired, 3)
	m.Violated(marked, order.InvariantPaidUnconfirmed)

	for _, c := range []struct {
		name       string
		labels     []string
		real, mark float64
	}{
		{"gmv", []string{"seckill", "alipay"}, 100, 14_00},
		{"placed", []string{"seckill"}, 0, 1},
		{"expired", []string{"seckill"}, 0, 3},
		{"violations", []string{string(order.InvariantPaidUnconfirmed)}, 0, 1},
	} {
		pick := func(b *businessCounters) *prometheus.CounterVec {
			return map[string]*prometheus.CounterVec{"gmv": b.gmv, "placed": b.placed, "expired": b.expired, "violations": b.violations}[c.name]
		}
		if got := testutil.ToFloat64(pick(m.real).WithLabelValues(c.labels...)); got != c.real {
			t.Errorf("real %s = %v, want %v", c.name, got, c.real)
		}
		if got := testutil.ToFloat64(pick(m.marked).WithLabelValues(c.labels...)); got != c.mark {
			t.Errorf("shadow %s = %v, want %v", c.name, got, c.mark)
		}
	}
	// The shadow counters are exported under their own names.
	if n, err := testutil.GatherAndCount(reg, "order_gmv_cents_total", "shadow_order_gmv_cents_total"); err != nil || n != 2 {
		t.Errorf("gathered GMV series = %d, %v; want one real and one shadow", n, err)
	}
}
