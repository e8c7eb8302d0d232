package order_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/order"
)

// dueBook is one claimed batch of due orders, all PENDING_PAYMENT, and an
// inventory that answers their releases from answers (by order id), or
// fails the whole call when down; storeDown fails the orders' UPDATE.
type dueBook struct {
	order.ExpiryStock
	entries   []order.DueEntry
	answers   map[int64]error
	down      bool
	storeDown bool
	calls     int
	acked     []int64
	requeued  []int64
	dueAgain  []time.Time // when each requeued entry is due again
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

func (b *dueBook) Requeue(_ context.Context, es []order.DueEntry, at time.Time) error {
	for _, e := range es {
		b.requeued, b.dueAgain = append(b.requeued, e.OrderID), append(b.dueAgain, at)
	}
	return nil
}

func (b *dueBook) EndUnpaid(_ context.Context, ids []int64, _ order.Status, _ time.Time) ([]int64, error) {
	if b.storeDown {
		return nil, errors.New("postgres: connection refused")
	}
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
// its own answer: released or found paid, acknowledged; failed, requeued
// RetryDelay ahead, not left for the lease (30 s) to bring back; and when
// the call, or the orders' UPDATE, fails as a whole, every entry is
// requeued so, none acknowledged.
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
		4: errors.New("inventory: redis timeout"), // retried after RetryDelay
	}}
	now := time.Now()
	retryAt := now.Add(order.DefaultExpiryRetryDelay)
	e := order.NewExpirer(order.ExpirerConfig{Queue: b, Orders: b, Stock: b, Clock: clock.NewManual(now)})
	n, err := e.RunOnce(context.Background())
	if err == nil || n != 4 {
		t.Fatalf("RunOnce = %d, %v; want 4 claimed and the one failure reported", n, err)
	}
	slices.Sort(b.acked)
	if b.calls != 1 || !slices.Equal(b.acked, []int64{1, 2, 3}) || !slices.Equal(b.requeued, []int64{4}) || !b.dueAgain[0].Equal(retryAt) {
		t.Errorf("%d release calls, acked %v, requeued %v at %v; want 1 call, orders 1–3 acked and order 4 requeued at %v",
			b.calls, b.acked, b.requeued, b.dueAgain, retryAt)
	}

	for name, book := range map[string]*dueBook{
		"inventory down": {entries: entries(), down: true},
		"orders down":    {entries: entries(), storeDown: true},
	} {
		e = order.NewExpirer(order.ExpirerConfig{Queue: book, Orders: book, Stock: book, Clock: clock.NewManual(now)})
		_, err := e.RunOnce(context.Background())
		slices.Sort(book.requeued)
		if err == nil || len(book.acked) != 0 || !slices.Equal(book.requeued, []int64{1, 2, 3, 4}) {
			t.Errorf("%s: err %v, acked %v, requeued %v; want every entry requeued, none acked", name, err, book.acked, book.requeued)
		}
		for _, at := range book.dueAgain {
			if !at.Equal(retryAt) {
				t.Errorf("%s: an entry requeued for %v, want %v", name, at, retryAt)
			}
		}
	}
}

// overdueBook is the orders' store as the backstop sees it: flash-sale
// orders waiting for payment past their deadline, and the mark of those
// it expired whose stock is owed.
type overdueBook struct {
	waiting []order.DueEntry
	owed    map[int64]order.DueEntry
}

func (b *overdueBook) OverdueSeckill(_ context.Context, _ time.Time, _ sweep.TimeKey, limit int) ([]order.DueEntry, error) {
	return slices.Clone(b.waiting[:min(limit, len(b.waiting))]), nil
}

func (b *overdueBook) ExpireOverdueSeckill(_ context.Context, ids []int64, _ time.Time) ([]int64, error) {
	var moved []int64
	b.waiting = slices.DeleteFunc(b.waiting, func(d order.DueEntry) bool {
		if !slices.Contains(ids, d.OrderID) {
			return false
		}
		moved = append(moved, d.OrderID)
		b.owed[d.OrderID] = d
		return true
	})
	return moved, nil
}

func (b *overdueBook) SeckillStockDue(_ context.Context, after int64, limit int) ([]order.DueEntry, error) {
	var out []order.DueEntry
	for _, id := range slices.Sorted(maps.Keys(b.owed)) {
		if id > after && len(out) < limit {
			out = append(out, b.owed[id])
		}
	}
	return out, nil
}

func (b *overdueBook) SeckillStockReleased(_ context.Context, ids []int64) error {
	for _, id := range ids {
		delete(b.owed, id)
	}
	return nil
}

// An order the backstop expired while the inventory was down keeps its
// mark, and the next round gives its stock back: before the mark, the
// order was EXPIRED, no longer a candidate, and its unit stayed held.
func TestBackstopRetriesAFailedRelease(t *testing.T) {
	stock := &dueBook{answers: map[int64]error{}, down: true}
	book := &overdueBook{waiting: []order.DueEntry{{ActivityID: 9, OrderID: 5}}, owed: map[int64]order.DueEntry{}}
	e := order.NewExpirer(order.ExpirerConfig{Queue: stock, Orders: stock, Stock: stock, Overdue: book, Clock: clock.NewManual(time.Now())})
	ctx := context.Background()
	if _, err := e.RunBackstopOnce(ctx); err == nil || stock.calls != 1 {
		t.Fatalf("with the inventory down: %v after %d release calls, want the failure reported after one", err, stock.calls)
	}
	if _, ok := book.owed[5]; !ok || len(book.waiting) != 0 {
		t.Fatalf("after a failed release: owed %v, waiting %v; want order 5 expired and owed its stock", book.owed, book.waiting)
	}
	stock.down = false
	if _, err := e.RunBackstopOnce(ctx); err != nil || stock.calls != 2 || len(book.owed) != 0 {
		t.Fatalf("with the inventory back: %v, %d release calls, owed %v; want order 5 released and its mark cleared", err, stock.calls, book.owed)
	}
	if _, err := e.RunBackstopOnce(ctx); err != nil || stock.calls != 2 {
		t.Fatalf("a round with nothing owed: %v, %d release calls; want none more", err, stock.calls)
	}
}
