// Package grpc adapts the marketing service to gRPC: the MarketingService
// server and the error table its answers are mapped by.
package grpc

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/sweep"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	"github.com/flashsale/flashsale/services/marketing"
)

// Errors maps the domain's errors to API codes; give it to rpc.NewServer
// (and to clients, to map answers back).
var Errors = errcode.Table{
	{Err: marketing.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: marketing.ErrNotFound, Code: errcode.NotFound},
	{Err: marketing.ErrCouponsExhausted, Code: errcode.SoldOut},
	{Err: marketing.ErrClaimLimit, Code: errcode.LimitExceeded},
	{Err: marketing.ErrNotClaimable, Code: errcode.Conflict},
	{Err: marketing.ErrCouponUsed, Code: errcode.Conflict},
	// Only a caller that has left hears it.
	{Err: marketing.ErrGivenUp, Code: errcode.Conflict},
	{Err: marketing.ErrCouponNotApplicable, Code: errcode.Conflict},
}

// Server implements marketingv1.MarketingServiceServer over the domain
// service. Its handlers return domain errors; the rpc server maps them by
// Errors.
type Server struct {
	marketingv1.UnimplementedMarketingServiceServer
	svc *marketing.Service
}

// NewServer returns the server of svc.
func NewServer(svc *marketing.Service) *Server { return &Server{svc: svc} }

var kindsToProto = map[marketing.Kind]marketingv1.PromotionKind{
	marketing.KindSKUDiscount:   marketingv1.PromotionKind_PROMOTION_KIND_SKU_DISCOUNT,
	marketing.KindFullReduction: marketingv1.PromotionKind_PROMOTION_KIND_FULL_REDUCTION,
	marketing.KindCoupon:        marketingv1.PromotionKind_PROMOTION_KIND_COUPON,
}

var kindsFromProto = map[marketingv1.PromotionKind]marketing.Kind{
	marketingv1.PromotionKind_PROMOTION_KIND_SKU_DISCOUNT:   marketing.KindSKUDiscount,
	marketingv1.PromotionKind_PROMOTION_KIND_FULL_REDUCTION: marketing.KindFullReduction,
}

var couponStatuses = map[marketing.CouponStatus]marketingv1.CouponStatus{
	marketing.CouponAvailable: marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE,
	marketing.CouponUsed:      marketingv1.CouponStatus_COUPON_STATUS_USED,
	marketing.CouponExpired:   marketingv1.CouponStatus_COUPON_STATUS_EXPIRED,
}

// Quote prices a cart.
func (s *Server) Quote(ctx context.Context, req *marketingv1.QuoteRequest) (*marketingv1.QuoteResponse, error) {
	lines := make([]marketing.Line, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = marketing.Line{SKUID: l.GetSkuId(), Quantity: l.GetQuantity(), UnitPrice: l.GetUnitPrice()}
	}
	q, err := s.svc.Quote(ctx, req.GetUserId(), lines, req.GetCouponId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	resp := &marketingv1.QuoteResponse{Total: q.Total, Discount: q.Discount, Payable: q.Payable, CouponId: q.CouponID}
	for _, l := range q.Lines {
		pl := &marketingv1.PricedLine{SkuId: l.SKUID, Quantity: l.Quantity, UnitPrice: l.UnitPrice,
			Amount: l.Amount, Discount: l.Discount, Payable: l.Payable}
		for _, sh := range l.Shares {
			pl.Shares = append(pl.Shares, &marketingv1.Share{PromotionId: sh.PromotionID, Kind: kindsToProto[sh.Kind], Amount: sh.Amount})
		}
		resp.Lines = append(resp.Lines, pl)
	}
	for _, a := range q.Applied {
		resp.Promotions = append(resp.Promotions, &marketingv1.AppliedPromotion{Id: a.ID, Kind: kindsToProto[a.Kind], Amount: a.Amount})
	}
	return resp, nil
}

// CreatePromotion creates a SKU discount or a full reduction.
func (s *Server) CreatePromotion(ctx context.Context, req *marketingv1.CreatePromotionRequest) (*marketingv1.Promotion, error) {
	p := marketing.Promotion{
		Kind:     kindsFromProto[req.GetKind()], // unknown kinds stay empty and fail validation
		SKUIDs:   req.GetSkuIds(),
		RateBP:   req.GetRateBp(),
		StartsAt: timeFromProto(req.GetStartsAt()),
		EndsAt:   timeFromProto(req.GetEndsAt()),
	}
	for _, t := range req.GetTiers() {
		p.Tiers = append(p.Tiers, marketing.Tier{Threshold: t.GetThreshold(), Off: t.GetOff()})
	}
	p, err := s.svc.CreatePromotion(ctx, p)
	if err != nil {
		return nil, err
	}
	out := &marketingv1.Promotion{PromotionId: p.ID, Kind: kindsToProto[p.Kind], SkuIds: p.SKUIDs, RateBp: p.RateBP,
		StartsAt: timestamppb.New(p.StartsAt), EndsAt: timestamppb.New(p.EndsAt)}
	for _, t := range p.Tiers {
		out.Tiers = append(out.Tiers, &marketingv1.Tier{Threshold: t.Threshold, Off: t.Off})
	}
	return out, nil
}

// CreateCouponTemplate creates a coupon template.
func (s *Server) CreateCouponTemplate(ctx context.Context, req *marketingv1.CreateCouponTemplateRequest) (*marketingv1.CouponTemplate, error) {
	t, err := s.svc.CreateCouponTemplate(ctx, marketing.CouponTemplate{
		Threshold: req.GetThreshold(), Amount: req.GetAmount(), Total: req.GetTotal(), PerUserLimit: req.GetPerUserLimit(),
		ValidFrom: timeFromProto(req.GetValidFrom()), ValidUntil: timeFromProto(req.GetValidUntil()),
	})
	if err != nil {
		return nil, err
	}
	return &marketingv1.CouponTemplate{TemplateId: t.ID, Threshold: t.Threshold, Amount: t.Amount, Total: t.Total,
		Claimed: t.Claimed, PerUserLimit: t.PerUserLimit,
		ValidFrom: timestamppb.New(t.ValidFrom), ValidUntil: timestamppb.New(t.ValidUntil)}, nil
}

// ClaimCoupon claims one coupon for the user.
func (s *Server) ClaimCoupon(ctx context.Context, req *marketingv1.ClaimCouponRequest) (*marketingv1.Coupon, error) {
	c, err := s.svc.ClaimCoupon(ctx, req.GetUserId(), req.GetTemplateId(), req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return couponToProto(c), nil
}

// ListCoupons returns the user's coupons, newest first.
func (s *Server) ListCoupons(ctx context.Context, req *marketingv1.ListCouponsRequest) (*marketingv1.ListCouponsResponse, error) {
	list, err := s.svc.ListCoupons(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	resp := &marketingv1.ListCouponsResponse{Coupons: make([]*marketingv1.Coupon, len(list))}
	for i, c := range list {
		resp.Coupons[i] = couponToProto(c)
	}
	return resp, nil
}

// ConsumeCoupon marks the coupon used by the order.
func (s *Server) ConsumeCoupon(ctx context.Context, req *marketingv1.ConsumeCouponRequest) (*marketingv1.Coupon, error) {
	c, err := s.svc.ConsumeCoupon(ctx, req.GetUserId(), req.GetCouponId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return couponToProto(c), nil
}

// ListUsedCoupons pages the orders that hold a coupon.
func (s *Server) ListUsedCoupons(ctx context.Context, req *marketingv1.ListUsedCouponsRequest) (*marketingv1.ListUsedCouponsResponse, error) {
	q := sweep.AgedQuery{
		OlderThan: req.GetOlderThan().AsDuration(), YoungerThan: req.GetYoungerThan().AsDuration(),
		After: sweep.TimeKey{ID: req.GetAfterOrderId()}, Limit: int(req.GetLimit()),
	}
	if req.GetAfterUsedAt() != nil {
		q.After.At = req.GetAfterUsedAt().AsTime()
	}
	used, err := s.svc.ListUsedCoupons(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &marketingv1.ListUsedCouponsResponse{Used: make([]*marketingv1.UsedCoupon, len(used))}
	for i, u := range used {
		resp.Used[i] = &marketingv1.UsedCoupon{OrderId: u.OrderID, UsedAt: timestamppb.New(u.UsedAt)}
	}
	return resp, nil
}

// ReleaseCoupon gives back the order's coupon.
func (s *Server) ReleaseCoupon(ctx context.Context, req *marketingv1.ReleaseCouponRequest) (*marketingv1.ReleaseCouponResponse, error) {
	id, err := s.svc.ReleaseCoupon(ctx, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &marketingv1.ReleaseCouponResponse{CouponId: id}, nil
}

func couponToProto(c marketing.Coupon) *marketingv1.Coupon {
	return &marketingv1.Coupon{
		CouponId: c.ID, TemplateId: c.TemplateID, UserId: c.UserID, Threshold: c.Threshold, Amount: c.Amount,
		ValidFrom: timestamppb.New(c.ValidFrom), ValidUntil: timestamppb.New(c.ValidUntil),
		Status: couponStatuses[c.Status], OrderId: c.OrderID, ClaimedAt: timestamppb.New(c.ClaimedAt),
	}
}

// timeFromProto returns the zero time for an absent timestamp, so that
// validation reports it missing instead of reading it as 1970.
func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
