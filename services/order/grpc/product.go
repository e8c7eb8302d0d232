package grpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/sweep"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/order"
)

// The product service's answers, back into domain errors.
var (
	productErrors = errcode.Table{
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
	// catalogErrors maps the product service's answers on the regular
	// order path.
	catalogErrors = errcode.Table{
		{Err: order.ErrSoldOut, Code: errcode.SoldOut},
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
		// A reserve answers CONFLICT only when a release of its order came
		// first (its caller gave the order up): nothing is taken.
		{Err: order.ErrUnavailable, Code: errcode.Conflict},
	}
)

// Activities implements order.Activities with the product service.
type Activities struct {
	c productv1.ProductServiceClient
}

// NewActivities returns a client on cc.
func NewActivities(cc grpc.ClientConnInterface) *Activities {
	return &Activities{c: productv1.NewProductServiceClient(cc)}
}

// Activity returns a flash-sale activity.
func (a *Activities) Activity(ctx context.Context, id int64) (order.Activity, error) {
	m, err := a.c.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: id})
	if err != nil {
		return order.Activity{}, fmt.Errorf("product activity %d: %w", id, productErrors.Domain(err))
	}
	return order.Activity{
		ID: m.GetActivityId(), SKUID: m.GetSkuId(), Price: m.GetPrice(), PerUserLimit: m.GetPerUserLimit(), Stock: m.GetStock(),
		StartsAt: m.GetStartsAt().AsTime(), EndsAt: m.GetEndsAt().AsTime(),
	}, nil
}

// Catalog implements order.Catalog with the product service.
type Catalog struct {
	c productv1.ProductServiceClient
}

// NewCatalog returns a client on cc.
func NewCatalog(cc grpc.ClientConnInterface) *Catalog {
	return &Catalog{c: productv1.NewProductServiceClient(cc)}
}

// Price returns the SKU's regular price.
func (c *Catalog) Price(ctx context.Context, skuID int64) (int64, error) {
	p, err := c.c.GetProduct(ctx, &productv1.GetProductRequest{SkuId: skuID})
	if err != nil {
		return 0, fmt.Errorf("product %d: %w", skuID, catalogErrors.Domain(err))
	}
	return p.GetPrice(), nil
}

// ReserveStock takes the lines' regular stock for the order.
func (c *Catalog) ReserveStock(ctx context.Context, orderID int64, lines []order.CartLine) error {
	req := &productv1.ReserveStockRequest{OrderId: orderID, Lines: make([]*productv1.StockLine, len(lines))}
	for i, l := range lines {
		req.Lines[i] = &productv1.StockLine{SkuId: l.SKUID, Quantity: l.Quantity}
	}
	if _, err := c.c.ReserveStock(ctx, req); err != nil {
		return fmt.Errorf("product reserve stock: %w", catalogErrors.Domain(err))
	}
	return nil
}

// ReleaseStock gives back the order's regular stock.
func (c *Catalog) ReleaseStock(ctx context.Context, orderID int64) error {
	if _, err := c.c.ReleaseStock(ctx, &productv1.ReleaseStockRequest{OrderId: orderID}); err != nil {
		return fmt.Errorf("product release stock: %w", catalogErrors.Domain(err))
	}
	return nil
}

// HeldStock lists the orders holding regular stock (order.Holds).
type HeldStock struct {
	c productv1.ProductServiceClient
}

// NewHeldStock returns the lister on cc, a product service connection.
func NewHeldStock(cc grpc.ClientConnInterface) *HeldStock {
	return &HeldStock{c: productv1.NewProductServiceClient(cc)}
}

// Holding reads a page of the orders holding regular stock.
func (h *HeldStock) Holding(ctx context.Context, q sweep.AgedQuery) ([]sweep.TimeKey, error) {
	req := &productv1.ListHeldStockRequest{
		OlderThan: durationpb.New(q.OlderThan), YoungerThan: durationpb.New(q.YoungerThan),
		AfterOrderId: q.After.ID, Limit: int32(q.Limit),
	}
	if !q.After.At.IsZero() {
		req.AfterReservedAt = timestamppb.New(q.After.At)
	}
	resp, err := h.c.ListHeldStock(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("product held stock: %w", catalogErrors.Domain(err))
	}
	page := make([]sweep.TimeKey, len(resp.GetHeld()))
	for i, held := range resp.GetHeld() {
		page[i] = sweep.TimeKey{At: held.GetReservedAt().AsTime(), ID: held.GetOrderId()}
	}
	return page, nil
}
