package order

import "context"

// Observer hears of the facts of an order's life that the business is
// watched by: orders accepted, stored, paid (and for how much), ended
// unpaid, refunded, dead-lettered, and the moments the books disagree.
// Each call comes where the fact became true, after the write that made
// it so, and only from the caller whose conditional write won (an
// EXPIRED counted by the worker whose UPDATE moved the row, never by the
// cancel or payment that lost to it), so counts built on it add up
// however the racers interleave. services/order/app implements it with
// Prometheus; the domain imports no adapter. Its methods must be quick
// and safe for concurrent use. ctx is the work's own: a pressure test's
// (platform/shadow) is counted apart from real sales.
type Observer interface {
	// Placed reports an order accepted for the buyer: a flash-sale
	// order published (answered 202), a regular order stored.
	Placed(ctx context.Context, kind Kind)
	// Stored reports n orders written to Postgres for the first time.
	Stored(ctx context.Context, kind Kind, n int)
	// Paid reports an order moved to PAID by a payment of amount cents
	// through channel.
	Paid(ctx context.Context, kind Kind, channel string, amount int64)
	// Ended reports n orders moved from PENDING_PAYMENT to to
	// (StatusExpired or StatusCancelled).
	Ended(ctx context.Context, kind Kind, to Status, n int)
	// Refunded reports a refund of units units and amount cents
	// finished: its money went back.
	Refunded(ctx context.Context, kind Kind, units, amount int64)
	// DeadLettered reports n events written to the dead-letter topic for
	// reason (one of the consumer's DeadLetter… labels).
	DeadLettered(ctx context.Context, reason string, n int)
	// Violated reports that the books disagree in a way only a person
	// can settle, each time it is found.
	Violated(ctx context.Context, inv Invariant)
	// StrayReleased reports a hold (HoldStock, HoldCoupon) given back
	// because its order was never stored (Expirer.RunStrayHoldsOnce).
	StrayReleased(ctx context.Context, hold string)
}

// The kinds of hold a regular checkout takes before it stores its order.
const (
	HoldStock  = "stock"
	HoldCoupon = "coupon"
)

// HoldKinds lists them, for metrics that start each at zero.
var HoldKinds = []string{HoldStock, HoldCoupon}

// Invariant names a rule of the books that must never break; each is
// logged at ERROR where it is found.
type Invariant string

// The invariants the service checks as it goes.
const (
	// InvariantPaidUnconfirmed: an order became PAID but the inventory
	// could not confirm its reservation ("paid order's reservation
	// cannot be confirmed"): the unit may be sold twice.
	InvariantPaidUnconfirmed Invariant = "paid_reservation_unconfirmed"
	// InvariantEndedConfirmed: an order ended unpaid (expired or
	// cancelled) but its reservation is confirmed, as only a payment
	// does ("order ended unpaid but its reservation is confirmed").
	InvariantEndedConfirmed Invariant = "ended_reservation_confirmed"
	// InvariantLimitUnrestored: a fully refunded flash-sale order's
	// units could not be given back to its buyer's purchase limit
	// ("refunded order's purchase limit cannot be restored").
	InvariantLimitUnrestored Invariant = "refund_limit_unrestored"
)

// Invariants lists every Invariant, for metrics that start each at zero.
var Invariants = []Invariant{InvariantPaidUnconfirmed, InvariantEndedConfirmed, InvariantLimitUnrestored}

// Kinds lists the order kinds.
var Kinds = []Kind{KindSeckill, KindRegular}

// NopObserver is the Observer of a service configured without one.
type NopObserver struct{}

func (NopObserver) Placed(context.Context, Kind)                 {}
func (NopObserver) Stored(context.Context, Kind, int)            {}
func (NopObserver) Paid(context.Context, Kind, string, int64)    {}
func (NopObserver) Ended(context.Context, Kind, Status, int)     {}
func (NopObserver) Refunded(context.Context, Kind, int64, int64) {}
func (NopObserver) DeadLettered(context.Context, string, int)    {}
func (NopObserver) Violated(context.Context, Invariant)          {}
func (NopObserver) StrayReleased(context.Context, string)        {}
