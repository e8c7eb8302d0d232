package grpc

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/sweep"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	"github.com/flashsale/flashsale/services/order"
)

// marketingErrors maps the marketing service's answers: CONFLICT is a
// coupon that is used or does not apply.
var marketingErrors = errcode.Table{
	{Err: order.ErrConflict, Code: errcode.Conflict},
	{Err: order.ErrNotFound, Code: errcode.NotFound},
	{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: order.ErrUnavailable, Code: errcode.Unavailable},
}

// Pricing implements order.Pricing with the marketing service.
type Pricing struct {
	c marketingv1.MarketingServiceClient
}

// NewPricing returns a client on cc.
func NewPricing(cc grpc.ClientConnInterface) *Pricing {
	return &Pricing{c: marketingv1.NewMarketingServiceClient(cc)}
}

// Quote prices the lines and returns them as an order's lines, sums and
// promotions.
func (p *Pricing) Quote(ctx context.Context, userID int64, lines []order.Line, couponID, orderID int64) (order.Order, error) {
	req := &marketingv1.QuoteRequest{UserId: userID, CouponId: couponID, OrderId: orderID,
		Lines: make([]*marketingv1.CartLine, len(lines))}
	for i, l := range lines {
		req.Lines[i] = &marketingv1.CartLine{SkuId: l.SKUID, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	q, err := p.c.Quote(ctx, req)
	if err != nil {
		return order.Order{}, fmt.Errorf("marketing quote: %w", marketingErrors.Domain(err))
	}
	o := order.Order{Total: q.GetTotal(), Discount: q.GetDiscount(), Payable: q.GetPayable(), CouponID: q.GetCouponId()}
	for _, l := range q.GetLines() {
		o.Lines = append(o.Lines, order.Line{SKUID: l.GetSkuId(), Quantity: l.GetQuantity(), UnitPrice: l.GetUnitPrice(),
			Amount: l.GetAmount(), Discount: l.GetDiscount(), Payable: l.GetPayable()})
	}
	for _, a := range q.GetPromotions() {
		kind := strings.TrimPrefix(a.GetKind().String(), "PROMOTION_KIND_")
		o.Promotions = append(o.Promotions, order.Promotion{ID: a.GetId(), Kind: kind, Amount: a.GetAmount()})
	}
	return o, nil
}

// ConsumeCoupon marks the coupon used by the order.
func (p *Pricing) ConsumeCoupon(ctx context.Context, userID, couponID, orderID int64) error {
	if _, err := p.c.ConsumeCoupon(ctx, &marketingv1.ConsumeCouponRequest{UserId: userID, CouponId: couponID, OrderId: orderID}); err != nil {
		return fmt.Errorf("marketing consume coupon: %w", marketingErrors.Domain(err))
	}
	return nil
}

// ReleaseCoupon gives back the coupon the order consumed.
func (p *Pricing) ReleaseCoupon(ctx context.Context, orderID int64) error {
	if _, err := p.c.ReleaseCoupon(ctx, &marketingv1.ReleaseCouponRequest{OrderId: orderID}); err != nil {
		return fmt.Errorf("marketing release coupon: %w", marketingErrors.Domain(err))
	}
	return nil
}

// UsedCoupons lists the orders holding a coupon (order.Holds).
type UsedCoupons struct {
	c marketingv1.MarketingServiceClient
}

// NewUsedCoupons returns the lister on cc, a marketing service
// connection.
func NewUsedCoupons(cc grpc.ClientConnInterface) *UsedCoupons {
	return &UsedCoupons{c: marketingv1.NewMarketingServiceClient(cc)}
}

// Holding reads a page of the orders holding a coupon.
func (u *UsedCoupons) Holding(ctx context.Context, q sweep.AgedQuery) ([]sweep.TimeKey, error) {
	req := &marketingv1.ListUsedCouponsRequest{
		OlderThan: durationpb.New(q.OlderThan), YoungerThan: durationpb.New(q.YoungerThan),
		AfterOrderId: q.After.ID, Limit: int32(q.Limit),
	}
	if !q.After.At.IsZero() {
		req.AfterUsedAt = timestamppb.New(q.After.At)
	}
	resp, err := u.c.ListUsedCoupons(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("marketing used coupons: %w", marketingErrors.Domain(err))
	}
	page := make([]sweep.TimeKey, len(resp.GetUsed()))
	for i, used := range resp.GetUsed() {
		page[i] = sweep.TimeKey{At: used.GetUsedAt().AsTime(), ID: used.GetOrderId()}
	}
	return page, nil
}
