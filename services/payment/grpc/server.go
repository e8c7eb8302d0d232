// Package grpc adapts the payment service to gRPC: the PaymentService
// server, and the client of the order service that the domain sees as
// payment.Orders.
package grpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/payment"
)

// Errors maps the domain's errors to API codes.
var Errors = errcode.Table{
	{Err: payment.ErrNotFound, Code: errcode.NotFound},
	{Err: payment.ErrForbidden, Code: errcode.Forbidden},
	{Err: payment.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: payment.ErrConflict, Code: errcode.Conflict},
	{Err: payment.ErrUnauthenticated, Code: errcode.Unauthenticated},
	{Err: payment.ErrUnavailable, Code: errcode.Unavailable},
}

// Server implements paymentv1.PaymentServiceServer over the domain
// service.
type Server struct {
	paymentv1.UnimplementedPaymentServiceServer
	svc    *payment.Service
	shared PutChannelSetting
}

// PutChannelSetting stores a channel's setting where every replica of the
// service follows it (the config centre, watched into Router.Apply).
type PutChannelSetting func(ctx context.Context, channel string, s payment.ChannelSetting) error

// NewServer returns the server of svc. With shared set, UpdateChannel
// stores the change there for every replica (and applies it here at once);
// without it, the change is this process's alone. A pressure test's
// payments are refused unless svc has somewhere to pay them
// (Service.PressureTestsPay).
func NewServer(svc *payment.Service, shared PutChannelSetting) *Server {
	return &Server{svc: svc, shared: shared}
}

// errLiveChannels refuses a pressure test's payment when the channels are
// the real ones and no stub stands beside them: nothing there keeps its
// trades apart (a stub does, the 挡板 of docs/pressure-test.md, as the
// simulator's shadow twins do in development), so it would take real
// money.
var errLiveChannels = fmt.Errorf("a pressure test cannot pay through the live channels (FLASHSALE_CHANNELS_LIVE) without a stub (FLASHSALE_STUB_CHANNELS_URL): %w", payment.ErrUnavailable)

// Pay starts paying an order.
func (s *Server) Pay(ctx context.Context, req *paymentv1.PayRequest) (*paymentv1.Payment, error) {
	if shadow.Is(ctx) && !s.svc.PressureTestsPay() {
		return nil, errLiveChannels
	}
	p, err := s.svc.Pay(ctx, req.GetOrderId(), req.GetUserId(), req.GetChannel())
	if err != nil {
		return nil, err
	}
	return toProto(p), nil
}

// GetPayment returns one payment.
func (s *Server) GetPayment(ctx context.Context, req *paymentv1.GetPaymentRequest) (*paymentv1.Payment, error) {
	p, err := s.svc.Payment(ctx, req.GetPaymentId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	return toProto(p), nil
}

// HandleCallback settles a channel's notification.
func (s *Server) HandleCallback(ctx context.Context, req *paymentv1.CallbackRequest) (*paymentv1.CallbackResponse, error) {
	if err := s.svc.HandleCallback(ctx, req.GetChannel(), req.GetBody(), req.GetSignature()); err != nil {
		return nil, err
	}
	return &paymentv1.CallbackResponse{}, nil
}

// UpdateChannel changes a channel's routing settings: in the config
// centre first, when there is one, so a change that every replica will not
// follow is refused rather than made here alone.
func (s *Server) UpdateChannel(ctx context.Context, req *paymentv1.UpdateChannelRequest) (*paymentv1.Channel, error) {
	// Routing is one for both traffic classes: a pressure test that
	// changed it would change the real buyers' (docs/pressure-test.md).
	if shadow.Is(ctx) {
		return nil, fmt.Errorf("update channel %s: %w: a pressure test cannot change the channels' routing", req.GetChannel(), payment.ErrInvalid)
	}
	set := payment.ChannelSetting{Weight: req.GetWeight(), Enabled: req.GetEnabled()}
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("update channel %s: %w", req.GetChannel(), err)
	}
	if !s.svc.Router().Has(req.GetChannel()) {
		return nil, fmt.Errorf("update channel %s: %w", req.GetChannel(), payment.ErrNotFound)
	}
	if s.shared != nil {
		if err := s.shared(ctx, req.GetChannel(), set); err != nil {
			return nil, fmt.Errorf("update channel %s: %v: %w", req.GetChannel(), err, payment.ErrUnavailable)
		}
	}
	st, err := s.svc.Router().Set(req.GetChannel(), set.Weight, set.Enabled)
	if err != nil {
		return nil, err
	}
	return channelProto(st), nil
}

// ListChannels reports every channel's routing state.
func (s *Server) ListChannels(context.Context, *paymentv1.ListChannelsRequest) (*paymentv1.ListChannelsResponse, error) {
	resp := &paymentv1.ListChannelsResponse{}
	for _, st := range s.svc.Router().States() {
		resp.Channels = append(resp.Channels, channelProto(st))
	}
	return resp, nil
}

// Reconcile runs reconciliation now. A channel that failed does not hide
// the reports of the others: every channel's report comes back (a failed
// one's as far as it got) with the failures beside them, and the call
// fails only when every channel failed.
func (s *Server) Reconcile(ctx context.Context, _ *paymentv1.ReconcileRequest) (*paymentv1.ReconcileResponse, error) {
	reports, err := s.svc.Reconcile(ctx)
	resp := &paymentv1.ReconcileResponse{}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			resp.Failures = append(resp.Failures, e.Error())
		}
	} else if err != nil {
		resp.Failures = []string{err.Error()}
	}
	if err != nil && len(resp.Failures) >= len(reports) {
		return nil, err
	}
	for _, r := range reports {
		found := make(map[string]int64, len(r.Found))
		for kind, n := range r.Found {
			found[string(kind)] = int64(n)
		}
		resp.Reports = append(resp.Reports, &paymentv1.ReconcileReport{
			Channel: r.Channel, Checked: int64(r.Checked), Repaired: r.Repaired, Unknown: r.Unknown, Mismatched: r.Mismatched,
			Unpaid: r.Unpaid, Found: found,
		})
	}
	return resp, nil
}

// RefundPayment returns money of a paid payment through its channel.
func (s *Server) RefundPayment(ctx context.Context, req *paymentv1.RefundPaymentRequest) (*paymentv1.RefundPaymentResponse, error) {
	r, err := s.svc.RefundPayment(ctx, req.GetPaymentId(), req.GetRefundId(), req.GetAmount())
	if err != nil {
		return nil, err
	}
	return &paymentv1.RefundPaymentResponse{RefundId: r.ID, PaymentId: r.PaymentID, Amount: r.Amount, RefundNo: r.RefundNo}, nil
}

func channelProto(st payment.ChannelState) *paymentv1.Channel {
	return &paymentv1.Channel{
		Name: st.Name, Weight: st.Weight, Enabled: st.Enabled, Breaker: st.Breaker,
		SuccessRate: st.SuccessRate, LatencyMs: float64(st.Latency) / float64(time.Millisecond), Calls: int64(st.Calls),
	}
}

var statuses = map[payment.Status]paymentv1.PaymentStatus{
	payment.StatusPaying:    paymentv1.PaymentStatus_PAYMENT_STATUS_PAYING,
	payment.StatusSucceeded: paymentv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED,
	payment.StatusFailed:    paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED,
	payment.StatusRefunded:  paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED,
}

func toProto(p payment.Payment) *paymentv1.Payment {
	m := &paymentv1.Payment{
		PaymentId: p.ID, OrderId: p.OrderID, UserId: p.UserID, Channel: p.Channel, Amount: p.Amount,
		Status: statuses[p.Status], PayUrl: p.PayURL, CreatedAt: timestamppb.New(p.CreatedAt),
	}
	if !p.PaidAt.IsZero() {
		m.PaidAt = timestamppb.New(p.PaidAt)
	}
	return m
}
