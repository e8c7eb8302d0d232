package gateway

import (
	"math"
	"net/http"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/proto/limits"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

type createProductRequest struct {
	Title *string `json:"title"`
	Price *int64  `json:"price"`
	Stock *int64  `json:"stock"`
}

type createProductResponse struct {
	SKUID string `json:"sku_id"`
}

func (g *Gateway) createProduct(w http.ResponseWriter, r *http.Request) error {
	var req createProductRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	in := &productv1.CreateProductRequest{
		Title: f.text("title", req.Title, limits.MaxTitleRunes),
		Price: f.int("price", req.Price, 1, limits.MaxPrice),
		Stock: f.int("stock", req.Stock, 0, limits.MaxStock),
	}
	if f.err != nil {
		return f.err
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	p, err := g.product.CreateProduct(ctx, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, createProductResponse{SKUID: formatID(p.GetSkuId())})
	return nil
}

type createActivityRequest struct {
	SKUID        *string `json:"sku_id"`
	Price        *int64  `json:"price"`
	Stock        *int64  `json:"stock"`
	PerUserLimit *int64  `json:"per_user_limit"`
	StartsAt     *string `json:"starts_at"`
	EndsAt       *string `json:"ends_at"`
	// ChallengeRequired is optional (false when absent).
	ChallengeRequired bool `json:"challenge_required"`
	// StockBuckets is optional (absent: 1): the Redis slots the sale's
	// stock is split over (docs/stock-reservation.md).
	StockBuckets *int64 `json:"stock_buckets"`
}

type createActivityResponse struct {
	ActivityID string `json:"activity_id"`
}

func (g *Gateway) createActivity(w http.ResponseWriter, r *http.Request) error {
	var req createActivityRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	sku := f.id("sku_id", req.SKUID)
	price := f.int("price", req.Price, 1, math.MaxInt64)
	stock := f.int("stock", req.Stock, 1, math.MaxInt64)
	limit := f.int("per_user_limit", req.PerUserLimit, 1, math.MaxInt64)
	starts := f.time("starts_at", req.StartsAt)
	ends := f.time("ends_at", req.EndsAt)
	buckets := int64(1)
	if req.StockBuckets != nil {
		buckets = f.int("stock_buckets", req.StockBuckets, 1, limits.MaxStockBuckets)
	}
	if f.err != nil {
		return f.err
	}
	if !ends.After(starts) {
		return errorf(errcode.InvalidArgument, "ends_at must be after starts_at")
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	a, err := g.product.CreateActivity(ctx, &productv1.CreateActivityRequest{
		SkuId: sku, Price: price, Stock: stock, PerUserLimit: limit,
		StartsAt: timestamppb.New(starts), EndsAt: timestamppb.New(ends), ChallengeRequired: req.ChallengeRequired,
		StockBuckets: int32(buckets),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, createActivityResponse{ActivityID: formatID(a.GetActivityId())})
	return nil
}
