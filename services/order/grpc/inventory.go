package grpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/proto/limits"
	"github.com/flashsale/flashsale/services/order"
)

// Remote services answer with API codes; these tables turn the codes the
// order path acts on back into domain errors. Any other code stays a
// status error, which the server reports as INTERNAL.
var (
	// An unpublished release answers CONFLICT when the reservation is
	// marked ordered (or paid, which it can only be once ordered): the
	// order exists.
	inventoryErrors = append(errcode.Table{{Err: order.ErrAlreadyOrdered, Code: errcode.Conflict}}, stockErrors...)
	// A reservation answers CONFLICT only when a release of its order came
	// first (its caller gave the order up): nothing is held, and a retry
	// is a new attempt with a new order id.
	reserveErrors = append(errcode.Table{{Err: order.ErrUnavailable, Code: errcode.Conflict}}, stockErrors...)
	stockErrors   = errcode.Table{
		{Err: order.ErrSoldOut, Code: errcode.SoldOut},
		{Err: order.ErrLimitExceeded, Code: errcode.LimitExceeded},
		// An activity the inventory does not know was never preheated,
		// which for a buyer is an activity that does not exist.
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
	// A confirmation answers CONFLICT only for a released reservation.
	confirmErrors = errcode.Table{
		{Err: order.ErrStockReleased, Code: errcode.Conflict},
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
	// A restore answers CONFLICT for a reservation that is not confirmed
	// or has fewer units left, NOT_FOUND when there is none.
	restoreErrors = errcode.Table{
		{Err: order.ErrConflict, Code: errcode.Conflict},
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
)

// Inventory implements the domain's ports on the inventory service
// (order.Reservations, order.Confirmer, order.Releaser, ...).
type Inventory struct {
	c inventoryv1.InventoryServiceClient
	// reserves are the batchers of real and of pressure-test buys.
	reserves [2]*reserveBatcher
}

// NewInventory returns a client on cc.
func NewInventory(cc grpc.ClientConnInterface) *Inventory {
	c := inventoryv1.NewInventoryServiceClient(cc)
	return &Inventory{c: c, reserves: [2]*reserveBatcher{newReserveBatcher(c, false), newReserveBatcher(c, true)}}
}

// Reserve takes stock for one order. Concurrent reservations travel
// together in ReserveBatch calls (inventory_reserve_batch.go).
func (i *Inventory) Reserve(ctx context.Context, r order.Reservation) (order.Reserved, error) {
	batcher := i.reserves[0]
	if shadow.Is(ctx) {
		batcher = i.reserves[1]
	}
	resp, err := batcher.Do(ctx, &inventoryv1.ReserveRequest{
		ActivityId: r.ActivityID, UserId: r.UserID, Quantity: r.Quantity,
		OrderId: r.OrderID, IdempotencyKey: r.IdempotencyKey, ExpiresAt: timestamppb.New(r.ExpiresAt),
	})
	if err != nil {
		return order.Reserved{}, fmt.Errorf("inventory reserve: %w", reserveErrors.Domain(err))
	}
	return order.Reserved{OrderID: resp.GetOrderId(), Replayed: resp.GetReplayed(), Remaining: resp.GetRemaining()}, nil
}

// ReleaseUnpublished gives back the stock of an order whose event may not
// have been published; it fails with order.ErrAlreadyOrdered when the
// order consumer has already marked the reservation.
func (i *Inventory) ReleaseUnpublished(ctx context.Context, activityID, orderID int64) error {
	_, err := i.c.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: activityID, OrderId: orderID, Unpublished: true})
	if err != nil {
		return fmt.Errorf("inventory release unpublished: %w", inventoryErrors.Domain(err))
	}
	return nil
}

// Confirm marks an order's reservation paid.
func (i *Inventory) Confirm(ctx context.Context, activityID, orderID int64) error {
	if _, err := i.c.Confirm(ctx, &inventoryv1.ConfirmRequest{ActivityId: activityID, OrderId: orderID}); err != nil {
		return fmt.Errorf("inventory confirm: %w", confirmErrors.Domain(err))
	}
	return nil
}

// RestoreLimit gives a refunded order's units back to its buyer's limit.
func (i *Inventory) RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) error {
	_, err := i.c.RestoreLimit(ctx, &inventoryv1.RestoreLimitRequest{
		ActivityId: activityID, OrderId: orderID, RefundId: refundID, Quantity: quantity,
	})
	if err != nil {
		return fmt.Errorf("inventory restore limit: %w", restoreErrors.Domain(err))
	}
	return nil
}

// Fenced lists the sales the inventory has fenced.
func (i *Inventory) Fenced(ctx context.Context) ([]int64, error) {
	resp, err := i.c.FencedStock(ctx, &inventoryv1.FencedStockRequest{})
	if err != nil {
		return nil, fmt.Errorf("inventory fenced stock: %w", inventoryErrors.Domain(err))
	}
	return resp.GetActivityIds(), nil
}

// heldStatuses are the reservation statuses on the wire.
var heldStatuses = map[order.ReservationStatus]inventoryv1.ReservationStatus{
	order.ReservationReserved:  inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED,
	order.ReservationConfirmed: inventoryv1.ReservationStatus_RESERVATION_STATUS_CONFIRMED,
	order.ReservationReleased:  inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED,
}

// RebuildStock has the inventory rebuild a fenced sale from r.
func (i *Inventory) RebuildStock(ctx context.Context, r order.StockRebuild) (order.RebuildOutcome, error) {
	req := &inventoryv1.RebuildStockRequest{ActivityId: r.ActivityID, Total: r.Total, PerUserLimit: r.PerUserLimit,
		Orders: make([]*inventoryv1.HeldOrder, len(r.Orders))}
	for j, o := range r.Orders {
		req.Orders[j] = &inventoryv1.HeldOrder{OrderId: o.OrderID, UserId: o.UserID, Quantity: o.Quantity,
			Status: heldStatuses[o.Status], IdempotencyKey: o.IdempotencyKey, ExpiresAt: timestamppb.New(o.ExpiresAt),
			Restored: o.Restored}
	}
	resp, err := i.c.RebuildStock(ctx, req)
	if err != nil {
		return order.RebuildOutcome{}, fmt.Errorf("inventory rebuild stock of sale %d: %w", r.ActivityID, inventoryErrors.Domain(err))
	}
	return order.RebuildOutcome{Rebuilt: resp.GetRebuilt(), StockBefore: resp.GetStockBefore(), Stock: resp.GetStock(),
		Reservations: resp.GetReservationsRepaired(), UserCounts: resp.GetUserCountsRepaired(),
		ExpiryEntries: resp.GetExpiryEntriesRepaired(), Overheld: resp.GetOverheld()}, nil
}

// MarkOrdered marks the reservations of events the consumer is about to
// store and returns, in the order of ps, whether each may be stored.
func (i *Inventory) MarkOrdered(ctx context.Context, ps []order.Placed) ([]order.MarkOutcome, error) {
	out := make([]order.MarkOutcome, 0, len(ps))
	for first := 0; first < len(ps); first += limits.MaxBatch {
		chunk := ps[first:min(first+limits.MaxBatch, len(ps))]
		req := &inventoryv1.MarkOrderedRequest{Orders: make([]*inventoryv1.OrderRef, len(chunk))}
		for j, p := range chunk {
			req.Orders[j] = &inventoryv1.OrderRef{ActivityId: p.ActivityID, OrderId: p.OrderID}
		}
		resp, err := i.c.MarkOrdered(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("inventory mark ordered: %w", inventoryErrors.Domain(err))
		}
		if len(resp.GetOutcomes()) != len(chunk) {
			return nil, fmt.Errorf("inventory mark ordered: %d outcomes for %d orders", len(resp.GetOutcomes()), len(chunk))
		}
		for j, o := range resp.GetOutcomes() {
			m, ok := markOutcomes[o]
			if !ok {
				return nil, fmt.Errorf("inventory mark ordered: order %d: unknown outcome %s", chunk[j].OrderID, o)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// markOutcomes maps the inventory's answers to the domain's.
var markOutcomes = map[inventoryv1.MarkOutcome]order.MarkOutcome{
	inventoryv1.MarkOutcome_MARK_OUTCOME_MARKED:    order.MarkStore,
	inventoryv1.MarkOutcome_MARK_OUTCOME_DROP:      order.MarkReleasedUnpublished,
	inventoryv1.MarkOutcome_MARK_OUTCOME_NOT_FOUND: order.MarkNoReservation,
}
