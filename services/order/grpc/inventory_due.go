package grpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/proto/limits"
	"github.com/flashsale/flashsale/services/order"
)

// releaseErrors maps the answers of a plain release: CONFLICT there means
// the reservation is confirmed (paid), not ordered.
var releaseErrors = errcode.Table{
	{Err: order.ErrConflict, Code: errcode.Conflict},
	{Err: order.ErrNotFound, Code: errcode.NotFound},
	{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: order.ErrUnavailable, Code: errcode.Unavailable},
}

// Release gives back the stock of an order that ended unpaid; it fails
// with order.ErrConflict when the reservation is confirmed. A reservation
// that does not exist holds nothing, so that is no error.
func (i *Inventory) Release(ctx context.Context, activityID, orderID int64) error {
	_, err := i.c.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: activityID, OrderId: orderID})
	if err == nil {
		return nil
	}
	if err = releaseErrors.Domain(err); errors.Is(err, order.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("inventory release: %w", err)
}

// ReleaseBatch gives back the stock of orders that ended unpaid, in
// ReleaseBatch calls of at most limits.MaxBatch, and answers per order
// as Release would. The error is for a call as a whole.
func (i *Inventory) ReleaseBatch(ctx context.Context, orders []order.DueEntry) ([]error, error) {
	out := make([]error, 0, len(orders))
	for first := 0; first < len(orders); first += limits.MaxBatch {
		chunk := orders[first:min(first+limits.MaxBatch, len(orders))]
		req := &inventoryv1.ReleaseBatchRequest{Orders: make([]*inventoryv1.OrderRef, len(chunk))}
		for j, en := range chunk {
			req.Orders[j] = &inventoryv1.OrderRef{ActivityId: en.ActivityID, OrderId: en.OrderID}
		}
		resp, err := i.c.ReleaseBatch(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("inventory release batch: %w", releaseErrors.Domain(err))
		}
		if len(resp.GetAnswers()) != len(chunk) {
			return nil, fmt.Errorf("inventory release batch: %d answers for %d orders", len(resp.GetAnswers()), len(chunk))
		}
		for j, a := range resp.GetAnswers() {
			var err error
			switch e := a.GetError(); {
			case e != nil:
				err = releaseErrors.Domain(errcode.New(errcode.Code(e.GetCode()), e.GetMessage()))
				if errors.Is(err, order.ErrNotFound) {
					err = nil // nothing reserved, nothing held
				} else {
					err = fmt.Errorf("inventory release order %d: %w", chunk[j].OrderID, err)
				}
			case a.GetReleased() == nil:
				err = fmt.Errorf("inventory release order %d: an answer with neither a result nor an error", chunk[j].OrderID)
			}
			out = append(out, err)
		}
	}
	return out, nil
}

// reservationStatuses maps the inventory's reservation statuses.
var reservationStatuses = map[inventoryv1.ReservationStatus]order.ReservationStatus{
	inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED:  order.ReservationReserved,
	inventoryv1.ReservationStatus_RESERVATION_STATUS_CONFIRMED: order.ReservationConfirmed,
	inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED:  order.ReservationReleased,
}

// Reservation returns the state of an order's reservation, or
// order.ErrNotFound.
func (i *Inventory) Reservation(ctx context.Context, activityID, orderID int64) (order.ReservationState, error) {
	r, err := i.c.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: activityID, OrderId: orderID})
	if err != nil {
		return order.ReservationState{}, fmt.Errorf("inventory reservation: %w", releaseErrors.Domain(err))
	}
	return order.ReservationState{
		Status: reservationStatuses[r.GetStatus()], ExpiresAt: r.GetExpiresAt().AsTime(),
		Ordered: r.GetOrdered(), Unpublished: r.GetUnpublished(),
	}, nil
}

// DueQueue implements order.DueQueue with the inventory's expiry queue.
type DueQueue struct {
	c inventoryv1.InventoryServiceClient
}

// NewDueQueue returns a client on cc.
func NewDueQueue(cc grpc.ClientConnInterface) *DueQueue {
	return &DueQueue{c: inventoryv1.NewInventoryServiceClient(cc)}
}

// Claim takes up to limit due entries.
func (q *DueQueue) Claim(ctx context.Context, activityIDs []int64, now time.Time, limit int, lease time.Duration) ([]order.DueEntry, error) {
	resp, err := q.c.ClaimDue(ctx, &inventoryv1.ClaimDueRequest{
		ActivityIds: activityIDs, Now: timestamppb.New(now), Limit: int32(limit), Lease: durationpb.New(lease),
	})
	if err != nil {
		return nil, fmt.Errorf("inventory claim due: %w", err)
	}
	out := make([]order.DueEntry, len(resp.GetEntries()))
	for i, e := range resp.GetEntries() {
		out[i] = order.DueEntry{
			ActivityID: e.GetActivityId(), OrderID: e.GetOrderId(),
			DueAt: e.GetDueAt().AsTime(), LeaseUntil: e.GetLeaseUntil().AsTime(),
		}
	}
	return out, nil
}

// Ack removes entries whose work is done. An entry whose claim lapsed and
// was taken again is its new claimer's to settle, so that is no error.
func (q *DueQueue) Ack(ctx context.Context, entries []order.DueEntry) error {
	if _, err := q.c.AckDue(ctx, &inventoryv1.AckDueRequest{Entries: dueEntries(entries)}); err != nil {
		return fmt.Errorf("inventory ack due: %w", err)
	}
	return nil
}

// Requeue puts entries back, due at at.
func (q *DueQueue) Requeue(ctx context.Context, entries []order.DueEntry, at time.Time) error {
	if _, err := q.c.RequeueDue(ctx, &inventoryv1.RequeueDueRequest{Entries: dueEntries(entries), DueAt: timestamppb.New(at)}); err != nil {
		return fmt.Errorf("inventory requeue due: %w", err)
	}
	return nil
}

func dueEntries(in []order.DueEntry) []*inventoryv1.DueEntry {
	out := make([]*inventoryv1.DueEntry, len(in))
	for i, e := range in {
		out[i] = &inventoryv1.DueEntry{
			ActivityId: e.ActivityID, OrderId: e.OrderID,
			DueAt: timestamppb.New(e.DueAt), LeaseUntil: timestamppb.New(e.LeaseUntil),
		}
	}
	return out
}
