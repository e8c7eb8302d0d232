package order

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/flashsale/flashsale/platform/clock"
)

// CancellingConfig holds what cancelling an unpaid order needs.
type CancellingConfig struct {
	// Lookup finds the order, stored or in flight.
	Lookup *Lookup
	// Transitions moves the order from PENDING_PAYMENT to CANCELLED;
	// Releaser gives a flash-sale order's reservation back.
	Transitions Transitions
	Releaser    Releaser
	// Catalog and Pricing take a regular order's stock and coupon back;
	// Regular marks them given back.
	Catalog Catalog
	Pricing Pricing
	Regular RegularReleases
	Clock   clock.Clock
	// Observer hears of cancelled orders (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// Cancelling ends the buyer's unpaid orders on request.
type Cancelling struct{ cfg CancellingConfig }

// NewCancelling returns the cancelling use case over cfg.
func NewCancelling(cfg CancellingConfig) *Cancelling {
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	return &Cancelling{cfg: cfg}
}

// CancelOrder cancels the user's order while it waits for payment: one
// conditional UPDATE from PENDING_PAYMENT to CANCELLED, then what it
// holds goes back: a flash-sale order's reservation (which also takes it
// off the expiry queue), a regular order's product stock and coupon. It
// fails with ErrForbidden for someone else's order and ErrConflict when
// the order is paid, expired, or still being placed; a cancelled order
// is answered as it is, so a retried cancel succeeds.
func (c *Cancelling) CancelOrder(ctx context.Context, orderID, userID int64) (Order, error) {
	const op = "cancel order"
	if orderID <= 0 || userID <= 0 {
		return Order{}, fmt.Errorf("%s: %w: order and user ids must be positive", op, ErrInvalid)
	}
	o, err := c.cfg.Lookup.find(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if o.UserID != userID {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, ErrForbidden)
	}
	switch o.Status {
	case StatusProcessing:
		return Order{}, fmt.Errorf("%s %d: %w: the order is still being placed; cancel it once it is PENDING_PAYMENT",
			op, orderID, ErrConflict)
	case StatusPendingPayment:
		moved, err := c.cfg.Transitions.EndUnpaid(ctx, []int64{orderID}, StatusCancelled, c.cfg.Clock.Now())
		if err != nil {
			return Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
		}
		if len(moved) == 1 {
			o.Status = StatusCancelled
			c.cfg.Observer.Ended(ctx, o.Kind, StatusCancelled, 1)
			break
		}
		// Expiry or a payment moved it first; answer by the winner.
		if o, err = c.cfg.Lookup.orders.Order(ctx, orderID); err != nil {
			return Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
		}
	}
	if o.Status != StatusCancelled {
		return Order{}, fmt.Errorf("%s %d: %w: the order is %s", op, orderID, ErrConflict, o.Status)
	}
	// What the order holds goes back only once it has left
	// PENDING_PAYMENT, so a payment can never land on released stock.
	// Releasing is idempotent, so cancelling again finishes an earlier
	// cancel's release that failed. Giving back has its share of the
	// caller's budget (afterCommit): the cancel is committed, and what a
	// slow peer leaves the sweeps finish.
	back, cancel := afterCommit(ctx)
	defer cancel()
	if o.Kind == KindRegular {
		c.giveBackCancelled(back, o)
		return o, nil
	}
	// If this release fails, the order's expiry entry is still queued and
	// the expiry worker releases the stock at the deadline.
	if err := c.cfg.Releaser.Release(back, o.ActivityID, orderID); err != nil {
		c.cfg.Logger.WarnContext(ctx, "release after cancel failed; the expiry worker releases it at the deadline",
			"order_id", orderID, "activity_id", o.ActivityID, "err", err)
	}
	return o, nil
}

// giveBackCancelled releases the product stock and the coupon of a
// cancelled regular order and marks them given back. If either step
// fails the order stays unmarked, and the expiry worker's next sweep
// gives them back.
func (c *Cancelling) giveBackCancelled(ctx context.Context, o Order) {
	err := giveBackRegular(ctx, c.cfg.Catalog, c.cfg.Pricing, RegularHold{OrderID: o.ID, CouponID: o.CouponID})
	if err == nil {
		err = c.cfg.Regular.MarkRegularReleased(ctx, []int64{o.ID})
	}
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "give back after cancel failed; the expiry worker's sweep gives it back",
			"order_id", o.ID, "err", err)
	}
}
