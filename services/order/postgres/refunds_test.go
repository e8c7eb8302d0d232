package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/postgres"
)

// MustPaidOrder stores a regular order of user with lines (quantity, unit
// price, discount) and marks it paid; it returns the stored order.
func MustPaidOrder(tb testing.TB, s *postgres.Store, user int64, lines ...[3]int64) order.Order {
	tb.Helper()
	ctx := context.Background()
	o := MustPendingOrder(tb, s, user, lines...)
	id := o.ID
	pay := order.Paid{OrderID: id, PaymentID: id + 999, Channel: "alipay", Amount: o.Payable, PaidAt: created}
	paid, moved, err := s.MarkPaid(ctx, pay)
	if err != nil || paid.Status != order.StatusPaid || !moved {
		tb.Fatalf("mark paid: %v, moved %v, %v", paid.Status, moved, err)
	}
	// A retry finds the order PAID and moves nothing: the paid counter
	// and GMV count each order once.
	if again, moved, err := s.MarkPaid(ctx, pay); err != nil || again.Status != order.StatusPaid || moved {
		tb.Fatalf("mark paid again: %v, moved %v, %v; want PAID, not moved", again.Status, moved, err)
	}
	return paid
}

// MustPendingOrder stores a regular order of user with lines (quantity,
// unit price, discount), pending payment.
func MustPendingOrder(tb testing.TB, s *postgres.Store, user int64, lines ...[3]int64) order.Order {
	tb.Helper()
	id := nextID.Add(1000)
	o := order.Order{ID: id, UserID: user, Kind: order.KindRegular, Status: order.StatusPendingPayment,
		IdempotencyKey: "refund-" + time.Unix(0, id).String(), CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
	for i, l := range lines {
		amount := l[0] * l[1]
		o.Lines = append(o.Lines, order.Line{ID: id + int64(i) + 1, SKUID: int64(i) + 1, Quantity: l[0], UnitPrice: l[1],
			Amount: amount, Discount: l[2], Payable: amount - l[2]})
		o.Total += amount
		o.Discount += l[2]
		o.Payable += amount - l[2]
	}
	if o.Discount > 0 {
		o.Promotions = []order.Promotion{{ID: 1, Kind: "COUPON", Amount: o.Discount}}
	}
	if _, _, err := s.InsertRegular(context.Background(), o); err != nil {
		tb.Fatal(err)
	}
	return o
}

// refundOf is a refund of the order's lines under a key of its own.
func refundOf(o order.Order, lines ...order.RefundLine) order.Refund {
	id := nextID.Add(1)
	return order.Refund{ID: id, OrderID: o.ID, UserID: o.UserID, IdempotencyKey: "key-" + strconv.FormatInt(id, 10), Lines: lines, CreatedAt: created}
}

func TestRecordRefundAmountsComeFromTheApportionment(t *testing.T) {
	s := postgres.NewStore(MustPool(t))
	ctx := context.Background()
	// 3 × 10.00 with 1.00 off: unit discounts 0.34, 0.33, 0.33. 1 × 50.00
	// with 4.17 off.
	o := MustPaidOrder(t, s, 1, [3]int64{3, 1000, 100}, [3]int64{1, 5000, 417})
	mugs, vase := o.Lines[0], o.Lines[1]
	steps := []struct {
		name          string
		lines         []order.RefundLine
		wantAmounts   []int64
		wantStatus    order.Status
		wantCompletes bool
	}{
		{"one of three mugs", []order.RefundLine{{LineID: mugs.ID, Quantity: 1}}, []int64{966}, order.StatusPartiallyRefunded, false},
		{"the other two", []order.RefundLine{{LineID: mugs.ID, Quantity: 2}}, []int64{1934}, order.StatusPartiallyRefunded, false},
		{"the vase", []order.RefundLine{{LineID: vase.ID, Quantity: 1}}, []int64{4583}, order.StatusRefunded, true},
	}
	var sum int64
	for _, st := range steps {
		r, after, fresh, err := s.RecordRefund(ctx, refundOf(o, st.lines...))
		if err != nil || !fresh {
			t.Fatalf("%s: recorded a new refund %v, %v", st.name, fresh, err)
		}
		var got []int64
		for _, l := range r.Lines {
			got = append(got, l.Amount)
		}
		if len(got) != len(st.wantAmounts) || got[0] != st.wantAmounts[0] || r.Amount != st.wantAmounts[0] {
			t.Errorf("%s: amounts %v (refund %d), want %v", st.name, got, r.Amount, st.wantAmounts)
		}
		if after.Status != st.wantStatus || r.Completes != st.wantCompletes || r.Status != order.RefundPending || r.PaymentID != o.PaymentID {
			t.Errorf("%s: order %s, refund %+v; want order %s, completes %v, PENDING through payment %d",
				st.name, after.Status, r, st.wantStatus, st.wantCompletes, o.PaymentID)
		}
		sum += r.Amount
	}
	after, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sum != o.Payable || after.Refunded != o.Payable {
		t.Errorf("refunds add up to %d, order refunded %d; want the payable %d", sum, after.Refunded, o.Payable)
	}
	for _, l := range after.Lines {
		if l.RefundedQuantity != l.Quantity || l.Refunded != l.Payable {
			t.Errorf("line %d: refunded %d units for %d, want %d for %d", l.ID, l.RefundedQuantity, l.Refunded, l.Quantity, l.Payable)
		}
	}
	refunds, err := s.Refunds(ctx, o.ID)
	if err != nil || len(refunds) != 3 {
		t.Fatalf("refunds of the order: %d, %v; want 3", len(refunds), err)
	}
	pending, err := s.PendingRefunds(ctx, created, sweep.TimeKey{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !containsRefund(pending, refunds[0].ID) {
		t.Errorf("pending refunds do not hold refund %d", refunds[0].ID)
	}
	var units int64
	for _, l := range refunds[0].Lines {
		units += l.Quantity
	}
	if got, moved, err := s.RefundSucceeded(ctx, refunds[0].ID, created); err != nil || !moved || got != units {
		t.Fatalf("refund succeeded: %d units, moved %v, %v; want %d units, moved", got, moved, err, units)
	}
	if got, moved, err := s.RefundSucceeded(ctx, refunds[0].ID, created); err != nil || moved || got != 0 {
		t.Errorf("refund succeeded again: %d units, moved %v, %v; want nothing moved", got, moved, err)
	}
	if pending, _ = s.PendingRefunds(ctx, created, sweep.TimeKey{}, 1000); containsRefund(pending, refunds[0].ID) {
		t.Errorf("refund %d still pending after it succeeded", refunds[0].ID)
	}
}

func containsRefund(rs []order.Refund, id int64) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}

func TestRecordRefundRefusalsChangeNothing(t *testing.T) {
	s := postgres.NewStore(MustPool(t))
	ctx := context.Background()
	o := MustPaidOrder(t, s, 2, [3]int64{3, 1000, 100}, [3]int64{1, 5000, 0})
	if _, _, _, err := s.RecordRefund(ctx, refundOf(o, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	before, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	unpaid := placed(2, 100, 1).Order(order.StatusPendingPayment)
	if _, _, err := s.Insert(ctx, []order.Order{unpaid}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		r     order.Refund
		order int64
	}{
		{"more units than are left", refundOf(o, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 2}), o.ID},
		{"a good line with an over-refunded one", refundOf(o,
			order.RefundLine{LineID: o.Lines[1].ID, Quantity: 1}, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 3}), o.ID},
		{"a line of another order", refundOf(o, order.RefundLine{LineID: unpaid.Lines[0].ID, Quantity: 1}), o.ID},
		{"someone else's order", func() order.Refund {
			r := refundOf(o, order.RefundLine{LineID: o.Lines[1].ID, Quantity: 1})
			r.UserID = 3
			return r
		}(), o.ID},
		{"an unpaid order", refundOf(unpaid, order.RefundLine{LineID: unpaid.Lines[0].ID, Quantity: 1}), unpaid.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := s.RecordRefund(ctx, tt.r); !errors.Is(err, order.ErrConflict) {
				t.Errorf("record: %v, want ErrConflict", err)
			}
		})
	}
	after, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != before.Status || after.Refunded != before.Refunded ||
		after.Lines[0].RefundedQuantity != 2 || after.Lines[1].RefundedQuantity != 0 || after.Lines[0].Refunded != before.Lines[0].Refunded {
		t.Errorf("after refusals: %+v, want unchanged %+v", after, before)
	}
	if refunds, _ := s.Refunds(ctx, o.ID); len(refunds) != 1 {
		t.Errorf("%d refunds stored, want the first one only", len(refunds))
	}
}

func TestConcurrentRefundsNeverExceedTheLine(t *testing.T) {
	s := postgres.NewStore(MustPool(t))
	ctx := context.Background()
	// 10 × 9.99 with 7.77 off, and a second line refunded in between.
	o := MustPaidOrder(t, s, 4, [3]int64{10, 999, 777}, [3]int64{2, 500, 0})
	var mu sync.Mutex
	var won []order.Refund
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			line := o.Lines[0]
			if i%10 == 9 {
				line = o.Lines[1]
			}
			r, _, _, err := s.RecordRefund(ctx, refundOf(o, order.RefundLine{LineID: line.ID, Quantity: 1}))
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, r)
				mu.Unlock()
			case !errors.Is(err, order.ErrConflict):
				t.Errorf("refund: %v", err)
			}
		})
	}
	wg.Wait()
	var sum, completes int64
	for _, r := range won {
		sum += r.Amount
		if r.Completes {
			completes++
		}
	}
	after, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(won) != 12 || sum != o.Payable || completes != 1 || after.Status != order.StatusRefunded || after.Refunded != o.Payable {
		t.Errorf("%d refunds for %d (%d completing), order %s refunded %d; want 12 for %d, one completing, REFUNDED",
			len(won), sum, completes, after.Status, after.Refunded, o.Payable)
	}
	if l := after.Lines[0]; l.RefundedQuantity != l.Quantity || l.Refunded != l.Payable {
		t.Errorf("line refunded %d units for %d, want %d for %d", l.RefundedQuantity, l.Refunded, l.Quantity, l.Payable)
	}
}

// TestRecordRefundKeyNamesOneRefund repeats refunds under one key: the
// repeat records nothing and returns the first refund, also once the
// first refund left the order nothing to refund; the key belongs to its
// order and buyer; and it is read from the table by another process.
func TestRecordRefundKeyNamesOneRefund(t *testing.T) {
	s := postgres.NewStore(MustPool(t))
	ctx := context.Background()
	o := MustPaidOrder(t, s, 5, [3]int64{3, 1000, 100})
	line := order.RefundLine{LineID: o.Lines[0].ID, Quantity: 1}
	first, _, fresh, err := s.RecordRefund(ctx, refundOf(o, line))
	if err != nil || !fresh {
		t.Fatalf("first refund: recorded a new refund %v, %v", fresh, err)
	}
	repeat := func(r order.Refund, lines ...order.RefundLine) order.Refund {
		t.Helper()
		again := refundOf(o, lines...)
		again.IdempotencyKey = r.IdempotencyKey
		got, after, fresh, err := s.RecordRefund(ctx, again)
		if err != nil || fresh || got.ID != r.ID || got.Amount != r.Amount || len(got.Lines) != len(r.Lines) || got.Lines[0] != r.Lines[0] {
			t.Fatalf("repeat of refund %d: %+v, recorded a new refund %v, %v; want the first refund", r.ID, got, fresh, err)
		}
		if after.ID != o.ID {
			t.Fatalf("repeat answered order %d, want %d", after.ID, o.ID)
		}
		return got
	}
	repeat(first, line)

	// The last two units: the order is REFUNDED and a repeat of either
	// refund still finds its refund, not a CONFLICT.
	last, _, _, err := s.RecordRefund(ctx, refundOf(o, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 2}))
	if err != nil {
		t.Fatal(err)
	}
	repeat(last, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 2})
	repeat(first, line)
	after, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != order.StatusRefunded || after.Lines[0].RefundedQuantity != 3 || after.Refunded != o.Payable {
		t.Errorf("order %s with %d units refunded for %d, want REFUNDED, 3 units, %d", after.Status,
			after.Lines[0].RefundedQuantity, after.Refunded, o.Payable)
	}
	if refunds, _ := s.Refunds(ctx, o.ID); len(refunds) != 2 {
		t.Errorf("%d refunds stored, want 2", len(refunds))
	}

	// Another buyer's key never names this order's refund.
	if _, err := s.RefundByKey(ctx, o.ID, o.UserID+1, first.IdempotencyKey); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("refund by key for another buyer: %v, want ErrNotFound", err)
	}
	stranger := refundOf(o, line)
	stranger.UserID, stranger.IdempotencyKey = o.UserID+1, first.IdempotencyKey
	if _, _, _, err := s.RecordRefund(ctx, stranger); !errors.Is(err, order.ErrConflict) {
		t.Errorf("another buyer's refund under the key: %v, want ErrConflict", err)
	}
	// A restarted service reads the key from the table.
	restarted := postgres.NewStore(MustPool(t))
	got, err := restarted.RefundByKey(ctx, o.ID, o.UserID, first.IdempotencyKey)
	if err != nil || got.ID != first.ID || got.Status != order.RefundPending || got.Lines[0] != first.Lines[0] {
		t.Errorf("refund by key after a restart: %+v, %v; want refund %d", got, err, first.ID)
	}
}

// TestConcurrentRefundsWithOneKeyRecordOne sends one refund many times at
// once under one key: one is recorded, every copy answers it, and the
// line is refunded once.
func TestConcurrentRefundsWithOneKeyRecordOne(t *testing.T) {
	s := postgres.NewStore(MustPool(t))
	ctx := context.Background()
	o := MustPaidOrder(t, s, 6, [3]int64{10, 999, 777})
	const copies = 20
	key := "double-click"
	var recorded, answered [copies]int64
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			r := refundOf(o, order.RefundLine{LineID: o.Lines[0].ID, Quantity: 4})
			r.IdempotencyKey = key
			got, _, fresh, err := s.RecordRefund(ctx, r)
			if err != nil {
				t.Errorf("copy %d: %v", i, err)
				return
			}
			if fresh {
				recorded[i] = got.ID
			}
			answered[i] = got.ID
		})
	}
	wg.Wait()
	var first int64
	for i := range copies {
		if recorded[i] != 0 {
			if first != 0 {
				t.Errorf("refunds %d and %d recorded for one key", first, recorded[i])
			}
			first = recorded[i]
		}
	}
	for i, id := range answered {
		if id != first {
			t.Errorf("copy %d answered refund %d, want %d", i, id, first)
		}
	}
	after, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lines[0].RefundedQuantity != 4 || after.Status != order.StatusPartiallyRefunded {
		t.Errorf("order %s with %d units refunded, want PARTIALLY_REFUNDED with 4", after.Status, after.Lines[0].RefundedQuantity)
	}
	if refunds, _ := s.Refunds(ctx, o.ID); len(refunds) != 1 {
		t.Errorf("%d refunds stored, want 1", len(refunds))
	}
}
