// Package grpc adapts the order service to gRPC: the OrderService server
// over the domain's use cases (server.go, the incoming side), and the
// clients of the services the domain sees as its ports, each in the files
// named for the service called: inventory*.go (order.Reservations, the due
// queue, the reserve batcher), product.go (order.Activities,
// order.Catalog), marketing.go (order.Pricing), payment.go
// (order.Payments).
package grpc

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
)

// Errors maps the domain's errors to API codes (and, for clients, back).
var Errors = errcode.Table{
	{Err: order.ErrNotFound, Code: errcode.NotFound},
	{Err: order.ErrForbidden, Code: errcode.Forbidden},
	{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: order.ErrSoldOut, Code: errcode.SoldOut},
	{Err: order.ErrLimitExceeded, Code: errcode.LimitExceeded},
	{Err: order.ErrActivityNotActive, Code: errcode.ActivityNotActive},
	{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	{Err: order.ErrSaleFenced, Code: errcode.Unavailable},
	{Err: order.ErrConflict, Code: errcode.Conflict},
}

// UseCases are the domain's use cases the OrderService serves, one per
// group of calls.
type UseCases struct {
	Placing    *order.Placing    // PlaceSeckillOrder
	Lookup     *order.Lookup     // GetOrder, ListOrders
	Cancelling *order.Cancelling // CancelOrder
	Paying     *order.Paying     // MarkPaid
	Refunding  *order.Refunding  // RefundOrder
	Checkout   *order.Checkout   // QuoteRegularOrder, CreateRegularOrder
}

// Server implements orderv1.OrderServiceServer over the use cases. Its
// handlers return domain errors; the rpc server maps them by Errors.
type Server struct {
	orderv1.UnimplementedOrderServiceServer
	uc     UseCases
	log    *slog.Logger
	tracer trace.Tracer
}

// NewServer returns the server of uc, logging on log what the rpc server
// logs of a unary call: a batch member's failure that maps to INTERNAL.
func NewServer(uc UseCases, log *slog.Logger) *Server {
	return &Server{uc: uc, log: log, tracer: otel.Tracer("github.com/flashsale/flashsale/services/order/grpc")}
}

// PlaceSeckillOrder reserves and publishes a flash-sale order.
func (s *Server) PlaceSeckillOrder(ctx context.Context, req *orderv1.PlaceSeckillOrderRequest) (*orderv1.PlaceSeckillOrderResponse, error) {
	id, err := s.uc.Placing.PlaceSeckillOrder(ctx, req.GetUserId(), req.GetActivityId(), req.GetQuantity(), req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &orderv1.PlaceSeckillOrderResponse{OrderId: id, Status: orderv1.OrderStatus_ORDER_STATUS_PROCESSING}, nil
}

// PlaceSeckillOrderBatch places each order of the batch as
// PlaceSeckillOrder would, all at once: each within its own deadline
// (capped by the call's), in its own trace (a server span per order, under
// the buy's span), its failure mapped by Errors as the rpc server maps a
// unary call's. The batch's context carries what the members share, the
// traffic class's mark among it.
func (s *Server) PlaceSeckillOrderBatch(ctx context.Context, req *orderv1.PlaceSeckillOrderBatchRequest) (*orderv1.PlaceSeckillOrderBatchResponse, error) {
	orders := req.GetOrders()
	out := &orderv1.PlaceSeckillOrderBatchResponse{Answers: make([]*orderv1.PlaceSeckillOrderAnswer, len(orders))}
	if len(orders) == 0 {
		return out, nil
	}
	// The last order is placed on the call's own goroutine, whose stack
	// the rpc server's worker has grown already: a new goroutine's stack
	// is copied bigger as the placement goes deep, and a batch of one,
	// the most common at a moderate rate, then starts none.
	last := len(orders) - 1
	var wg sync.WaitGroup
	for i, o := range orders[:last] {
		wg.Go(func() { out.Answers[i] = s.placeBatched(ctx, o) })
	}
	out.Answers[last] = s.placeBatched(ctx, orders[last])
	wg.Wait()
	return out, nil
}

// placeBatched places one order of a batch and returns its answer; a
// panic is answered INTERNAL, as the rpc server answers a unary call's.
func (s *Server) placeBatched(ctx context.Context, o *orderv1.BatchedSeckillOrder) (answer *orderv1.PlaceSeckillOrderAnswer) {
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "panic in a batched placement", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			answer = callError(errcode.New(errcode.Internal, "internal error"))
		}
	}()
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(o.GetTraceContext()))
	if d := o.GetDeadline(); d != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.AsTime())
		defer cancel()
	}
	ctx, span := s.tracer.Start(ctx, "place seckill order", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	resp, err := s.PlaceSeckillOrder(ctx, o.GetRequest())
	if err == nil {
		return &orderv1.PlaceSeckillOrderAnswer{Answer: &orderv1.PlaceSeckillOrderAnswer_Placed{Placed: resp}}
	}
	st := Errors.Status(err)
	if errcode.Of(st) == errcode.Internal {
		s.log.ErrorContext(ctx, "batched placement failed", "err", err)
	}
	return callError(st)
}

// callError is a batch member's answer of the status st.
func callError(st error) *orderv1.PlaceSeckillOrderAnswer {
	gc, code, msg := errcode.Split(st)
	return &orderv1.PlaceSeckillOrderAnswer{Answer: &orderv1.PlaceSeckillOrderAnswer_Error{
		Error: &orderv1.CallError{GrpcCode: uint32(gc), Code: string(code), Message: msg}}}
}

// GetOrder returns one order, stored or in flight.
func (s *Server) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.Order, error) {
	o, err := s.uc.Lookup.GetOrder(ctx, req.GetOrderId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	return toProto(o), nil
}

// ListOrders returns a user's orders, newest first.
func (s *Server) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	orders, err := s.uc.Lookup.ListOrders(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	resp := &orderv1.ListOrdersResponse{Orders: make([]*orderv1.Order, len(orders))}
	for i, o := range orders {
		resp.Orders[i] = toProto(o)
	}
	return resp, nil
}

// CancelOrder cancels the owner's order while it waits for payment.
func (s *Server) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.Order, error) {
	o, err := s.uc.Cancelling.CancelOrder(ctx, req.GetOrderId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	return toProto(o), nil
}

// MarkPaid records that a payment paid its order, or answers that the
// order is not payable by it.
func (s *Server) MarkPaid(ctx context.Context, req *orderv1.MarkPaidRequest) (*orderv1.MarkPaidResponse, error) {
	var paidAt time.Time
	if req.GetPaidAt() != nil {
		paidAt = req.GetPaidAt().AsTime()
	}
	o, accepted, err := s.uc.Paying.MarkPaid(ctx, order.Paid{
		OrderID: req.GetOrderId(), PaymentID: req.GetPaymentId(), Channel: req.GetChannel(),
		Amount: req.GetAmount(), PaidAt: paidAt,
	})
	if err != nil {
		return nil, err
	}
	return &orderv1.MarkPaidResponse{Accepted: accepted, Order: toProto(o)}, nil
}

// RefundOrder refunds units of the owner's paid order.
func (s *Server) RefundOrder(ctx context.Context, req *orderv1.RefundOrderRequest) (*orderv1.RefundOrderResponse, error) {
	lines := make([]order.RefundLine, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = order.RefundLine{LineID: l.GetLineId(), Quantity: l.GetQuantity()}
	}
	r, o, err := s.uc.Refunding.RefundOrder(ctx, req.GetOrderId(), req.GetUserId(), req.GetIdempotencyKey(), lines)
	if err != nil {
		return nil, err
	}
	resp := &orderv1.RefundOrderResponse{RefundId: r.ID, Amount: r.Amount, Status: string(r.Status), Order: toProto(o)}
	for _, l := range r.Lines {
		resp.Lines = append(resp.Lines, &orderv1.RefundedLine{LineId: l.LineID, Quantity: l.Quantity, Amount: l.Amount})
	}
	return resp, nil
}

var statuses = map[order.Status]orderv1.OrderStatus{
	order.StatusProcessing:        orderv1.OrderStatus_ORDER_STATUS_PROCESSING,
	order.StatusPendingPayment:    orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT,
	order.StatusPaid:              orderv1.OrderStatus_ORDER_STATUS_PAID,
	order.StatusCancelled:         orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
	order.StatusExpired:           orderv1.OrderStatus_ORDER_STATUS_EXPIRED,
	order.StatusPartiallyRefunded: orderv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED,
	order.StatusRefunded:          orderv1.OrderStatus_ORDER_STATUS_REFUNDED,
}

var kinds = map[order.Kind]orderv1.OrderKind{
	order.KindSeckill: orderv1.OrderKind_ORDER_KIND_SECKILL,
	order.KindRegular: orderv1.OrderKind_ORDER_KIND_REGULAR,
}

func toProto(o order.Order) *orderv1.Order {
	m := &orderv1.Order{
		OrderId:    o.ID,
		UserId:     o.UserID,
		Kind:       kinds[o.Kind],
		Status:     statuses[o.Status],
		ActivityId: o.ActivityID,
		Total:      o.Total,
		Discount:   o.Discount,
		Payable:    o.Payable,
		CreatedAt:  timestamp(o.CreatedAt),
		ExpiresAt:  timestamp(o.ExpiresAt),
		PaidAt:     timestamp(o.PaidAt),
		CouponId:   o.CouponID,
		Refunded:   o.Refunded,
	}
	for _, p := range o.Promotions {
		m.Promotions = append(m.Promotions, &orderv1.OrderPromotion{Id: p.ID, Kind: p.Kind, Amount: p.Amount})
	}
	if o.PaymentID != 0 {
		// Only a payment that succeeded is ever recorded on an order.
		m.Payment = &orderv1.OrderPayment{PaymentId: o.PaymentID, Channel: o.PaymentChannel, Status: "SUCCEEDED"}
	}
	for _, l := range o.Lines {
		m.Lines = append(m.Lines, &orderv1.OrderLine{
			LineId: l.ID, SkuId: l.SKUID, Quantity: l.Quantity, UnitPrice: l.UnitPrice,
			Amount: l.Amount, Discount: l.Discount, Payable: l.Payable,
			RefundedQuantity: l.RefundedQuantity, Refunded: l.Refunded,
		})
	}
	return m
}

// timestamp leaves a zero time (not paid yet) unset.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// QuoteRegularOrder prices a regular cart.
func (s *Server) QuoteRegularOrder(ctx context.Context, req *orderv1.RegularOrderRequest) (*orderv1.Order, error) {
	o, err := s.uc.Checkout.QuoteRegularOrder(ctx, req.GetUserId(), cartLines(req), req.GetCouponId())
	if err != nil {
		return nil, err
	}
	return toProto(o), nil
}

// CreateRegularOrder creates a regular order.
func (s *Server) CreateRegularOrder(ctx context.Context, req *orderv1.RegularOrderRequest) (*orderv1.Order, error) {
	o, err := s.uc.Checkout.CreateRegularOrder(ctx, req.GetUserId(), cartLines(req), req.GetCouponId(), req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return toProto(o), nil
}

func cartLines(req *orderv1.RegularOrderRequest) []order.CartLine {
	lines := make([]order.CartLine, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = order.CartLine{SKUID: l.GetSkuId(), Quantity: l.GetQuantity()}
	}
	return lines
}
