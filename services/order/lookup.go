package order

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// StoredOrders reads persisted orders (Postgres).
type StoredOrders interface {
	// Order fails with ErrNotFound when the order is not stored (yet).
	Order(ctx context.Context, id int64) (Order, error)
	// UserOrders returns up to limit of the user's orders, newest first.
	UserOrders(ctx context.Context, userID int64, limit int) ([]Order, error)
	// SeckillByKey returns the user's stored flash-sale order of the
	// activity made with the idempotency key, or ErrNotFound.
	SeckillByKey(ctx context.Context, userID, activityID int64, key string) (Order, error)
}

// InFlightOrders reads the records of the orders that are published but
// not yet stored (Pending's reading side).
type InFlightOrders interface {
	// Get fails with ErrNotFound when there is no record for id.
	Get(ctx context.Context, id int64) (Placed, error)
	// UserPending returns the user's in-flight orders.
	UserPending(ctx context.Context, userID int64) ([]Placed, error)
}

// ListLimit bounds how many stored orders ListOrders returns.
const ListLimit = 100

// Lookup serves orders as buyers see them: the stored ones, and the
// in-flight ones as PROCESSING. Cancelling and refunding find their
// order through it too.
type Lookup struct {
	orders  StoredOrders
	pending InFlightOrders
}

// NewLookup returns the lookup over the stored and the in-flight orders.
func NewLookup(orders StoredOrders, pending InFlightOrders) *Lookup {
	return &Lookup{orders: orders, pending: pending}
}

// GetOrder returns the order: the stored one, or, while it is in flight,
// the PROCESSING order its event describes. userID, when not zero, must
// own it (ErrForbidden otherwise).
func (l *Lookup) GetOrder(ctx context.Context, orderID, userID int64) (Order, error) {
	const op = "get order"
	if orderID <= 0 || userID < 0 {
		return Order{}, fmt.Errorf("%s: %w: ids must be positive", op, ErrInvalid)
	}
	o, err := l.find(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if userID != 0 && o.UserID != userID {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, ErrForbidden)
	}
	return o, nil
}

func (l *Lookup) find(ctx context.Context, orderID int64) (Order, error) {
	o, err := l.orders.Order(ctx, orderID)
	if !errors.Is(err, ErrNotFound) {
		return o, err
	}
	p, err := l.pending.Get(ctx, orderID)
	if err == nil {
		return p.Order(StatusProcessing), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Order{}, err
	}
	// The consumer stores an order before it drops the pending record, so
	// an order that left Redis between the two reads is in Postgres now.
	return l.orders.Order(ctx, orderID)
}

// ListOrders returns the user's orders newest first: the in-flight ones
// and up to ListLimit stored ones.
func (l *Lookup) ListOrders(ctx context.Context, userID int64) ([]Order, error) {
	const op = "list orders"
	if userID <= 0 {
		return nil, fmt.Errorf("%s: %w: user id must be positive", op, ErrInvalid)
	}
	// Pending first: an order stored in between then shows up in the
	// stored list rather than in neither.
	pending, err := l.pending.UserPending(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	stored, err := l.orders.UserOrders(ctx, userID, ListLimit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	seen := make(map[int64]bool, len(stored))
	for _, o := range stored {
		seen[o.ID] = true
	}
	out := stored
	for _, p := range pending {
		if !seen[p.OrderID] {
			out = append(out, p.Order(StatusProcessing))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}
