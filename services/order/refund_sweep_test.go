package order_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/order"
)

// refundBook is a refund store holding PENDING refunds, and a channel
// that refuses the refunds of the payments in broken.
type refundBook struct {
	pending   []order.Refund // by id
	succeeded map[int64]bool
	broken    map[int64]bool
}

func (b *refundBook) RecordRefund(context.Context, order.Refund) (order.Refund, order.Order, bool, error) {
	return order.Refund{}, order.Order{}, false, errors.New("not used")
}

func (b *refundBook) RefundByKey(context.Context, int64, int64, string) (order.Refund, error) {
	return order.Refund{}, order.ErrNotFound
}

func (b *refundBook) RefundSucceeded(_ context.Context, refundID int64, _ time.Time) (int64, bool, error) {
	if b.succeeded[refundID] {
		return 0, false, nil
	}
	b.succeeded[refundID] = true
	return 1, true, nil
}

// PendingRefunds pages as the store does, by creation and then id; the
// book's refunds are in that order.
func (b *refundBook) PendingRefunds(_ context.Context, _ time.Time, after sweep.TimeKey, limit int) ([]order.Refund, error) {
	var out []order.Refund
	for _, r := range b.pending {
		later := r.CreatedAt.After(after.At) || (r.CreatedAt.Equal(after.At) && r.ID > after.ID)
		if !b.succeeded[r.ID] && later && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (b *refundBook) Refund(_ context.Context, paymentID, _, _ int64) error {
	if b.broken[paymentID] {
		return errors.New("the channel refuses this trade")
	}
	return nil
}

// TestRefundSweepReachesRefundsBehindFailingOnes: a page's worth of
// refunds the channel keeps refusing (a closed account, a trade under
// dispute) sits at the front of the pending refunds; the sweep still
// finishes every refund behind them, a page per sweep, instead of reading
// the same failing page forever.
func TestRefundSweepReachesRefundsBehindFailingOnes(t *testing.T) {
	const failing, behind = 100, 150
	f := newFakes()
	book := &refundBook{succeeded: map[int64]bool{}, broken: map[int64]bool{}}
	for i := range int64(failing + behind) {
		id := 1 + i
		f.stored[id] = order.Order{ID: id, Kind: order.KindRegular, Status: order.StatusRefunded}
		book.pending = append(book.pending, order.Refund{ID: 10_000 + id, OrderID: id, PaymentID: 20_000 + id, Amount: 100})
		if i < failing {
			book.broken[20_000+id] = true
		}
	}
	svc, _ := MustService(t, f, func(s *setup) { s.refunds, s.payments = book, book })
	finished := 0
	for range 4 { // a pass of pages of 100 over 250 refunds takes 3 sweeps
		n, err := svc.SweepRefunds(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		finished += n
	}
	if finished != behind || len(book.succeeded) != behind {
		t.Fatalf("4 sweeps finished %d refunds (%d marked), want the %d behind the %d failing ones",
			finished, len(book.succeeded), behind, failing)
	}
}

// endedBook is a store of ended regular orders and a catalogue that
// refuses to take back the stock of the orders in broken.
type endedBook struct {
	mu       sync.Mutex
	ended    []int64 // by id
	released map[int64]bool
	broken   map[int64]bool
}

func (b *endedBook) MarkRegularReleased(_ context.Context, ids []int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		b.released[id] = true
	}
	return nil
}

func (b *endedBook) ExpireRegular(context.Context, time.Time, int) ([]int64, error) { return nil, nil }

func (b *endedBook) UnreleasedRegular(_ context.Context, after int64, limit int) ([]order.RegularHold, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []order.RegularHold
	for _, id := range b.ended {
		if !b.released[id] && id > after && len(out) < limit {
			out = append(out, order.RegularHold{OrderID: id})
		}
	}
	return out, nil
}

// Stored answers every order stored: the book holds no stray stock.
func (b *endedBook) Stored(_ context.Context, ids []int64) ([]int64, error) { return ids, nil }

func (b *endedBook) Price(context.Context, int64) (int64, error) { return 0, order.ErrNotFound }

func (b *endedBook) ReserveStock(context.Context, int64, []order.CartLine) error {
	return errors.New("not used")
}

func (b *endedBook) ReleaseStock(_ context.Context, orderID int64) error {
	if b.broken[orderID] {
		return errors.New("the catalogue refuses this order's stock")
	}
	return nil
}

// TestRegularGiveBackReachesOrdersBehindFailingOnes is the same starvation
// for the expiry worker's give-back of ended regular orders.
func TestRegularGiveBackReachesOrdersBehindFailingOnes(t *testing.T) {
	const batch, failing, behind = 10, 10, 25
	book := &endedBook{released: map[int64]bool{}, broken: map[int64]bool{}}
	for id := int64(1); id <= failing+behind; id++ {
		book.ended = append(book.ended, id)
		if id <= failing {
			book.broken[id] = true
		}
	}
	e := order.NewExpirer(order.ExpirerConfig{Regular: book, Catalog: book, Batch: batch, Clock: clock.NewManual(start)})
	for range 4 { // a pass of pages of 10 over 35 orders takes 4 rounds
		_, _ = e.RunRegularOnce(context.Background()) // the failing orders' errors
	}
	if len(book.released) != behind {
		t.Fatalf("4 rounds gave back %d orders, want the %d behind the %d failing ones", len(book.released), behind, failing)
	}
}

// The refund that takes a line's last units returns what the line has
// left, so a line's refunds add up to what it pays even when its earlier
// refunds were priced by another placement of the leftover cents (before
// 2026-12 they all went to the first unit: 9.15 for the first of 5 units
// of 10.00 with 4.17 off, where the rule now says 9.16).
func TestRefundAmountOfTheLastUnitsIsWhatTheLineHasLeft(t *testing.T) {
	l := order.Line{ID: 1, UnitPrice: 10_00, Quantity: 5, Discount: 4_17}
	first, err := order.RefundAmount(l, 0, 1)
	if err != nil || first != 9_16 {
		t.Fatalf("first unit: %d, %v; want 9.16", first, err)
	}
	l.Refunded = 9_15 // refunded under the old rule
	rest, err := order.RefundAmount(l, 1, 4)
	if err != nil || rest != 45_83-9_15 {
		t.Fatalf("the last four units after an old 9.15: %d, %v; want %d, the line's 45.83 in all", rest, err, 45_83-9_15)
	}
	l.Refunded = 45_84 // more than it pays: the books disagree
	if _, err := order.RefundAmount(l, 1, 4); !errors.Is(err, order.ErrConflict) {
		t.Fatalf("a line that returned more than it pays: %v, want ErrConflict", err)
	}
}

// pagedHolds is a lister of holds that answers its pages in turn and
// records the queries it was asked.
type pagedHolds struct {
	pages   [][]sweep.TimeKey
	queries []sweep.AgedQuery
}

func (h *pagedHolds) Holding(_ context.Context, q sweep.AgedQuery) ([]sweep.TimeKey, error) {
	h.queries = append(h.queries, q)
	if len(h.pages) == 0 {
		return nil, nil
	}
	page := h.pages[0]
	h.pages = h.pages[1:]
	return page, nil
}

// strayBook is an orders store that holds no order and fails its
// look-ups while down; its catalogue releases stock and counts the
// releases.
type strayBook struct {
	endedBook
	down     bool
	releases map[int64]int
}

func (b *strayBook) Stored(context.Context, []int64) ([]int64, error) {
	if b.down {
		return nil, errors.New("the orders' store is down")
	}
	return nil, nil
}

func (b *strayBook) ReleaseStock(_ context.Context, orderID int64) error {
	b.releases[orderID]++
	return nil
}

// Only a process's first page of holds starts StrayLookback back: a
// failure that holds the mark longer than that (the orders' store down
// for hours, when checkouts leave the most strays) must not let the
// window's start pass the hold behind it.
func TestStrayHoldsLookBackOnlyOnTheFirstPage(t *testing.T) {
	at := start.Add(-2 * time.Hour)
	first, held := sweep.TimeKey{At: at, ID: 1}, sweep.TimeKey{At: at.Add(time.Second), ID: 2}
	holds := &pagedHolds{pages: [][]sweep.TimeKey{{first}, {held}, {held}}}
	book := &strayBook{releases: map[int64]int{}}
	e := order.NewExpirer(order.ExpirerConfig{Regular: book, Catalog: book, HeldStock: holds, Batch: 10,
		StrayAfter: 10 * time.Minute, StrayLookback: time.Hour, Clock: clock.NewManual(start)})
	ctx := context.Background()
	if _, err := e.RunStrayHoldsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	book.down = true // the next page's look-up fails: the mark stays
	if _, err := e.RunStrayHoldsOnce(ctx); err == nil {
		t.Fatal("a sweep whose look-up failed: no error")
	}
	book.down = false
	if _, err := e.RunStrayHoldsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := []sweep.AgedQuery{
		{OlderThan: 10 * time.Minute, YoungerThan: 70 * time.Minute, Limit: 10},
		{OlderThan: 10 * time.Minute, After: first, Limit: 10},
		{OlderThan: 10 * time.Minute, After: first, Limit: 10},
	}
	if len(holds.queries) != len(want) {
		t.Fatalf("%d pages asked, want %d", len(holds.queries), len(want))
	}
	for i, q := range holds.queries {
		if q != want[i] {
			t.Errorf("page %d asked %+v, want %+v", i, q, want[i])
		}
	}
	if book.releases[1] != 1 || book.releases[2] != 1 {
		t.Fatalf("released %v, want each stray once", book.releases)
	}
}
