package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/flashsale/flashsale/platform/apportion"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
)

// RefundStatus is where a refund stands: PENDING from the moment it is
// recorded until its money is back with the buyer (and, for the refund
// that completes the order, the coupon and the purchase limit are back
// too), then SUCCEEDED.
type RefundStatus string

// The refund states.
const (
	RefundPending   RefundStatus = "PENDING"
	RefundSucceeded RefundStatus = "SUCCEEDED"
)

// RefundLine is Quantity units of one line of a refund; Amount is what
// they cost the buyer, set when the refund is recorded.
type RefundLine struct {
	LineID   int64
	Quantity int64
	Amount   int64
}

// Refund gives units of a paid order back. Amount is the sum of its
// lines' amounts; PaymentID is the payment whose channel returns it.
// Completes is set on the refund that refunded the order's last unit.
// IdempotencyKey is the buyer's key for it, unique within the order.
type Refund struct {
	ID             int64
	OrderID        int64
	UserID         int64
	PaymentID      int64
	IdempotencyKey string
	Lines          []RefundLine
	Amount         int64
	Status         RefundStatus
	Completes      bool
	CreatedAt      time.Time
}

// Payments is the payment service.
type Payments interface {
	// Refund returns amount of the payment through the channel that took
	// it, idempotently by refundID.
	Refund(ctx context.Context, paymentID, refundID, amount int64) error
}

// LimitRestorer gives a refunded flash-sale order's units back to its
// buyer's per-user limit (the inventory service).
type LimitRestorer interface {
	// RestoreLimit is idempotent by refundID. It fails with ErrConflict
	// when the reservation is not confirmed or has fewer units left, and
	// ErrNotFound when there is no reservation.
	RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) error
}

// RefundStore records refunds (Postgres).
type RefundStore interface {
	// RecordRefund stores r PENDING with its lines' amounts (from
	// RefundAmount), adds the units and amounts to the order's lines and
	// moves the order to PARTIALLY_REFUNDED or REFUNDED, in one
	// transaction of conditional updates. It fails with ErrConflict,
	// changing nothing, when the order is not the user's PAID or
	// PARTIALLY_REFUNDED order or a line has fewer units left than asked.
	// It returns the refund as recorded and the order after it, with
	// created set. When the order already has a refund with r's
	// idempotency key (a concurrent duplicate recorded it first), it
	// changes nothing and returns that refund as it stands and the
	// order, with created unset.
	RecordRefund(ctx context.Context, r Refund) (recorded Refund, after Order, created bool, err error)
	// RefundByKey returns the user's refund of the order with the
	// idempotency key, with its lines, or ErrNotFound.
	RefundByKey(ctx context.Context, orderID, userID int64, key string) (Refund, error)
	// RefundSucceeded marks a PENDING refund SUCCEEDED and returns its
	// units; moved is false, changing nothing, when it was not PENDING.
	RefundSucceeded(ctx context.Context, refundID int64, at time.Time) (units int64, moved bool, err error)
	// PendingRefunds returns up to limit PENDING refunds created at or
	// before before with keys (the creation, then the id) above after, in
	// that order, without their lines. A page reads only the refunds it
	// returns, however many a channel's outage left pending.
	PendingRefunds(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]Refund, error)
}

// Coupons gives a refunded order's coupon back (the marketing service).
type Coupons interface {
	// ReleaseCoupon makes the coupon the order consumed available again;
	// repeating it is harmless.
	ReleaseCoupon(ctx context.Context, orderID int64) error
}

// RefundingConfig holds what refunds need.
type RefundingConfig struct {
	// Lookup finds the order to refund, stored or in flight.
	Lookup   *Lookup
	Refunds  RefundStore
	Payments Payments
	// Limits restores a flash-sale buyer's purchase limit and Coupons
	// gives the coupon back, once a refund completes the order (nil:
	// neither).
	Limits  LimitRestorer
	Coupons Coupons
	// RetryAfter is how long a refund stays PENDING before the refund
	// sweep takes it up (default DefaultRefundRetryAfter).
	RetryAfter time.Duration
	Clock      clock.Clock
	// NextID hands out refund ids (a snowflake generator's Next).
	NextID func() int64
	// Observer hears of refunded orders and of limits that cannot be
	// restored (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// DefaultRefundRetryAfter is how long a refund stays PENDING before the
// refund sweep retries it: long enough that the sweep rarely races the
// request that recorded it (which is harmless, every step being
// idempotent), short enough that a buyer waits seconds, not hours.
const DefaultRefundRetryAfter = 10 * time.Second

// Refunding refunds paid orders and finishes, by its sweep, the refunds
// whose money did not go back at once.
type Refunding struct {
	cfg    RefundingConfig
	cursor sweep.Cursor[sweep.TimeKey]
}

// NewRefunding returns the refunding use case over cfg.
func NewRefunding(cfg RefundingConfig) *Refunding {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRefundRetryAfter
	}
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	return &Refunding{cfg: cfg}
}

// RefundAmount is what refunding k more units of line l costs when done
// units of it are refunded already, for l.Refunded: the line's discount is
// split over its units by the apportionment rule and refunds take units
// in a fixed order, so the answer is the same every time. The refund that
// takes the line's last units returns what the line has left (its
// payable amount less what its refunds returned), so the refunds of all
// units add up to the line's payable amount exactly even across a change
// of the rule (the leftover cents' placement changed in 2026-12).
func RefundAmount(l Line, done, k int64) (int64, error) {
	amount, err := apportion.Refund(l.UnitPrice, l.Quantity, l.Discount, done, k)
	if err != nil {
		return 0, fmt.Errorf("%w: line %d: %v", ErrConflict, l.ID, err)
	}
	if done+k == l.Quantity {
		left := l.UnitPrice*l.Quantity - l.Discount - l.Refunded
		if left < 0 {
			return 0, fmt.Errorf("%w: line %d returned %d, more than it pays", ErrConflict, l.ID, l.Refunded)
		}
		return left, nil
	}
	return amount, nil
}

// refundSweepBatch bounds the refunds one sweep finishes.
const refundSweepBatch = 100

// RefundOrder refunds units of the user's paid order, line by line. The
// refund is recorded first (amounts from the apportionment, the lines'
// refunded quantities and the order's state in one transaction), then the
// payment service returns the money through the channel that took it,
// and when the refund completes the order the coupon goes back and a
// flash-sale buyer's purchase limit is restored. When any of that fails,
// or does not finish within its share of the caller's budget
// (afterCommit), the refund is answered PENDING and the refund sweep
// finishes it: every step is idempotent by the refund id. It fails with
// ErrForbidden for someone else's order, ErrConflict when the order is not
// PAID or PARTIALLY_REFUNDED or a line has fewer units left than asked
// (nothing changes then), and ErrInvalid for a malformed request.
//
// The client's idempotency key names the refund within the order: a
// retry with the same key and lines (a timeout, a double click, a replay
// after a restart) refunds nothing more and answers the first refund as
// it stands now, its order too; the key with other lines fails with
// ErrKeyReused. Postgres holds the key with the refund, so the answer
// survives restarts and no two requests with one key refund twice,
// however they interleave.
func (rf *Refunding) RefundOrder(ctx context.Context, orderID, userID int64, key string, lines []RefundLine) (Refund, Order, error) {
	const op = "refund order"
	if err := validateRefund(orderID, userID, key, lines); err != nil {
		return Refund{}, Order{}, fmt.Errorf("%s: %w", op, err)
	}
	if rf.cfg.Refunds == nil || rf.cfg.Payments == nil {
		return Refund{}, Order{}, fmt.Errorf("%s: refunds are not configured: %w", op, ErrUnavailable)
	}
	o, err := rf.cfg.Lookup.find(ctx, orderID)
	if err != nil {
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if o.UserID != userID {
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w", op, orderID, ErrForbidden)
	}
	// A retry is answered before the checks below, which the first
	// refund may have made fail (no units left, the order REFUNDED).
	first, err := rf.cfg.Refunds.RefundByKey(ctx, orderID, userID, key)
	switch {
	case err == nil:
		return repeatRefund(op, first, o, lines)
	case !errors.Is(err, ErrNotFound):
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if o.Status != StatusPaid && o.Status != StatusPartiallyRefunded {
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w: the order is %s", op, orderID, ErrConflict, o.Status)
	}
	for _, rl := range lines {
		i := o.line(rl.LineID)
		if i < 0 {
			return Refund{}, Order{}, fmt.Errorf("%s %d: %w: line %d is not a line of the order", op, orderID, ErrInvalid, rl.LineID)
		}
		if left := o.Lines[i].Quantity - o.Lines[i].RefundedQuantity; rl.Quantity > left {
			return Refund{}, Order{}, fmt.Errorf("%s %d: %w: line %d has %d units left to refund, not %d",
				op, orderID, ErrConflict, rl.LineID, left, rl.Quantity)
		}
	}
	// A refund lists its lines by line id, as the store reads them back,
	// so its first answer and every retry's answer are the same.
	byLine := slices.SortedFunc(slices.Values(lines), func(a, b RefundLine) int { return cmp.Compare(a.LineID, b.LineID) })
	r := Refund{
		ID: rf.cfg.NextID(), OrderID: orderID, UserID: userID, IdempotencyKey: key, Lines: byLine,
		Status: RefundPending, CreatedAt: rf.cfg.Clock.Now().Truncate(time.Microsecond),
	}
	r, after, created, err := rf.cfg.Refunds.RecordRefund(ctx, r)
	if err != nil {
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if !created {
		// A duplicate sent at the same time recorded the refund first;
		// it also returns the money.
		return repeatRefund(op, r, after, lines)
	}
	finish, cancel := afterCommit(ctx)
	defer cancel()
	if err := rf.finishRefund(finish, r, after); err != nil {
		rf.cfg.Logger.WarnContext(ctx, "refund recorded, its money not returned yet; the refund sweep finishes it",
			"order_id", orderID, "refund_id", r.ID, "amount", r.Amount, "err", err)
		return r, after, nil
	}
	r.Status = RefundSucceeded
	return r, after, nil
}

// repeatRefund answers a request whose key already names the refund
// first: that refund and the order as they stand, when the request asks
// for the same units of the same lines (in any order), else
// ErrKeyReused.
func repeatRefund(op string, first Refund, o Order, lines []RefundLine) (Refund, Order, error) {
	units := func(l RefundLine) (int64, int64) { return l.LineID, l.Quantity }
	if !sameUnits(lines, first.Lines, units, units) {
		return Refund{}, Order{}, fmt.Errorf("%s %d: %w: it names refund %d of other lines", op, o.ID, ErrKeyReused, first.ID)
	}
	return first, o, nil
}

// line returns the index of the order's line id, or -1.
func (o Order) line(id int64) int {
	for i, l := range o.Lines {
		if l.ID == id {
			return i
		}
	}
	return -1
}

// validateRefund checks a refund request without looking at any state.
func validateRefund(orderID, userID int64, key string, lines []RefundLine) error {
	if err := checkKey(key); err != nil {
		return err
	}
	switch {
	case orderID <= 0 || userID <= 0:
		return fmt.Errorf("%w: order and user ids must be positive", ErrInvalid)
	case len(lines) < 1 || len(lines) > MaxCartLines:
		return fmt.Errorf("%w: %d lines, want 1..%d", ErrInvalid, len(lines), MaxCartLines)
	}
	seen := make(map[int64]bool, len(lines))
	for _, l := range lines {
		switch {
		case l.LineID <= 0:
			return fmt.Errorf("%w: line ids must be positive", ErrInvalid)
		case l.Quantity < 1 || l.Quantity > MaxQuantity:
			return fmt.Errorf("%w: quantity %d outside 1..%d", ErrInvalid, l.Quantity, MaxQuantity)
		case seen[l.LineID]:
			return fmt.Errorf("%w: line %d named twice", ErrInvalid, l.LineID)
		}
		seen[l.LineID] = true
	}
	return nil
}

// finishRefund does what follows a recorded refund, each step idempotent
// by the refund id, and marks the refund SUCCEEDED once all are done: the
// money goes back through the payment's channel; the refund that
// completes the order gives its coupon back and restores the flash-sale
// buyer's purchase limit for all of the order's units.
func (rf *Refunding) finishRefund(ctx context.Context, r Refund, o Order) error {
	if r.Amount > 0 {
		if err := rf.cfg.Payments.Refund(ctx, r.PaymentID, r.ID, r.Amount); err != nil {
			return fmt.Errorf("return the money: %w", err)
		}
	}
	if r.Completes {
		if o.CouponID != 0 && rf.cfg.Coupons != nil {
			if err := rf.cfg.Coupons.ReleaseCoupon(ctx, o.ID); err != nil {
				return fmt.Errorf("give the coupon back: %w", err)
			}
		}
		if o.Kind == KindSeckill && rf.cfg.Limits != nil {
			if err := rf.restoreLimit(ctx, r, o); err != nil {
				return err
			}
		}
	}
	units, moved, err := rf.cfg.Refunds.RefundSucceeded(ctx, r.ID, rf.cfg.Clock.Now())
	if err != nil {
		return fmt.Errorf("mark refund %d succeeded: %w", r.ID, err)
	}
	if moved {
		rf.cfg.Observer.Refunded(ctx, o.Kind, units, r.Amount)
	}
	return nil
}

// restoreLimit gives the units of a fully refunded flash-sale order back
// to its buyer's limit. A definite refusal (no confirmed reservation with
// the units left) means the books disagree: it is logged for a human and
// does not hold the refund back, since asking again cannot change it.
func (rf *Refunding) restoreLimit(ctx context.Context, r Refund, o Order) error {
	var units int64
	for _, l := range o.Lines {
		units += l.Quantity
	}
	err := rf.cfg.Limits.RestoreLimit(ctx, o.ActivityID, o.ID, r.ID, units)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
		rf.cfg.Logger.ErrorContext(ctx, "refunded order's purchase limit cannot be restored",
			"order_id", o.ID, "activity_id", o.ActivityID, "refund_id", r.ID, "err", err)
		rf.cfg.Observer.Violated(ctx, InvariantLimitUnrestored)
		return nil
	}
	return fmt.Errorf("restore the purchase limit: %w", err)
}

// SweepRefunds finishes refunds left PENDING for longer than the
// configured RefundRetryAfter (a channel that was down, a crash between
// recording a refund and returning its money) and reports how many it
// finished. Each sweep takes the next page of them (platform/sweep), so
// refunds that keep failing do not hold back the ones behind them.
func (rf *Refunding) SweepRefunds(ctx context.Context) (int, error) {
	pending, err := rf.cfg.Refunds.PendingRefunds(ctx, rf.cfg.Clock.Now().Add(-rf.cfg.RetryAfter), rf.cursor.After(ctx), refundSweepBatch)
	if err != nil {
		return 0, fmt.Errorf("sweep refunds: %w", err)
	}
	rf.cursor.Read(ctx, sweep.Keys(pending, func(r Refund) sweep.TimeKey { return sweep.TimeKey{At: r.CreatedAt, ID: r.ID} }), refundSweepBatch)
	finished := 0
	for _, r := range pending {
		o, err := rf.cfg.Lookup.orders.Order(ctx, r.OrderID)
		if err == nil {
			err = rf.finishRefund(ctx, r, o)
		}
		if err != nil {
			rf.cfg.Logger.WarnContext(ctx, "pending refund not finished; retried next sweep",
				"order_id", r.OrderID, "refund_id", r.ID, "err", err)
			continue
		}
		finished++
	}
	return finished, nil
}

// RunRefundSweep sweeps every interval until ctx ends. Failures are
// logged; the next sweep retries.
func (rf *Refunding) RunRefundSweep(ctx context.Context, every time.Duration) error {
	return sweep.Every(ctx, every, func(ctx context.Context) {
		if n, err := rf.SweepRefunds(ctx); err != nil {
			rf.cfg.Logger.WarnContext(ctx, "refund sweep failed", "err", err)
		} else if n > 0 {
			rf.cfg.Logger.InfoContext(ctx, "refund sweep finished refunds", "finished", n)
		}
	})
}
