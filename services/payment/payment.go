// Package payment is the payment service's domain: payments of orders
// through external channels, their ledger states, the routing of a payment
// to a channel by weight and health behind a circuit breaker per channel,
// the settlement of a channel's word that money arrived (from a callback,
// an active query or reconciliation), and the automatic refund of money
// that arrived for an order no longer payable. It imports no adapter;
// postgres/, channel/ and grpc/ implement its interfaces and app/ wires
// them.
package payment

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Adapters wrap them with %w and the failed operation;
// the gRPC server maps them to API codes through one table.
var (
	// ErrNotFound means the payment (or the order, or the channel) does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrForbidden means the payment or order belongs to someone else.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid means a request breaks a validation rule.
	ErrInvalid = errors.New("invalid")
	// ErrConflict means the order is not payable in its state.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means no channel could take the payment, or a
	// dependency failed; the caller may retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthenticated means a callback's signature does not verify.
	ErrUnauthenticated = errors.New("bad signature")
)

// Status is where a payment stands in the ledger.
type Status string

// The ledger states: PAYING until the channel says the money arrived
// (SUCCEEDED) or the channel refused the payment (FAILED); REFUNDED once
// all of its money went back: money that arrived for an order that was
// no longer payable, or an order refunded in full.
const (
	StatusPaying    Status = "PAYING"
	StatusSucceeded Status = "SUCCEEDED"
	StatusFailed    Status = "FAILED"
	StatusRefunded  Status = "REFUNDED"
)

// Outcome is the order service's answer to a succeeded payment.
type Outcome string

// The outcomes: none yet, the order is paid by this payment, or the order
// was not payable by it (and the money goes back).
const (
	OutcomeNone     Outcome = ""
	OutcomeAccepted Outcome = "ACCEPTED"
	OutcomeRefused  Outcome = "REFUSED"
)

// Payment is one attempt to pay an order through one channel. Amount is
// cents. TradeNo and PayURL are the channel's once it created the trade.
type Payment struct {
	ID        int64
	OrderID   int64
	UserID    int64
	Channel   string
	Amount    int64
	Status    Status
	TradeNo   string
	PayURL    string
	CreatedAt time.Time
	PaidAt    time.Time
	Outcome   Outcome
	// RefusalReason is why the order refused the payment ("order
	// EXPIRED"), recorded with Outcome; its refund gives it.
	RefusalReason string
	// Refunded is the sum of the payment's refunds, at most Amount.
	Refunded int64
	// QueryAt is when the sweep next asks the channel about a PAYING
	// payment; zero once it stopped asking (QueryFor after CreatedAt).
	// A payment that left PAYING keeps its last one, which nothing reads.
	// AskedAt is when the sweep last claimed it to ask; zero before.
	QueryAt, AskedAt time.Time
}

// Refund gives money of a payment back: the automatic full refund of a
// payment whose order refused it (one at most), or one of the refunds of
// an order refunded line by line (their ids are the order service's).
// Done is set once the channel confirmed it.
type Refund struct {
	ID        int64
	PaymentID int64
	Amount    int64
	Reason    string
	RefundNo  string
	CreatedAt time.Time
	Done      bool
}

// TradeStatus is a trade's state at the channel.
type TradeStatus string

// The trade states.
const (
	TradeWaitPay  TradeStatus = "WAIT_PAY"
	TradePaid     TradeStatus = "PAID"
	TradeRefunded TradeStatus = "REFUNDED"
)

// Trade is a channel's view of a payment.
type Trade struct {
	TradeNo   string
	PaymentID int64
	Amount    int64
	Status    TradeStatus
	PayURL    string
	PaidAt    time.Time
	// Refunded is the sum of the trade's refunds at the channel.
	Refunded int64
	// PressureTest: a notification of a pressure-test trade
	// (platform/shadow), which settles in the shadow ledger.
	PressureTest bool
}

// Channel is one external payment channel.
type Channel interface {
	// Create opens the trade of p (idempotent by p.ID) and returns it
	// with its pay URL.
	Create(ctx context.Context, p Payment) (Trade, error)
	// Query returns the trade of payment id; ErrNotFound when the
	// channel has none.
	Query(ctx context.Context, paymentID int64) (Trade, error)
	// Refund gives amount of a paid trade back, idempotently by
	// refundID, and returns the channel's refund number. A trade takes
	// several refunds that add up to no more than its amount.
	Refund(ctx context.Context, tradeNo string, refundID, amount int64) (string, error)
	// Statement hands each page of the channel's statement to each, in
	// the statement's order (payment time, then trade number): the
	// trades paid at or after since (and maybe refunded since). It stops
	// at the first error.
	Statement(ctx context.Context, since time.Time, each func([]Trade) error) error
	// Notification verifies a callback's signature (ErrUnauthenticated
	// otherwise) and returns the trade it reports.
	Notification(body []byte, signature string) (Trade, error)
}

// Order is what payment needs to know of an order.
type Order struct {
	ID      int64
	UserID  int64
	Payable int64
	// Status is the order service's state name (PENDING_PAYMENT, PAID...).
	Status string
	// PaymentID is the payment that paid the order, if any.
	PaymentID int64
}

// Order states payment acts on.
const (
	OrderPendingPayment = "PENDING_PAYMENT"
	OrderPaid           = "PAID"
)

// Orders is the order service.
type Orders interface {
	// Order returns the order; userID must own it (ErrForbidden).
	Order(ctx context.Context, orderID, userID int64) (Order, error)
	// MarkPaid tells the order service that p's money arrived. It
	// answers accepted when the order is paid by p (now or before), and
	// otherwise the order's state, which makes p's money a refund.
	MarkPaid(ctx context.Context, p Payment) (accepted bool, orderStatus string, err error)
}

// Ledger stores payments and refunds. Every state change is conditional
// on the state it leaves, so concurrent callbacks, queries and
// reconciliation settle a payment once.
type Ledger interface {
	Create(ctx context.Context, p Payment) error
	// Started records the channel's trade of a PAYING payment.
	Started(ctx context.Context, id int64, tradeNo, payURL string) error
	// Payment fails with ErrNotFound for an unknown id.
	Payment(ctx context.Context, id int64) (Payment, error)
	// Payments returns those of ids the ledger holds, by id.
	Payments(ctx context.Context, ids []int64) (map[int64]Payment, error)
	// Open returns the order's PAYING payment through channel that has a
	// trade, or ErrNotFound.
	Open(ctx context.Context, orderID int64, channel string) (Payment, error)
	// Succeed moves a PAYING or FAILED payment to SUCCEEDED, reports
	// whether it did, and returns the payment as it stands after (moved
	// by this call or by another settler).
	Succeed(ctx context.Context, id int64, tradeNo string, paidAt time.Time) (Payment, bool, error)
	// Fail moves a PAYING payment to FAILED. One whose trade's creation
	// got no answer (outcomeUnknown: the trade may exist at the channel)
	// keeps its questions, so the sweep asks its channel about it as about
	// a PAYING one (Due); the others are asked nothing more.
	Fail(ctx context.Context, id int64, outcomeUnknown bool) error
	// SetOutcome records the order service's answer and, for a refusal,
	// the reason its refund gives, once, and returns the answer and reason
	// on record (a concurrent settler's, when it recorded first).
	SetOutcome(ctx context.Context, id int64, o Outcome, reason string) (Outcome, string, error)
	// AddRefund stores r, the automatic full refund of a refused
	// payment, unless the payment has one already, and returns the
	// payment's automatic refund.
	AddRefund(ctx context.Context, r Refund) (Refund, error)
	// AddOrderRefund stores r, one of an order's refunds, unless its id
	// is stored already, and returns it. It fails with ErrConflict when
	// the payment is not paid and accepted, or the refunds would add up
	// to more than it paid, and when the id names another refund.
	AddOrderRefund(ctx context.Context, r Refund) (Refund, error)
	// RefundDone records the channel's refund number and, once every
	// refund of the payment is done and they add up to its amount, moves
	// the payment to REFUNDED. It reports whether this call marked the
	// refund done (false when another call had).
	RefundDone(ctx context.Context, r Refund, refundNo string) (bool, error)
	// Due claims up to limit PAYING payments, and FAILED ones whose
	// outcome was unknown (Fail), whose QueryAt is at or
	// before now, earliest first, and moves each one's QueryAt to
	// next(p) (the zero time: never again), in one transaction; payments
	// another sweeper holds are skipped. It returns them as they were
	// read. A page reads only the payments it returns, however many wait
	// for a later query.
	Due(ctx context.Context, now time.Time, limit int, next func(Payment) time.Time) ([]Payment, error)
	// AskSoon moves a PAYING payment's next query to at, or to gap after
	// Due last claimed it when that is later, when it was set later
	// still; a payment whose queries are over keeps none.
	AskSoon(ctx context.Context, id int64, at time.Time, gap time.Duration) error
	// Unsettled returns up to limit SUCCEEDED payments whose order has not
	// answered yet or that wait for their refund, with ids above after,
	// in id order.
	Unsettled(ctx context.Context, after int64, limit int) ([]Payment, error)
	// PaidSince opens one consistent snapshot of the channel's SUCCEEDED
	// and REFUNDED payments created at or after since, to read in the
	// order of their payment time; the snapshot is taken before it
	// returns.
	PaidSince(ctx context.Context, channel string, since time.Time) (PaidReader, error)
}

// PaidRef is a paid payment as reconciliation holds it against a
// channel's statement: its id and the channel's payment time the ledger
// recorded.
type PaidRef struct {
	ID     int64
	PaidAt time.Time
}

// PaidReader reads a ledger snapshot's paid payments by payment time,
// then id (Ledger.PaidSince).
type PaidReader interface {
	// Next returns up to limit payments paid before before (any time
	// when before is zero) that follow those it returned already.
	Next(ctx context.Context, before time.Time, limit int) ([]PaidRef, error)
	// Close releases the snapshot.
	Close(ctx context.Context)
}
