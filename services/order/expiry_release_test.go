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

// dueBook is one claimed batch of due orders, all PENDING_PAYMENT, and an
// inventory that answers their releases from answers (by order id), or
// fails the whole call when down.
type dueBook struct {
	order.ExpiryStock
	entries  []order.DueEntry
	answers  map[int64]error
	down     bool
	calls    int
	acked    []int64
	requeued []int64
}

func (b *dueBook) Claim(context.Context, []int64, time.Time, int, time.Duration) ([]order.DueEntry, error) {
	out := b.entries
	b.entries = nil
	return out, nil
}

func (b *dueBook) Ack(_ context.Context, es []order.DueEntry) error {
	for _, e := range es {
		b.acked = append(b.acked, e.OrderID)
	}
	return nil
}

func (b *dueBook) Requeue(_ context.Context, es []order.DueEntry, _ time.Time) error {
	for _, e := range es {
		b.requeued = append(b.requeued, e.OrderID)
	}
	return nil
}

func (b *dueBook) EndUnpaid(_ context.Context, ids []int64, _ order.Status, _ time.Time) ([]int64, error) {
	return ids, nil
}

func (b *dueBook) Statuses(context.Context, []int64) (map[int64]order.Status, error) {
	return map[int64]order.Status{}, nil
}

func (b *dueBook) ReleaseBatch(_ context.Context, es []order.DueEntry) ([]error, error) {
	b.calls++
	if b.down {
		return nil, errors.New("inventory: connection refused")
	}
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = b.answers[e.OrderID]
	}
	return out, nil
}

// TestExpiredBatchIsReleasedInOneCall: a batch of orders that just
// expired gives its stock back in one call, and each entry is settled by
// its own answer: released or found paid, acknowledged; failed, left
// claimed for the lease to bring back; and when the call fails as a
// whole, every entry is left claimed, none acknowledged.
func TestExpiredBatchIsReleasedInOneCall(t *testing.T) {
	entries := func() []order.DueEntry {
		var es []order.DueEntry
		for id := range int64(4) {
			es = append(es, order.DueEntry{ActivityID: 9, OrderID: 1 + id})
		}
		return es
	}
	b := &dueBook{entries: entries(), answers: map[int64]error{
		3: order.ErrConflict,                      // paid as it expired: the stock stays sold
		4: errors.New("inventory: redis timeout"), // retried when the claim lapses
	}}
	e := order.NewExpirer(order.ExpirerConfig{Queue: b, Orders: b, Stock: b, Clock: clock.NewManual(time.Now())})
	n, err := e.RunOnce(context.Background())
	if err == nil || n != 4 {
		t.Fatalf("RunOnce = %d, %v; want 4 claimed and the one failure reported", n, err)
	}
	slices.Sort(b.acked)
	if b.calls != 1 || !slices.Equal(b.acked, []int64{1, 2, 3}) || len(b.requeued) != 0 {
		t.Errorf("%d release calls, acked %v, requeued %v; want 1 call, orders 1–3 acked and order 4 left claimed",
			b.calls, b.acked, b.requeued)
	}

	down := &dueBook{entries: entries(), down: true}
	e = order.NewExpirer(order.ExpirerConfig{Queue: down, Orders: down, Stock: down, Clock: clock.NewManual(time.Now())})
	if _, err := e.RunOnce(context.Background()); err == nil || len(down.acked) != 0 || len(down.requeued) != 0 {
		t.Errorf("inventory down: err %v, acked %v, requeued %v; want every entry left claimed", err, down.acked, down.requeued)
	}
}
