package grpc

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/errcode"
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
