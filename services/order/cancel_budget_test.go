package order_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/order"
)

// endUnpaid moves the fakes' stored orders as the order store does.
type endUnpaid struct{ *fakes }

func (e endUnpaid) EndUnpaid(_ context.Context, ids []int64, to order.Status, _ time.Time) ([]int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var moved []int64
	for _, id := range ids {
		if o, ok := e.stored[id]; ok && o.Status == order.StatusPendingPayment {
			o.Status = to
			e.stored[id] = o
			moved = append(moved, id)
		}
	}
	return moved, nil
}

func (endUnpaid) Statuses(context.Context, []int64) (map[int64]order.Status, error) { return nil, nil }

// stalledInventory never answers a release in time: it notes the
// deadline it was given and fails as a call that ran out of it does.
type stalledInventory struct {
	deadline time.Time
	bounded  bool
}

func (s *stalledInventory) Release(ctx context.Context, _, _ int64) error {
	s.deadline, s.bounded = ctx.Deadline()
	return context.DeadlineExceeded
}

// TestCancelAnswersWithinTheCallersBudget: once the cancel is committed,
// giving the stock back may take only its share of the time the caller
// gave the request, so a stalled inventory costs the buyer nothing (the
// expiry worker releases the stock at the deadline) and the answer,
// CANCELLED, is sent while the caller still waits for it.
func TestCancelAnswersWithinTheCallersBudget(t *testing.T) {
	f := newFakes()
	f.stored[42] = order.Order{ID: 42, UserID: 1, ActivityID: 7, Kind: order.KindSeckill, Status: order.StatusPendingPayment}
	inv := &stalledInventory{}
	c := order.NewCancelling(order.CancellingConfig{
		Lookup: order.NewLookup(f, f), Transitions: endUnpaid{f}, Releaser: inv, Clock: clock.NewManual(start),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	o, err := c.CancelOrder(ctx, 42, 1)
	if err != nil || o.Status != order.StatusCancelled {
		t.Fatalf("cancel with a stalled inventory: %+v, %v; want CANCELLED", o, err)
	}
	caller, _ := ctx.Deadline()
	if !inv.bounded || !inv.deadline.Before(caller.Add(-10*time.Minute)) {
		t.Errorf("the release was given until %s (bounded %t); the caller waits until %s and keeps a share of it for the answer",
			inv.deadline, inv.bounded, caller)
	}
}
