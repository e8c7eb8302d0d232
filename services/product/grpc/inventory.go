package grpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/product"
)

// inventoryErrors maps the inventory service's answers back to the
// catalog's domain errors. Only codes the catalog can act on are listed;
// anything else stays a plain error (INTERNAL if it reaches a caller).
var inventoryErrors = errcode.Table{
	{Err: product.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: product.ErrNotFound, Code: errcode.NotFound},
	{Err: product.ErrUnavailable, Code: errcode.Unavailable},
}

// Inventory implements product.Inventory over the inventory service's
// gRPC API. Its calls are bounded by the connection's rpc.CallTimeout
// (app.Run dials it with the product's InventoryTimeout), so a stuck
// inventory service cannot hold a catalog request (or the product row
// locked by CreateActivity) for long.
type Inventory struct {
	client inventoryv1.InventoryServiceClient
}

// NewInventory returns a client on conn.
func NewInventory(conn grpc.ClientConnInterface) *Inventory {
	return &Inventory{client: inventoryv1.NewInventoryServiceClient(conn)}
}

// Preheat loads the activity's stock and per-user limit into the
// inventory service, split over buckets Redis slots.
func (c *Inventory) Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) error {
	_, err := c.client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: activityID, Stock: stock, PerUserLimit: perUserLimit,
		Buckets: int32(buckets)})
	if err != nil {
		return fmt.Errorf("inventory preheat activity %d: %w", activityID, inventoryErrors.Domain(err))
	}
	return nil
}

// Remaining returns the units the activity has left.
func (c *Inventory) Remaining(ctx context.Context, activityID int64) (int64, error) {
	resp, err := c.client.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: activityID})
	if err != nil {
		return 0, fmt.Errorf("inventory stock of activity %d: %w", activityID, inventoryErrors.Domain(err))
	}
	return resp.GetRemaining(), nil
}
