// Package order is the order service's domain: orders and their lines, the
// flash-sale ("seckill") placement rules, the sentinel errors callers match,
// and the interfaces of what the service needs from the outside (stock,
// activities, the event log, the order store and the in-flight records).
// It imports no adapter; postgres/, redis/, kafka/ and grpc/ implement the
// interfaces and app/ wires them.
package order

import (
	"errors"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/platform/idempotency"
	"github.com/flashsale/flashsale/proto/limits"
)

// Sentinel errors. Adapters wrap them with %w and the failed operation;
// the gRPC server maps them to API codes through one table.
var (
	// ErrNotFound means the order (or the activity it names) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrForbidden means the order exists but belongs to someone else.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid means a request or an event breaks a validation rule.
	ErrInvalid = errors.New("invalid")
	// ErrSoldOut means the activity has no stock left.
	ErrSoldOut = errors.New("sold out")
	// ErrLimitExceeded means the buyer would pass the per-user limit.
	ErrLimitExceeded = errors.New("per-user limit exceeded")
	// ErrActivityNotActive means the sale has not started or has ended.
	ErrActivityNotActive = errors.New("activity not active")
	// ErrUnavailable means a dependency failed; the caller may retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrCommitUnknown means a store's COMMIT was sent and no answer came
	// (a deadline, a lost connection): the transaction may commit after
	// the error, and a look at once may not see it yet. What the
	// transaction would keep must not be given back on the strength of
	// that look. It is an ErrUnavailable: the caller may retry.
	ErrCommitUnknown = fmt.Errorf("%w: the commit was sent and its outcome is unknown", ErrUnavailable)
	// ErrSaleFenced means the inventory refused the reservation because
	// the sale is fenced while its stock is rebuilt after Redis lost
	// writes: a definite answer (nothing was reserved), which the buyer
	// hears as UNAVAILABLE and may retry in a few seconds.
	ErrSaleFenced = errors.New("sale paused while its stock is rebuilt")
	// ErrAlreadyOrdered means the inventory refused to release the stock
	// of an order whose publish failed, because the order consumer had
	// already marked it ordered: the event did reach the log despite the
	// error, and the order exists.
	ErrAlreadyOrdered = errors.New("already ordered")
	// ErrConflict means the request conflicts with the state of what it
	// names: cancelling a paid or expired order, or one still being
	// placed; a coupon that is used, or does not apply to the cart.
	ErrConflict = errors.New("conflict")
	// ErrKeyReused means the user's idempotency key already names another
	// request (a different cart, other refund lines). Answering the first
	// request would hide the client's mistake and acting on the second
	// would do twice what one key promises once, so it is refused; it is
	// an ErrInvalid, which every error table answers INVALID_ARGUMENT.
	ErrKeyReused = fmt.Errorf("%w: the idempotency key was used for a different request", ErrInvalid)
)

// Status is where an order stands in its life cycle. The values are the
// API's and the orders.status column's.
type Status string

// The order states (DESIGN.md "Order state machine and expiry").
const (
	// StatusProcessing: the order is reserved and on its way to Postgres.
	StatusProcessing Status = "PROCESSING"
	// StatusPendingPayment: the order is stored and waits for payment.
	StatusPendingPayment    Status = "PENDING_PAYMENT"
	StatusPaid              Status = "PAID"
	StatusCancelled         Status = "CANCELLED"
	StatusExpired           Status = "EXPIRED"
	StatusPartiallyRefunded Status = "PARTIALLY_REFUNDED"
	StatusRefunded          Status = "REFUNDED"
)

// Kind tells flash-sale orders from regular ones.
type Kind string

// The order kinds.
const (
	KindSeckill Kind = "SECKILL"
	KindRegular Kind = "REGULAR"
)

// Line is one SKU of an order. Money is int64 cents: Amount is
// UnitPrice × Quantity and Payable is Amount − Discount. RefundedQuantity
// units of it are refunded, for Refunded cents (at most Payable).
type Line struct {
	ID               int64
	SKUID            int64
	Quantity         int64
	UnitPrice        int64
	Amount           int64
	Discount         int64
	Payable          int64
	RefundedQuantity int64
	Refunded         int64
}

// Order is an order with its lines. Total, Discount and Payable are the
// sums over the lines, Discount also the sum of Promotions. PaidAt,
// PaymentID and PaymentChannel are zero until the order is paid;
// ActivityID is zero for regular orders, CouponID for orders without a
// coupon.
type Order struct {
	ID             int64
	UserID         int64
	Kind           Kind
	Status         Status
	ActivityID     int64
	Lines          []Line
	Total          int64
	Discount       int64
	Payable        int64
	Promotions     []Promotion
	CouponID       int64
	IdempotencyKey string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	PaidAt         time.Time
	PaymentID      int64
	PaymentChannel string
	// Refunded is what the order's refunds returned, the sum over its
	// lines.
	Refunded int64
}

// Promotion is a promotion (or coupon) that took Amount off an order.
// Kind is the marketing service's: SKU_DISCOUNT, FULL_REDUCTION or
// COUPON.
type Promotion struct {
	ID     int64
	Kind   string
	Amount int64
}

// MaxQuantity bounds one request's quantity.
const MaxQuantity = limits.MaxQuantity

// sameUnits reports whether a repeated request asks for what the first
// one did: whether asked and first name the same quantities of the same
// ids (SKUs, order lines), in any order and each id once. unitsA and
// unitsB read an id and its quantity.
func sameUnits[A, B any](asked []A, first []B, unitsA func(A) (id, qty int64), unitsB func(B) (id, qty int64)) bool {
	want := make(map[int64]int64, len(asked))
	for _, a := range asked {
		id, qty := unitsA(a)
		want[id] = qty
	}
	if len(want) != len(asked) || len(first) != len(asked) {
		return false
	}
	for _, b := range first {
		if id, qty := unitsB(b); want[id] != qty {
			return false
		}
	}
	return true
}

// checkKey applies the platform's rule for idempotency keys
// (idempotency.CheckKey), as ErrInvalid.
func checkKey(key string) error {
	if err := idempotency.CheckKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Placed is the OrderPlaced event: a reserved flash-sale order of one line,
// published to Kafka and kept in Redis until the consumer has stored it.
type Placed struct {
	OrderID        int64
	LineID         int64
	UserID         int64
	ActivityID     int64
	SKUID          int64
	Quantity       int64
	UnitPrice      int64
	IdempotencyKey string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// minYear and maxYear bound the times of a placed order: what a protobuf
// Timestamp and Postgres both hold, and far from any real order.
const minYear, maxYear = 2000, 9999

// Validate reports why p cannot become an order, wrapping ErrInvalid. The
// consumer sends an event that fails it to the dead-letter topic.
func (p Placed) Validate() error {
	switch {
	case p.OrderID <= 0 || p.LineID <= 0 || p.UserID <= 0 || p.ActivityID <= 0 || p.SKUID <= 0:
		return fmt.Errorf("%w: order, line, user, activity and sku ids must be positive", ErrInvalid)
	case p.Quantity < 1 || p.Quantity > MaxQuantity:
		return fmt.Errorf("%w: quantity %d outside 1..%d", ErrInvalid, p.Quantity, MaxQuantity)
	case p.UnitPrice < 0 || p.UnitPrice > (1<<62)/MaxQuantity:
		// The bound keeps UnitPrice × Quantity far from overflowing.
		return fmt.Errorf("%w: unit price %d out of range", ErrInvalid, p.UnitPrice)
	case p.CreatedAt.Year() < minYear || p.ExpiresAt.Year() > maxYear:
		return fmt.Errorf("%w: creation and expiry must lie in the years %d..%d", ErrInvalid, minYear, maxYear)
	case !p.ExpiresAt.Truncate(time.Microsecond).After(p.CreatedAt.Truncate(time.Microsecond)):
		// Postgres keeps microseconds: what it stores must still have
		// the expiry after the creation (orders' CHECK).
		return fmt.Errorf("%w: expiry must come after creation, to the microsecond", ErrInvalid)
	}
	return checkKey(p.IdempotencyKey)
}

// Order returns the order p describes, in status st. A seckill order has
// no discount: the activity price is already the sale price.
func (p Placed) Order(st Status) Order {
	amount := p.UnitPrice * p.Quantity
	return Order{
		ID:         p.OrderID,
		UserID:     p.UserID,
		Kind:       KindSeckill,
		Status:     st,
		ActivityID: p.ActivityID,
		Lines: []Line{{
			ID: p.LineID, SKUID: p.SKUID, Quantity: p.Quantity, UnitPrice: p.UnitPrice,
			Amount: amount, Payable: amount,
		}},
		Total:          amount,
		Payable:        amount,
		IdempotencyKey: p.IdempotencyKey,
		CreatedAt:      p.CreatedAt,
		ExpiresAt:      p.ExpiresAt,
	}
}

// Activity is what the service needs to know of a flash sale.
type Activity struct {
	ID           int64
	SKUID        int64
	Price        int64
	PerUserLimit int64
	// Stock is the units allocated to the sale.
	Stock    int64
	StartsAt time.Time
	EndsAt   time.Time
}

// ActiveAt reports whether the sale window holds t: StartsAt <= t < EndsAt.
func (a Activity) ActiveAt(t time.Time) bool {
	return !t.Before(a.StartsAt) && t.Before(a.EndsAt)
}

// Reservation asks the inventory to hold stock for one order.
type Reservation struct {
	ActivityID     int64
	UserID         int64
	Quantity       int64
	OrderID        int64
	IdempotencyKey string
	ExpiresAt      time.Time
}

// MarkOutcome is the inventory's answer when the order consumer marks the
// reservation of an event it is about to store.
type MarkOutcome int

// The outcomes of marking an event's reservation.
const (
	// MarkStore: the reservation is marked ordered; store the order.
	MarkStore MarkOutcome = iota + 1
	// MarkReleasedUnpublished: the placing service could not publish the
	// event and released its stock, telling the buyer the order failed;
	// this is a late delivery, and storing it would sell the stock twice.
	MarkReleasedUnpublished
	// MarkNoReservation: no reservation backs the event, so no stock does.
	MarkNoReservation
)

// Reserved is the inventory's answer. OrderID is the id the reservation
// belongs to: on a replay (Replayed) it is the first request's.
type Reserved struct {
	OrderID   int64
	Replayed  bool
	Remaining int64
}
