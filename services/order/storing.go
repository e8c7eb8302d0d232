package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// OrderWriter stores orders in one transaction (the Postgres store). It
// skips those already stored and returns how many were new, and the
// conflicts: orders it refused because another order id holds their
// idempotency key. An error wrapping ErrInvalid says the store refuses
// the data itself (a value out of its range, a constraint), which no
// retry changes.
type OrderWriter interface {
	Insert(ctx context.Context, orders []Order) (stored int, conflicts []Order, err error)
}

// OrderMarker is the inventory as storing needs it: before a batch is
// stored, MarkOrdered marks every event's reservation as backing a stored
// order and answers, in the order of ps, whether the event may be stored.
// The mark is what makes placing's release of an order whose publish
// failed (ambiguously) lose the race instead of overselling.
type OrderMarker interface {
	MarkOrdered(ctx context.Context, ps []Placed) ([]MarkOutcome, error)
}

// PendingDeleter drops in-flight records once their orders are stored.
type PendingDeleter interface {
	Delete(ctx context.Context, ps ...Placed) error
}

// StoringConfig holds what storing placed orders needs.
type StoringConfig struct {
	Inventory OrderMarker
	Orders    OrderWriter
	Pending   PendingDeleter
	// Retry paces the attempts of a failed mark or insert.
	Retry Backoff
	// Observer hears of the orders stored (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// Storing turns OrderPlaced events into PENDING_PAYMENT orders, each only
// once the inventory has marked its reservation ordered (the order-writer
// consumer's domain step).
type Storing struct{ cfg StoringConfig }

// NewStoring returns the storing use case over cfg.
func NewStoring(cfg StoringConfig) *Storing {
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	if cfg.Retry.Logger == nil {
		cfg.Retry.Logger = cfg.Logger
	}
	return &Storing{cfg: cfg}
}

// Refusal is why an event is not stored.
type Refusal int

// The refusals.
const (
	// RefusedReleasedUnpublished: placing could not publish the event,
	// released its stock and told the buyer the order failed; the event
	// arrived anyway.
	RefusedReleasedUnpublished Refusal = iota + 1
	// RefusedNoReservation: no reservation backs the event.
	RefusedNoReservation
	// RefusedKeyConflict: another order holds the event's idempotency
	// key (a second order for one buyer's request).
	RefusedKeyConflict
	// RefusedUnstorable: the store refuses the event's data (Refused.Err
	// says why), which no retry changes.
	RefusedUnstorable
)

// String says why, in a few words.
func (r Refusal) String() string {
	switch r {
	case RefusedReleasedUnpublished:
		return "reservation released as unpublished"
	case RefusedNoReservation:
		return "no reservation"
	case RefusedKeyConflict:
		return "idempotency key of another order"
	case RefusedUnstorable:
		return "data the store refuses"
	}
	return fmt.Sprintf("refusal %d", int(r))
}

// Refused is an event StoreBatch did not store, and why.
type Refused struct {
	Placed Placed
	Why    Refusal
	// Err is the store's refusal of a RefusedUnstorable event.
	Err error
}

// StoredBatch is what StoreBatch did with a batch: how many orders it
// stored anew, and the events it refused, which the caller sets aside
// (dead-letters) before it acknowledges the batch.
type StoredBatch struct {
	Stored  int
	Refused []Refused
}

// unstorable is an order the store refuses whatever the retry, and why.
type unstorable struct {
	order Order
	err   error
}

// insert stores orders in one transaction, retried until it succeeds or
// ctx ends. When the store refuses the batch's data (ErrInvalid), no
// retry would change it, and one bad event must not hold back the orders
// beside it and behind it on its partition: the orders are then stored
// one at a time, and those the store refuses come back as unstorable.
func (st *Storing) insert(ctx context.Context, orders []Order) (stored int, conflicts []Order, bad []unstorable, err error) {
	stored, conflicts, refused, err := st.insertRetried(ctx, "store orders", orders)
	if err != nil || refused == nil {
		return stored, conflicts, nil, err
	}
	stored, conflicts = 0, nil
	for _, o := range orders {
		n, c, refused, err := st.insertRetried(ctx, "store order", []Order{o})
		switch {
		case err != nil:
			return 0, nil, nil, err
		case refused != nil:
			bad = append(bad, unstorable{order: o, err: refused})
		default:
			stored += n
			conflicts = append(conflicts, c...)
		}
	}
	return stored, conflicts, bad, nil
}

// insertRetried runs one Insert of orders until it succeeds, the store
// refuses its data (refused), or ctx ends (err).
func (st *Storing) insertRetried(ctx context.Context, what string, orders []Order) (stored int, conflicts []Order, refused, err error) {
	err = st.cfg.Retry.Do(ctx, what, func(actx context.Context) error {
		var err error
		stored, conflicts, err = st.cfg.Orders.Insert(actx, orders)
		if errors.Is(err, ErrInvalid) {
			refused = err
			return nil
		}
		refused = nil
		return err
	})
	return stored, conflicts, refused, err
}

// StoreBatch stores a batch of placed orders (distinct order ids): the
// inventory's marks first, then the orders it lets through in one
// transaction, then the pending records of the whole batch. The mark and
// the insert are retried (Retry) until they succeed or ctx ends, which
// fails the batch; each is idempotent, so a batch delivered again is
// stored once and refused the same way.
func (st *Storing) StoreBatch(ctx context.Context, placed []Placed) (StoredBatch, error) {
	var (
		out    StoredBatch
		orders []Order
	)
	// Marking first means an order is stored only once its reservation
	// can no longer be released as unpublished; a redelivered batch is
	// marked again, which changes nothing.
	var outcomes []MarkOutcome
	if len(placed) > 0 {
		if err := st.cfg.Retry.Do(ctx, "mark ordered", func(actx context.Context) error {
			var err error
			outcomes, err = st.cfg.Inventory.MarkOrdered(actx, placed)
			if err == nil && len(outcomes) != len(placed) {
				err = fmt.Errorf("inventory answered %d outcomes for %d orders", len(outcomes), len(placed))
			}
			return err
		}); err != nil {
			return StoredBatch{}, fmt.Errorf("store batch: %w", err)
		}
	}
	for i, p := range placed {
		why := RefusedNoReservation
		switch outcomes[i] {
		case MarkStore:
			orders = append(orders, p.Order(StatusPendingPayment))
			continue
		case MarkReleasedUnpublished:
			why = RefusedReleasedUnpublished
		}
		st.cfg.Logger.WarnContext(ctx, "order not stored: "+why.String(), "order_id", p.OrderID, "activity_id", p.ActivityID)
		out.Refused = append(out.Refused, Refused{Placed: p, Why: why})
	}
	byID := make(map[int64]Placed, len(placed))
	for _, p := range placed {
		byID[p.OrderID] = p
	}
	stored, conflicts, unstorable, err := st.insert(ctx, orders)
	if err != nil {
		return StoredBatch{}, fmt.Errorf("store batch: %w", err)
	}
	out.Stored = stored
	st.cfg.Observer.Stored(ctx, KindSeckill, out.Stored)
	for _, u := range unstorable {
		st.cfg.Logger.ErrorContext(ctx, "order refused: the store refuses its data", "order_id", u.order.ID, "err", u.err)
		out.Refused = append(out.Refused, Refused{Placed: byID[u.order.ID], Why: RefusedUnstorable, Err: u.err})
	}
	if len(conflicts) > 0 {
		// A second order for one buyer's request: its stock is reserved
		// under an id no order has, so it must stay visible to operators.
		for _, o := range conflicts {
			st.cfg.Logger.ErrorContext(ctx, "order refused: its idempotency key belongs to another order",
				"order_id", o.ID, "user_id", o.UserID, "activity_id", o.ActivityID)
			out.Refused = append(out.Refused, Refused{Placed: byID[o.ID], Why: RefusedKeyConflict})
		}
	}
	// A record left behind only shows a stored order as PROCESSING until
	// it expires, and readers look at Postgres first. The records of
	// refused events go too: those orders will never exist.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	if err := st.cfg.Pending.Delete(dctx, placed...); err != nil {
		st.cfg.Logger.WarnContext(ctx, "pending records not deleted", "orders", len(placed), "err", err)
	}
	return out, nil
}
