package order

import (
	"context"
	"fmt"
	"log/slog"
)

// OrderWriter stores orders in one transaction (the Postgres store). It
// skips those already stored and returns how many were new, and the
// conflicts: orders it refused because another order id holds their
// idempotency key.
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
	}
	return fmt.Sprintf("refusal %d", int(r))
}

// Refused is an event StoreBatch did not store, and why.
type Refused struct {
	Placed Placed
	Why    Refusal
}

// StoredBatch is what StoreBatch did with a batch: how many orders it
// stored anew, and the events it refused, which the caller sets aside
// (dead-letters) before it acknowledges the batch.
type StoredBatch struct {
	Stored  int
	Refused []Refused
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
	var conflicts []Order
	if err := st.cfg.Retry.Do(ctx, "store orders", func(actx context.Context) error {
		var err error
		out.Stored, conflicts, err = st.cfg.Orders.Insert(actx, orders)
		return err
	}); err != nil {
		return StoredBatch{}, fmt.Errorf("store batch: %w", err)
	}
	st.cfg.Observer.Stored(ctx, KindSeckill, out.Stored)
	if len(conflicts) > 0 {
		byID := make(map[int64]Placed, len(placed))
		for _, p := range placed {
			byID[p.OrderID] = p
		}
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
