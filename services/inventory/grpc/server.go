// Package grpc serves the inventory domain as inventoryv1.InventoryService.
// Handlers translate messages and return domain errors; the platform's rpc
// server maps them to API error codes through Errors.
package grpc

import (
	"context"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/inventory"
)

// Errors maps the inventory's domain errors to API error codes. Clients in
// other services see only the codes and map them to their own errors.
var Errors = errcode.Table{
	{Err: inventory.ErrSoldOut, Code: errcode.SoldOut},
	{Err: inventory.ErrLimitExceeded, Code: errcode.LimitExceeded},
	{Err: inventory.ErrNotPreheated, Code: errcode.NotFound},
	{Err: inventory.ErrReservationNotFound, Code: errcode.NotFound},
	// Only a reservation whose caller has left can hear it.
	{Err: inventory.ErrGivenUp, Code: errcode.Conflict},
	{Err: inventory.ErrAlreadyConfirmed, Code: errcode.Conflict},
	{Err: inventory.ErrAlreadyReleased, Code: errcode.Conflict},
	// The order exists: the placing service answers its buyer with it.
	{Err: inventory.ErrAlreadyOrdered, Code: errcode.Conflict},
	{Err: inventory.ErrNotConfirmed, Code: errcode.Conflict},
	{Err: inventory.ErrRestoreTooMany, Code: errcode.Conflict},
	// Redis may have lost the sale's last writes: retry once rebuilt.
	{Err: inventory.ErrFenced, Code: errcode.Unavailable},
	{Err: inventory.ErrInvalid, Code: errcode.InvalidArgument},
}

// Inventory is what the server needs of the domain; *inventory.Service
// implements it.
type Inventory interface {
	Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) (int64, error)
	Reserve(ctx context.Context, r inventory.ReserveRequest) (inventory.ReserveResult, error)
	ReserveBatch(ctx context.Context, rs []inventory.ReserveRequest) ([]inventory.ReserveAnswer, error)
	Release(ctx context.Context, activityID, orderID int64) (bool, error)
	ReleaseUnpublished(ctx context.Context, activityID, orderID int64) (bool, error)
	ReleaseBatch(ctx context.Context, refs []inventory.OrderRef) ([]inventory.ReleaseAnswer, error)
	MarkOrdered(ctx context.Context, refs []inventory.OrderRef) ([]inventory.MarkOutcome, error)
	Confirm(ctx context.Context, activityID, orderID int64) error
	Stock(ctx context.Context, activityID int64) (inventory.Stock, error)
	Reservation(ctx context.Context, activityID, orderID int64) (inventory.Reservation, error)
	RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) (bool, error)
	ClaimDue(ctx context.Context, activityIDs []int64, now time.Time, limit int, lease time.Duration) ([]inventory.DueEntry, error)
	AckDue(ctx context.Context, entries []inventory.DueEntry) ([]bool, error)
	RequeueDue(ctx context.Context, entries []inventory.DueEntry, dueAt time.Time) ([]bool, error)
	Fenced(ctx context.Context) ([]int64, error)
	RebuildStock(ctx context.Context, r inventory.Rebuild) (inventory.RebuildResult, error)
}

// Server implements inventoryv1.InventoryServiceServer.
type Server struct {
	inventoryv1.UnimplementedInventoryServiceServer
	inv Inventory
}

// NewServer returns a server over inv.
func NewServer(inv Inventory) *Server { return &Server{inv: inv} }

// Preheat implements inventoryv1.InventoryServiceServer.
func (s *Server) Preheat(ctx context.Context, req *inventoryv1.PreheatRequest) (*inventoryv1.PreheatResponse, error) {
	remaining, err := s.inv.Preheat(ctx, req.GetActivityId(), req.GetStock(), req.GetPerUserLimit(), int(req.GetBuckets()))
	if err != nil {
		return nil, err
	}
	return &inventoryv1.PreheatResponse{Remaining: remaining}, nil
}

// Reserve implements inventoryv1.InventoryServiceServer.
func (s *Server) Reserve(ctx context.Context, req *inventoryv1.ReserveRequest) (*inventoryv1.ReserveResponse, error) {
	res, err := s.inv.Reserve(ctx, reserveRequestOf(req))
	if err != nil {
		return nil, err
	}
	return reserveResponseOf(res), nil
}

// ReserveBatch implements inventoryv1.InventoryServiceServer. Each
// reservation's refusal travels as the code and message its own Reserve
// call would have failed with, mapped by the same table.
func (s *Server) ReserveBatch(ctx context.Context, req *inventoryv1.ReserveBatchRequest) (*inventoryv1.ReserveBatchResponse, error) {
	rs := make([]inventory.ReserveRequest, len(req.GetReservations()))
	for i, r := range req.GetReservations() {
		rs[i] = reserveRequestOf(r)
	}
	answers, err := s.inv.ReserveBatch(ctx, rs)
	if err != nil {
		return nil, err
	}
	out := &inventoryv1.ReserveBatchResponse{Answers: make([]*inventoryv1.ReserveAnswer, len(answers))}
	for i, a := range answers {
		if a.Err != nil {
			out.Answers[i] = &inventoryv1.ReserveAnswer{Answer: &inventoryv1.ReserveAnswer_Error{Error: callError(a.Err)}}
			continue
		}
		out.Answers[i] = &inventoryv1.ReserveAnswer{Answer: &inventoryv1.ReserveAnswer_Reserved{Reserved: reserveResponseOf(a.Result)}}
	}
	return out, nil
}

// callError is a batch member's failure as the code and message its own
// call would have failed with, mapped by the same table.
func callError(err error) *inventoryv1.ReserveError {
	st := status.Convert(Errors.Status(err))
	return &inventoryv1.ReserveError{Code: string(errcode.Of(st.Err())), Message: st.Message()}
}

func reserveRequestOf(req *inventoryv1.ReserveRequest) inventory.ReserveRequest {
	return inventory.ReserveRequest{
		ActivityID:     req.GetActivityId(),
		UserID:         req.GetUserId(),
		Quantity:       req.GetQuantity(),
		OrderID:        req.GetOrderId(),
		IdempotencyKey: req.GetIdempotencyKey(),
		ExpiresAt:      timeOf(req.GetExpiresAt()),
	}
}

func reserveResponseOf(res inventory.ReserveResult) *inventoryv1.ReserveResponse {
	return &inventoryv1.ReserveResponse{OrderId: res.OrderID, Replayed: res.Replayed, Remaining: res.Remaining}
}

// Release implements inventoryv1.InventoryServiceServer. An unpublished
// release is refused with CONFLICT once the reservation is marked ordered.
func (s *Server) Release(ctx context.Context, req *inventoryv1.ReleaseRequest) (*inventoryv1.ReleaseResponse, error) {
	release := s.inv.Release
	if req.GetUnpublished() {
		release = s.inv.ReleaseUnpublished
	}
	released, err := release(ctx, req.GetActivityId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &inventoryv1.ReleaseResponse{Released: released}, nil
}

// ReleaseBatch implements inventoryv1.InventoryServiceServer. Each
// release's failure travels as the code and message its own Release call
// would have failed with.
func (s *Server) ReleaseBatch(ctx context.Context, req *inventoryv1.ReleaseBatchRequest) (*inventoryv1.ReleaseBatchResponse, error) {
	refs := make([]inventory.OrderRef, len(req.GetOrders()))
	for i, r := range req.GetOrders() {
		refs[i] = inventory.OrderRef{ActivityID: r.GetActivityId(), OrderID: r.GetOrderId()}
	}
	answers, err := s.inv.ReleaseBatch(ctx, refs)
	if err != nil {
		return nil, err
	}
	out := &inventoryv1.ReleaseBatchResponse{Answers: make([]*inventoryv1.ReleaseAnswer, len(answers))}
	for i, a := range answers {
		if a.Err != nil {
			out.Answers[i] = &inventoryv1.ReleaseAnswer{Answer: &inventoryv1.ReleaseAnswer_Error{Error: callError(a.Err)}}
			continue
		}
		out.Answers[i] = &inventoryv1.ReleaseAnswer{Answer: &inventoryv1.ReleaseAnswer_Released{
			Released: &inventoryv1.ReleaseResponse{Released: a.Released},
		}}
	}
	return out, nil
}

// Confirm implements inventoryv1.InventoryServiceServer.
func (s *Server) Confirm(ctx context.Context, req *inventoryv1.ConfirmRequest) (*inventoryv1.ConfirmResponse, error) {
	if err := s.inv.Confirm(ctx, req.GetActivityId(), req.GetOrderId()); err != nil {
		return nil, err
	}
	return &inventoryv1.ConfirmResponse{}, nil
}

// MarkOrdered implements inventoryv1.InventoryServiceServer.
func (s *Server) MarkOrdered(ctx context.Context, req *inventoryv1.MarkOrderedRequest) (*inventoryv1.MarkOrderedResponse, error) {
	refs := make([]inventory.OrderRef, len(req.GetOrders()))
	for i, o := range req.GetOrders() {
		refs[i] = inventory.OrderRef{ActivityID: o.GetActivityId(), OrderID: o.GetOrderId()}
	}
	outcomes, err := s.inv.MarkOrdered(ctx, refs)
	if err != nil {
		return nil, err
	}
	resp := &inventoryv1.MarkOrderedResponse{Outcomes: make([]inventoryv1.MarkOutcome, len(outcomes))}
	for i, o := range outcomes {
		resp.Outcomes[i] = markOutcomes[o]
	}
	return resp, nil
}

// markOutcomes maps domain outcomes to the proto enum.
var markOutcomes = map[inventory.MarkOutcome]inventoryv1.MarkOutcome{
	inventory.MarkMarked:   inventoryv1.MarkOutcome_MARK_OUTCOME_MARKED,
	inventory.MarkDrop:     inventoryv1.MarkOutcome_MARK_OUTCOME_DROP,
	inventory.MarkNotFound: inventoryv1.MarkOutcome_MARK_OUTCOME_NOT_FOUND,
}

// GetStock implements inventoryv1.InventoryServiceServer.
func (s *Server) GetStock(ctx context.Context, req *inventoryv1.GetStockRequest) (*inventoryv1.GetStockResponse, error) {
	st, err := s.inv.Stock(ctx, req.GetActivityId())
	if err != nil {
		return nil, err
	}
	return &inventoryv1.GetStockResponse{Remaining: st.Remaining, Total: st.Total}, nil
}

// GetReservation implements inventoryv1.InventoryServiceServer.
func (s *Server) GetReservation(ctx context.Context, req *inventoryv1.GetReservationRequest) (*inventoryv1.Reservation, error) {
	r, err := s.inv.Reservation(ctx, req.GetActivityId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &inventoryv1.Reservation{
		ActivityId:  r.ActivityID,
		OrderId:     r.OrderID,
		UserId:      r.UserID,
		Quantity:    r.Quantity,
		Status:      statuses[r.Status],
		ExpiresAt:   timestamppb.New(r.ExpiresAt),
		Ordered:     r.Ordered,
		Unpublished: r.Unpublished,
	}, nil
}

// ClaimDue implements inventoryv1.InventoryServiceServer.
func (s *Server) ClaimDue(ctx context.Context, req *inventoryv1.ClaimDueRequest) (*inventoryv1.ClaimDueResponse, error) {
	entries, err := s.inv.ClaimDue(ctx, req.GetActivityIds(), timeOf(req.GetNow()), int(req.GetLimit()), req.GetLease().AsDuration())
	if err != nil {
		return nil, err
	}
	resp := &inventoryv1.ClaimDueResponse{Entries: make([]*inventoryv1.DueEntry, len(entries))}
	for i, e := range entries {
		resp.Entries[i] = &inventoryv1.DueEntry{
			ActivityId: e.ActivityID, OrderId: e.OrderID,
			DueAt: timestamppb.New(e.DueAt), LeaseUntil: timestamppb.New(e.LeaseUntil),
		}
	}
	return resp, nil
}

// AckDue implements inventoryv1.InventoryServiceServer.
func (s *Server) AckDue(ctx context.Context, req *inventoryv1.AckDueRequest) (*inventoryv1.AckDueResponse, error) {
	acked, err := s.inv.AckDue(ctx, dueEntries(req.GetEntries()))
	if err != nil {
		return nil, err
	}
	return &inventoryv1.AckDueResponse{Acked: acked}, nil
}

// RequeueDue implements inventoryv1.InventoryServiceServer.
func (s *Server) RequeueDue(ctx context.Context, req *inventoryv1.RequeueDueRequest) (*inventoryv1.RequeueDueResponse, error) {
	requeued, err := s.inv.RequeueDue(ctx, dueEntries(req.GetEntries()), timeOf(req.GetDueAt()))
	if err != nil {
		return nil, err
	}
	return &inventoryv1.RequeueDueResponse{Requeued: requeued}, nil
}

// dueEntries turns entries handed back by a worker into domain entries.
func dueEntries(in []*inventoryv1.DueEntry) []inventory.DueEntry {
	out := make([]inventory.DueEntry, len(in))
	for i, e := range in {
		out[i] = inventory.DueEntry{
			ActivityID: e.GetActivityId(), OrderID: e.GetOrderId(),
			DueAt: timeOf(e.GetDueAt()), LeaseUntil: timeOf(e.GetLeaseUntil()),
		}
	}
	return out
}

// timeOf leaves a missing timestamp the zero time, which validation
// rejects where a time is required.
func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// statuses maps domain statuses to the proto enum; anything else reads as
// UNSPECIFIED.
var statuses = map[inventory.Status]inventoryv1.ReservationStatus{
	inventory.StatusReserved:  inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED,
	inventory.StatusConfirmed: inventoryv1.ReservationStatus_RESERVATION_STATUS_CONFIRMED,
	inventory.StatusReleased:  inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED,
}

// RestoreLimit implements inventoryv1.InventoryServiceServer.
func (s *Server) RestoreLimit(ctx context.Context, req *inventoryv1.RestoreLimitRequest) (*inventoryv1.RestoreLimitResponse, error) {
	restored, err := s.inv.RestoreLimit(ctx, req.GetActivityId(), req.GetOrderId(), req.GetRefundId(), req.GetQuantity())
	if err != nil {
		return nil, err
	}
	return &inventoryv1.RestoreLimitResponse{Restored: restored}, nil
}

// FencedStock implements inventoryv1.InventoryServiceServer.
func (s *Server) FencedStock(ctx context.Context, _ *inventoryv1.FencedStockRequest) (*inventoryv1.FencedStockResponse, error) {
	ids, err := s.inv.Fenced(ctx)
	if err != nil {
		return nil, err
	}
	return &inventoryv1.FencedStockResponse{ActivityIds: ids}, nil
}

// RebuildStock implements inventoryv1.InventoryServiceServer. An order's
// status that is not one of the three reads as invalid.
func (s *Server) RebuildStock(ctx context.Context, req *inventoryv1.RebuildStockRequest) (*inventoryv1.RebuildStockResponse, error) {
	r := inventory.Rebuild{ActivityID: req.GetActivityId(), Total: req.GetTotal(), PerUserLimit: req.GetPerUserLimit(),
		Orders: make([]inventory.HeldOrder, len(req.GetOrders()))}
	for i, o := range req.GetOrders() {
		var st inventory.Status
		for domain, wire := range statuses {
			if wire == o.GetStatus() {
				st = domain
			}
		}
		r.Orders[i] = inventory.HeldOrder{OrderID: o.GetOrderId(), UserID: o.GetUserId(), Quantity: o.GetQuantity(),
			Status: st, IdempotencyKey: o.GetIdempotencyKey(), ExpiresAt: timeOf(o.GetExpiresAt()), Restored: o.GetRestored()}
	}
	res, err := s.inv.RebuildStock(ctx, r)
	if err != nil {
		return nil, err
	}
	return &inventoryv1.RebuildStockResponse{Rebuilt: res.Rebuilt, StockBefore: res.StockBefore, Stock: res.Stock,
		ReservationsRepaired: res.Reservations, UserCountsRepaired: res.UserCounts,
		ExpiryEntriesRepaired: res.ExpiryEntries, Overheld: res.Overheld}, nil
}
