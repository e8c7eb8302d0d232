// Package inventory is the flash-sale stock domain: reservations, their
// statuses, the rules every request must pass before it reaches the store,
// and the outcomes callers act on, as sentinel errors.
//
// The store (Redis, one Lua script per operation) enforces the rules that
// need shared state atomically: idempotency, the per-user limit, the stock
// check and the reservation's state machine. This package checks what can
// be checked without state, so malformed requests never reach Redis.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/platform/idempotency"
	"github.com/flashsale/flashsale/proto/limits"
)

// Outcomes of inventory operations. Callers match them with errors.Is; the
// gRPC adapter maps them to API error codes.
var (
	// ErrSoldOut means the activity has less stock left than requested.
	ErrSoldOut = errors.New("sold out")
	// ErrLimitExceeded means the buyer would hold more units of the
	// activity than its per-user limit allows.
	ErrLimitExceeded = errors.New("per-user limit exceeded")
	// ErrNotPreheated means the activity's stock was never loaded, so
	// inventory does not know the activity.
	ErrNotPreheated = errors.New("activity not preheated")
	// ErrGivenUp means a reservation arrived after a release of its order
	// had found nothing: the caller gave up on the order (its deadline
	// passed while the reservation waited in a batch), so nothing is
	// reserved for it.
	ErrGivenUp = errors.New("order given up before its reservation arrived")
	// ErrReservationNotFound means no reservation exists for the order.
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrAlreadyConfirmed means a release was refused because the
	// reservation is paid for; its stock is sold for good.
	ErrAlreadyConfirmed = errors.New("reservation already confirmed")
	// ErrAlreadyReleased means a confirmation was refused because the
	// reservation's stock was given back (the order expired or was
	// cancelled before the payment arrived).
	ErrAlreadyReleased = errors.New("reservation already released")
	// ErrAlreadyOrdered means an unpublished release was refused because
	// the order consumer has marked the reservation ordered: the event
	// the caller thought lost did reach the log, the order is stored (or
	// about to be), and its stock stays taken.
	ErrAlreadyOrdered = errors.New("reservation already ordered")
	// ErrNotConfirmed means a refund asked to restore the limit of a
	// reservation that is not paid for: a released one gave its limit
	// back already, a reserved one has nothing to refund.
	ErrNotConfirmed = errors.New("reservation not confirmed")
	// ErrRestoreTooMany means the refunds of an order would give more
	// units back to the buyer's limit than the order reserved.
	ErrRestoreTooMany = errors.New("more units restored than reserved")
	// ErrFenced means the activity's Redis state may have lost writes
	// (Redis restarted from its AOF, or a replica took over) and is not
	// rebuilt from the stored orders yet: nothing is sold from it until
	// it is. Callers hear UNAVAILABLE and may retry shortly.
	ErrFenced = errors.New("activity fenced until its stock is rebuilt")
	// ErrInvalid means a request is malformed.
	ErrInvalid = errors.New("invalid argument")
)

// Limits of a request. A flash sale sells few units per buyer; the bounds
// keep every count far inside the range Lua's numbers (doubles) hold
// exactly.
const (
	MaxQuantity = limits.MaxQuantity
	MaxStock    = limits.MaxStock
	// MaxMarkOrdered bounds the orders of one MarkOrdered call,
	// MaxReserveBatch the reservations of one ReserveBatch call,
	// MaxReleaseBatch the releases of one ReleaseBatch call, and
	// MaxDueEntries the entries one ClaimDue takes and one AckDue or
	// RequeueDue settles: the contract's batch bound, which the order
	// service splits its calls by.
	MaxMarkOrdered  = limits.MaxBatch
	MaxReserveBatch = limits.MaxBatch
	MaxReleaseBatch = limits.MaxBatch
	MaxDueEntries   = limits.MaxBatch
	// MaxRebuildOrders bounds the orders of one RebuildStock call: one
	// script writes them all, atomically, and holds Redis meanwhile.
	MaxRebuildOrders = 50_000
	// MaxBuckets bounds the buckets one sale's stock is split into
	// (docs/stock-reservation.md, "A sale beyond one Redis primary"):
	// calls that name only an order look for it in every bucket.
	MaxBuckets = limits.MaxStockBuckets
)

// HeldOrder is one stored order of an activity as a rebuild restores it:
// its reservation's status says what it holds (RESERVED and CONFIRMED
// hold their units, RELEASED nothing).
type HeldOrder struct {
	OrderID        int64
	UserID         int64
	Quantity       int64
	Status         Status
	IdempotencyKey string
	// ExpiresAt is the payment deadline: a RESERVED order's entry in the
	// expiry queue.
	ExpiresAt time.Time
	// Restored is how many of its units refunds gave back to the buyer's
	// limit.
	Restored int64
}

// Rebuild is the truth a fenced activity's Redis state is rebuilt from:
// its stock and limit, and every order stored for it.
type Rebuild struct {
	ActivityID   int64
	Total        int64
	PerUserLimit int64
	Orders       []HeldOrder
}

// RebuildResult is what a rebuild repaired. Rebuilt is false when the
// activity was not fenced (already rebuilt), and then nothing changed.
type RebuildResult struct {
	Rebuilt bool
	// StockBefore is the stock key before (-1 when it was missing), Stock
	// after: total less the units held.
	StockBefore, Stock int64
	// Reservations, UserCounts and ExpiryEntries count the records that
	// differed from the truth and were rewritten.
	Reservations, UserCounts, ExpiryEntries int64
	// Overheld is how many units the stored orders hold beyond the total:
	// a sale oversold before the rebuild (stock is set to 0).
	Overheld int64
}

// DueEntry is an entry of an activity's expiry queue that a worker has
// claimed: the order whose payment deadline passed, and the claim's lease.
type DueEntry struct {
	ActivityID int64
	OrderID    int64
	// DueAt is the entry's score in the queue when it was claimed: the
	// payment deadline, or the time a requeue or a lapsed lease set.
	DueAt time.Time
	// LeaseUntil is when the claim lapses and the entry goes back to the
	// queue. It also names the claim: settling it needs the same value.
	LeaseUntil time.Time
}

// Status is where a reservation is in its life: RESERVED until it is either
// CONFIRMED (paid) or RELEASED (expired or cancelled). Both ends are final.
type Status string

// The reservation statuses; the values are what the store records.
const (
	StatusReserved  Status = "RESERVED"
	StatusConfirmed Status = "CONFIRMED"
	StatusReleased  Status = "RELEASED"
)

// Reservation is the stock one order holds in one activity.
type Reservation struct {
	ActivityID     int64
	OrderID        int64
	UserID         int64
	Quantity       int64
	Status         Status
	IdempotencyKey string
	// ExpiresAt is the payment deadline: the score of the order's entry in
	// the activity's expiry queue.
	ExpiresAt time.Time
	// Ordered is set once the order consumer has marked the reservation
	// (MarkOrdered): its order is stored, so an unpublished release can no
	// longer take the stock back.
	Ordered bool
	// Unpublished is set when the reservation was released as unpublished
	// (the placing service could not publish the order's event): a late
	// delivery of that event must not become an order.
	Unpublished bool
}

// OrderRef names the reservation of one order.
type OrderRef struct {
	ActivityID int64
	OrderID    int64
}

// MarkOutcome is what MarkOrdered answers for one order: whether the order
// consumer may store it.
type MarkOutcome string

// The outcomes of MarkOrdered; the values are what the store's script
// returns.
const (
	// MarkMarked: the reservation is marked ordered (or was released by
	// expiry or cancellation after it had been); store the order.
	MarkMarked MarkOutcome = "MARKED"
	// MarkDrop: the reservation was released as unpublished, so the buyer
	// was told the order failed and its stock may be sold again; do not
	// store the order.
	MarkDrop MarkOutcome = "DROP"
	// MarkNotFound: no reservation backs the order; do not store it.
	MarkNotFound MarkOutcome = "NOT_FOUND"
)

// ReserveRequest asks for stock for one order.
type ReserveRequest struct {
	ActivityID int64
	UserID     int64
	Quantity   int64
	// OrderID is the caller's fresh order id; the reservation is stored
	// under it.
	OrderID int64
	// IdempotencyKey is the buyer's key: a replay with the same user and
	// key answers with the first order id instead of reserving again.
	IdempotencyKey string
	// ExpiresAt is the payment deadline, computed by the caller from its
	// clock, so the store never reads time itself.
	ExpiresAt time.Time
}

// ReserveResult is the answer to a ReserveRequest.
type ReserveResult struct {
	// OrderID is the order the reservation belongs to: the first one when
	// the request was a replay.
	OrderID int64
	// Replayed is true when an earlier request with the same idempotency
	// key or order id had already reserved, so nothing changed.
	Replayed bool
	// Remaining is the activity's stock left after the request.
	Remaining int64
}

// ReserveAnswer is one request's answer in a ReserveBatch: what Reserve
// would have returned for it alone.
type ReserveAnswer struct {
	Result ReserveResult
	Err    error
}

// ReleaseAnswer is one order's answer in a ReleaseBatch: what Release
// would have returned for it alone.
type ReleaseAnswer struct {
	Released bool
	Err      error
}

// Stock is an activity's stock.
type Stock struct {
	Remaining int64
	Total     int64
}

// Validate checks the request without looking at any state.
func (r ReserveRequest) Validate() error {
	if err := validateIDs(namedID{"activity", r.ActivityID}, namedID{"user", r.UserID}, namedID{"order", r.OrderID}); err != nil {
		return err
	}
	if r.Quantity < 1 || r.Quantity > MaxQuantity {
		return fmt.Errorf("%w: quantity %d is outside 1..%d", ErrInvalid, r.Quantity, MaxQuantity)
	}
	if err := validateIdempotencyKey(r.IdempotencyKey); err != nil {
		return err
	}
	if r.ExpiresAt.UnixMilli() <= 0 {
		return fmt.Errorf("%w: expires_at is required", ErrInvalid)
	}
	return nil
}

// namedID is an id with the name an error message calls it by.
type namedID struct {
	name string
	id   int64
}

// validateIDs checks that every id is positive: ids are snowflakes, and
// zero is what an unset field reads as.
func validateIDs(ids ...namedID) error {
	for _, n := range ids {
		if n.id <= 0 {
			return fmt.Errorf("%w: %s id %d must be positive", ErrInvalid, n.name, n.id)
		}
	}
	return nil
}

// validateIdempotencyKey applies the platform's rule for keys: printable
// ASCII, which keeps the store's "<user>:<key>" field names safe to log.
func validateIdempotencyKey(key string) error {
	if err := idempotency.CheckKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Store keeps stock and reservations and enforces the rules that need
// state, each operation atomically. The Redis adapter implements it.
type Store interface {
	// Preheat loads a sale split into buckets (1: one slot, as always).
	Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) (remaining int64, err error)
	Reserve(ctx context.Context, r ReserveRequest) (ReserveResult, error)
	// ReserveBatch reserves for each request as Reserve does, in one
	// round trip, and answers in the order of rs. The error is for the
	// batch as a whole (Redis unreachable): then none was answered.
	ReserveBatch(ctx context.Context, rs []ReserveRequest) ([]ReserveAnswer, error)
	Release(ctx context.Context, activityID, orderID int64) (released bool, err error)
	ReleaseUnpublished(ctx context.Context, activityID, orderID int64) (released bool, err error)
	// ReleaseBatch releases each order as Release does, in one round
	// trip, and answers in the order of refs. The error is for the batch
	// as a whole (Redis unreachable): then none was answered.
	ReleaseBatch(ctx context.Context, refs []OrderRef) ([]ReleaseAnswer, error)
	MarkOrdered(ctx context.Context, refs []OrderRef) ([]MarkOutcome, error)
	Confirm(ctx context.Context, activityID, orderID int64) error
	Stock(ctx context.Context, activityID int64) (Stock, error)
	Reservation(ctx context.Context, activityID, orderID int64) (Reservation, error)
	// RestoreLimit gives quantity units of a confirmed reservation back to
	// its buyer's limit, once per refund id (false on a repeat).
	RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) (bool, error)
	// ClaimDue takes up to limit entries due at now from the expiry
	// queues of activityIDs (every preheated activity when empty), leased
	// until leaseUntil.
	ClaimDue(ctx context.Context, activityIDs []int64, now time.Time, limit int, leaseUntil time.Time) ([]DueEntry, error)
	// SettleDue ends claims that are still the caller's: it acknowledges
	// them when requeueAt is zero, else puts them back due at requeueAt.
	// It reports per entry whether the claim was settled.
	SettleDue(ctx context.Context, entries []DueEntry, requeueAt time.Time) ([]bool, error)
	// Fenced returns the activities whose state may have lost writes and
	// is not rebuilt yet.
	Fenced(ctx context.Context) ([]int64, error)
	// RebuildStock rewrites a fenced activity's state from r and unfences
	// it; a live activity is left alone.
	RebuildStock(ctx context.Context, r Rebuild) (RebuildResult, error)
}
