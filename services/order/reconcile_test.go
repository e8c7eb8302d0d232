package order_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/order"
)

// fencedInventory fences the sales in fenced and records the rebuilds; a
// rebuilt sale is live again.
type fencedInventory struct {
	fenced   []int64
	rebuilds []order.StockRebuild
	// fail, when set, fails the next rebuild (the sale stays fenced).
	fail error
}

func (f *fencedInventory) Fenced(context.Context) ([]int64, error) {
	return slices.Clone(f.fenced), nil
}

func (f *fencedInventory) RebuildStock(_ context.Context, r order.StockRebuild) (order.RebuildOutcome, error) {
	f.rebuilds = append(f.rebuilds, r)
	if err := f.fail; err != nil {
		f.fail = nil
		return order.RebuildOutcome{}, err
	}
	f.fenced = slices.DeleteFunc(f.fenced, func(id int64) bool { return id == r.ActivityID })
	return order.RebuildOutcome{Rebuilt: true}, nil
}

type heldOrders []order.HeldOrder

func (h heldOrders) SeckillHoldings(context.Context, int64) ([]order.HeldOrder, error) { return h, nil }

// lags answers its values in turn, then the last one for ever.
type lags struct{ values []int64 }

func (l *lags) InFlight(context.Context) (int64, error) {
	v := l.values[0]
	if len(l.values) > 1 {
		l.values = l.values[1:]
	}
	return v, nil
}

type saleStock struct{}

func (saleStock) Activity(_ context.Context, id int64) (order.Activity, error) {
	return order.Activity{ID: id, Stock: 30, PerUserLimit: 2}, nil
}

// A fenced sale is rebuilt only once it has been fenced for Settle (a buy
// whose reservation Redis lost has published by then) and the consumer
// has stored every published order; and with the sale's total, limit and
// stored orders.
func TestReconcilerWaitsForSettleAndForOrdersInFlight(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	inv := &fencedInventory{fenced: []int64{7}}
	held := heldOrders{{OrderID: 1, UserID: 2, Quantity: 1, Status: order.ReservationReserved, IdempotencyKey: "k", ExpiresAt: clk.Now()}}
	lag := &lags{values: []int64{3, 0}}
	const settle = 5 * time.Second
	r := order.NewStockReconciler(order.ReconcilerConfig{Inventory: inv, Orders: held, Consumer: lag,
		Activities: saleStock{}, Clock: clk, Settle: settle})

	if got, err := r.RunOnce(ctx); err != nil || got != nil || len(inv.rebuilds) != 0 {
		t.Fatalf("first sight: rebuilt %v, %v, %d calls; want nothing yet", got, err, len(inv.rebuilds))
	}
	clk.Advance(settle - time.Millisecond)
	if got, err := r.RunOnce(ctx); err != nil || got != nil || len(inv.rebuilds) != 0 {
		t.Fatalf("before Settle: rebuilt %v, %v; want nothing yet", got, err)
	}
	clk.Advance(time.Millisecond)
	if got, err := r.RunOnce(ctx); !errors.Is(err, order.ErrOrdersInFlight) || got != nil || len(inv.rebuilds) != 0 {
		t.Fatalf("with 3 orders in flight: rebuilt %v, %v; want ErrOrdersInFlight and no rebuild", got, err)
	}
	got, err := r.RunOnce(ctx)
	if err != nil || !slices.Equal(got, []int64{7}) || len(inv.rebuilds) != 1 {
		t.Fatalf("settled, nothing in flight: rebuilt %v, %v; want [7]", got, err)
	}
	if b := inv.rebuilds[0]; b.ActivityID != 7 || b.Total != 30 || b.PerUserLimit != 2 || !slices.Equal(b.Orders, []order.HeldOrder(held)) {
		t.Fatalf("rebuild %+v, want sale 7, total 30, limit 2 and its stored orders", b)
	}

	// Fenced again later (another restart): timed afresh.
	inv.fenced = []int64{7}
	if got, err := r.RunOnce(ctx); err != nil || got != nil {
		t.Fatalf("fenced again: rebuilt %v, %v; want nothing before a new Settle", got, err)
	}
	clk.Advance(settle)
	if got, err := r.RunOnce(ctx); err != nil || !slices.Equal(got, []int64{7}) {
		t.Fatalf("fenced again, settled: rebuilt %v, %v; want [7]", got, err)
	}
}

// A rebuild that failed may have made some of a bucketed sale's buckets
// live, and they sell at once: the next try waits a whole Settle again
// for those placements, as after any fence.
func TestReconcilerWaitsAfreshAfterAFailedRebuild(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	inv := &fencedInventory{fenced: []int64{7}, fail: errors.New("bucket 2 of 4: connection reset")}
	const settle = order.DefaultReconcileSettle
	r := order.NewStockReconciler(order.ReconcilerConfig{Inventory: inv, Orders: heldOrders{}, Consumer: &lags{values: []int64{0}},
		Activities: saleStock{}, Clock: clk, Settle: settle})
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(settle)
	if got, err := r.RunOnce(ctx); err == nil || got != nil || len(inv.rebuilds) != 1 {
		t.Fatalf("settled, rebuild failing: rebuilt %v, %v after %d tries; want the failure", got, err, len(inv.rebuilds))
	}
	// The next round finds it fenced and times it from there.
	for _, wait := range []time.Duration{0, settle - time.Millisecond} {
		clk.Advance(wait)
		if got, err := r.RunOnce(ctx); err != nil || got != nil || len(inv.rebuilds) != 1 {
			t.Fatalf("%s after the failed rebuild: rebuilt %v, %v after %d tries; want no try before a new Settle", wait, got, err, len(inv.rebuilds))
		}
	}
	clk.Advance(time.Millisecond)
	if got, err := r.RunOnce(ctx); err != nil || !slices.Equal(got, []int64{7}) {
		t.Fatalf("a Settle after the failed rebuild: rebuilt %v, %v; want [7]", got, err)
	}
}
