package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrStockReleased means the inventory refused to confirm a reservation
// whose stock was already given back (the order expired or was cancelled).
var ErrStockReleased = errors.New("reservation already released")

// Paid is the payment service's word that the money of an order arrived.
type Paid struct {
	OrderID   int64
	PaymentID int64
	Channel   string
	// Amount is what the buyer paid, in cents; only the order's payable
	// amount pays it.
	Amount int64
	PaidAt time.Time
}

// PaidOrders records payments on stored orders (Postgres).
type PaidOrders interface {
	// MarkPaid moves the order from PENDING_PAYMENT to PAID by p, with one
	// conditional update, when its payable amount is p.Amount. It returns
	// the order as it stands afterwards, whoever changed it, and whether
	// this call's update moved it.
	MarkPaid(ctx context.Context, p Paid) (o Order, moved bool, err error)
}

// Confirmer is the inventory as a paid order needs it.
type Confirmer interface {
	// Confirm marks the order's reservation paid, so that it is never
	// released. Confirming twice is harmless; it fails with
	// ErrStockReleased when the stock was already given back.
	Confirm(ctx context.Context, activityID, orderID int64) error
}

// PayingConfig holds what recording a payment needs.
type PayingConfig struct {
	Orders    PaidOrders
	Inventory Confirmer
	// Observer hears of paid orders and of reservations that cannot be
	// confirmed (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// Paying records the payment service's word that an order is paid, and
// makes its stock stay sold.
type Paying struct{ cfg PayingConfig }

// NewPaying returns the paying use case over cfg.
func NewPaying(cfg PayingConfig) *Paying {
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	return &Paying{cfg: cfg}
}

// MarkPaid records that payment p paid its order: PENDING_PAYMENT becomes
// PAID in one conditional update, then the reservation is confirmed so no
// expiry can release the stock. It reports accepted when the order is paid
// by p, now or by an earlier call (a retry is harmless and confirms
// again). It reports not accepted, changing nothing, when the order is no
// longer payable by p: expired, cancelled, paid by another payment, or the
// amount is not the order's; the payment service refunds the money then.
// An order the inventory cannot confirm for a moment stays PAID and the
// call fails with ErrUnavailable, so the payment service calls again.
func (pay *Paying) MarkPaid(ctx context.Context, p Paid) (Order, bool, error) {
	const op = "mark paid"
	switch {
	case p.OrderID <= 0 || p.PaymentID <= 0:
		return Order{}, false, fmt.Errorf("%s: %w: order and payment ids must be positive", op, ErrInvalid)
	case p.Channel == "" || p.Amount < 0 || p.PaidAt.IsZero():
		return Order{}, false, fmt.Errorf("%s: %w: channel, amount and paid_at are required", op, ErrInvalid)
	}
	o, moved, err := pay.cfg.Orders.MarkPaid(ctx, p)
	if err != nil {
		return Order{}, false, fmt.Errorf("%s %d: %w", op, p.OrderID, err)
	}
	if moved {
		pay.cfg.Observer.Paid(ctx, o.Kind, p.Channel, p.Amount)
	}
	if o.PaymentID != p.PaymentID || !paidStatus(o.Status) {
		pay.cfg.Logger.InfoContext(ctx, "payment refused: order not payable by it",
			"order_id", o.ID, "status", o.Status, "payment_id", p.PaymentID, "paid_by", o.PaymentID,
			"amount", p.Amount, "payable", o.Payable)
		return o, false, nil
	}
	if o.Kind != KindSeckill {
		return o, true, nil
	}
	err = pay.cfg.Inventory.Confirm(ctx, o.ActivityID, o.ID)
	switch {
	case err == nil:
	case errors.Is(err, ErrStockReleased) || errors.Is(err, ErrNotFound):
		// Expiry and cancel release stock only after their own
		// conditional update won, which this order's PAID forbids;
		// reaching here means the books disagree and a human must look.
		pay.cfg.Logger.ErrorContext(ctx, "paid order's reservation cannot be confirmed",
			"order_id", o.ID, "activity_id", o.ActivityID, "payment_id", p.PaymentID, "err", err)
		pay.cfg.Observer.Violated(ctx, InvariantPaidUnconfirmed)
	default:
		return Order{}, false, fmt.Errorf("%s %d: confirm: %v: %w", op, p.OrderID, err, ErrUnavailable)
	}
	return o, true, nil
}

// paidStatus says whether an order in status st was paid: PAID, or
// refunded in part or in full since. A settlement of the payment that
// paid it, resumed after its first answer was lost (the reservation's
// confirm failed), finds the order refunded when its buyer asked in
// between; it is still the payment that paid it, and must be accepted,
// or the payment would be refunded as refused while the order's own
// refund of it waits for an accepted payment for ever.
func paidStatus(st Status) bool {
	return st == StatusPaid || st == StatusPartiallyRefunded || st == StatusRefunded
}
