package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/proto/limits"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// Bounds of regular carts and promotions checked at the edge; the
// services check them again.
const (
	maxCartLines     = limits.MaxLines
	maxCartQuantity  = limits.MaxQuantity
	maxPromotionSKUs = limits.MaxPromotionSKUs
	maxTiers         = limits.MaxTiers
)

// checkLineCount refuses a cart or refund of no lines or of more than a
// cart holds.
func checkLineCount(n int) error {
	if n < 1 || n > maxCartLines {
		return errorf(errcode.InvalidArgument, fmt.Sprintf("lines must hold 1 to %d lines", maxCartLines))
	}
	return nil
}

type cartLineRequest struct {
	SKUID    *string `json:"sku_id"`
	Quantity *int64  `json:"quantity"`
}

type cartRequest struct {
	Lines    []cartLineRequest `json:"lines"`
	CouponID *string           `json:"coupon_id"`
}

// decodeCart reads a regular cart into the order service's request.
func decodeCart(r *http.Request) (*orderv1.RegularOrderRequest, error) {
	var req cartRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := checkLineCount(len(req.Lines)); err != nil {
		return nil, err
	}
	var f fields
	out := &orderv1.RegularOrderRequest{Lines: make([]*orderv1.RegularOrderLine, len(req.Lines))}
	for i, l := range req.Lines {
		out.Lines[i] = &orderv1.RegularOrderLine{
			SkuId:    f.id("lines[].sku_id", l.SKUID),
			Quantity: f.int("lines[].quantity", l.Quantity, 1, maxCartQuantity),
		}
	}
	if req.CouponID != nil {
		out.CouponId = f.id("coupon_id", req.CouponID)
	}
	if f.err != nil {
		return nil, f.err
	}
	return out, nil
}

// quoteOrder prices the caller's cart without creating an order.
func (g *Gateway) quoteOrder(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeCart(r)
	if err != nil {
		return err
	}
	req.UserId = callerOf(r.Context()).UserID
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	o, err := g.order.QuoteRegularOrder(ctx, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOrder(o))
	return nil
}

// createOrder creates the caller's regular order; the same
// Idempotency-Key answers the first order.
func (g *Gateway) createOrder(w http.ResponseWriter, r *http.Request) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	req, err := decodeCart(r)
	if err != nil {
		return err
	}
	req.UserId, req.IdempotencyKey = callerOf(r.Context()).UserID, key
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	o, err := g.order.CreateRegularOrder(ctx, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewOrder(o))
	return nil
}

// needsMarketing answers UNAVAILABLE when the gateway runs without the
// marketing service.
func (g *Gateway) needsMarketing(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if g.opts.Marketing == nil {
			return errorf(errcode.Unavailable, "marketing is not configured")
		}
		return h(w, r)
	}
}

type tierRequest struct {
	Threshold *int64 `json:"threshold"`
	Off       *int64 `json:"off"`
}

type promotionRequest struct {
	Kind     *string       `json:"kind"`
	SKUIDs   []string      `json:"sku_ids"`
	RateBP   *int64        `json:"rate_bp"`
	Tiers    []tierRequest `json:"tiers"`
	StartsAt *string       `json:"starts_at"`
	EndsAt   *string       `json:"ends_at"`
}

var promotionKinds = map[string]marketingv1.PromotionKind{
	"SKU_DISCOUNT":   marketingv1.PromotionKind_PROMOTION_KIND_SKU_DISCOUNT,
	"FULL_REDUCTION": marketingv1.PromotionKind_PROMOTION_KIND_FULL_REDUCTION,
}

// createPromotion creates a SKU discount or a full reduction.
func (g *Gateway) createPromotion(w http.ResponseWriter, r *http.Request) error {
	var req promotionRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	kind, ok := promotionKinds[f.text("kind", req.Kind, 32)]
	if !ok && f.err == nil {
		f.fail("kind", "must be SKU_DISCOUNT or FULL_REDUCTION")
	}
	if len(req.SKUIDs) > maxPromotionSKUs || len(req.Tiers) > maxTiers {
		f.fail("sku_ids or tiers", "has too many entries")
	}
	in := &marketingv1.CreatePromotionRequest{Kind: kind}
	for _, s := range req.SKUIDs {
		in.SkuIds = append(in.SkuIds, f.id("sku_ids[]", &s))
	}
	if req.RateBP != nil {
		in.RateBp = f.int("rate_bp", req.RateBP, 1, 9999)
	}
	for _, t := range req.Tiers {
		in.Tiers = append(in.Tiers, &marketingv1.Tier{
			Threshold: f.int("tiers[].threshold", t.Threshold, 1, math.MaxInt64),
			Off:       f.int("tiers[].off", t.Off, 1, math.MaxInt64),
		})
	}
	starts, ends := f.time("starts_at", req.StartsAt), f.time("ends_at", req.EndsAt)
	if f.err != nil {
		return f.err
	}
	in.StartsAt, in.EndsAt = timestamppb.New(starts), timestamppb.New(ends)
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	p, err := g.opts.Marketing.CreatePromotion(ctx, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.PromotionCreated{PromotionID: formatID(p.GetPromotionId())})
	return nil
}

type couponTemplateRequest struct {
	Threshold    *int64  `json:"threshold"`
	Amount       *int64  `json:"amount"`
	Total        *int64  `json:"total"`
	PerUserLimit *int64  `json:"per_user_limit"`
	ValidFrom    *string `json:"valid_from"`
	ValidUntil   *string `json:"valid_until"`
}

// createCouponTemplate creates a batch of platform coupons.
func (g *Gateway) createCouponTemplate(w http.ResponseWriter, r *http.Request) error {
	var req couponTemplateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	in := &marketingv1.CreateCouponTemplateRequest{
		Threshold:    f.int("threshold", req.Threshold, 0, math.MaxInt64),
		Amount:       f.int("amount", req.Amount, 1, math.MaxInt64),
		Total:        f.int("total", req.Total, 1, math.MaxInt64),
		PerUserLimit: f.int("per_user_limit", req.PerUserLimit, 1, math.MaxInt64),
	}
	from, until := f.time("valid_from", req.ValidFrom), f.time("valid_until", req.ValidUntil)
	if f.err != nil {
		return f.err
	}
	in.ValidFrom, in.ValidUntil = timestamppb.New(from), timestamppb.New(until)
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	t, err := g.opts.Marketing.CreateCouponTemplate(ctx, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.CouponTemplateCreated{TemplateID: formatID(t.GetTemplateId())})
	return nil
}

// claimCoupon claims one coupon of the template for the caller; the
// same Idempotency-Key answers the first claim's coupon.
func (g *Gateway) claimCoupon(w http.ResponseWriter, r *http.Request) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	id, err := parseID("template_id", r.PathValue("template_id"))
	if err != nil {
		return err
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	c, err := g.opts.Marketing.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{
		UserId: callerOf(r.Context()).UserID, TemplateId: id, IdempotencyKey: key,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewCoupon(c))
	return nil
}

// listCoupons answers the caller's coupons, newest first.
func (g *Gateway) listCoupons(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	resp, err := g.opts.Marketing.ListCoupons(ctx, &marketingv1.ListCouponsRequest{UserId: callerOf(r.Context()).UserID})
	if err != nil {
		return err
	}
	out := api.Coupons{Coupons: make([]api.Coupon, 0, len(resp.GetCoupons()))}
	for _, c := range resp.GetCoupons() {
		out.Coupons = append(out.Coupons, viewCoupon(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func viewCoupon(c *marketingv1.Coupon) api.Coupon {
	return api.Coupon{
		CouponID:   formatID(c.GetCouponId()),
		TemplateID: formatID(c.GetTemplateId()),
		Threshold:  c.GetThreshold(),
		Amount:     c.GetAmount(),
		ValidFrom:  utc(c.GetValidFrom()),
		ValidUntil: utc(c.GetValidUntil()),
		Status:     strings.TrimPrefix(c.GetStatus().String(), "COUPON_STATUS_"),
		OrderID:    optionalID(c.GetOrderId()),
	}
}
