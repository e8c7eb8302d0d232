package grpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/order"
)

// Remote services answer with API codes; these tables turn the codes the
// order path acts on back into domain errors. Any other code stays a
// status error, which the server reports as INTERNAL.
var (
	inventoryErrors = errcode.Table{
		{Err: order.ErrSoldOut, Code: errcode.SoldOut},
		{Err: order.ErrLimitExceeded, Code: errcode.LimitExceeded},
		// An activity the inventory does not know was never preheated,
		// which for a buyer is an activity that does not exist.
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
	productErrors = errcode.Table{
		{Err: order.ErrNotFound, Code: errcode.NotFound},
		{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
		{Err: order.ErrUnavailable, Code: errcode.Unavailable},
	}
)

// Inventory implements order.Inventory with the inventory service.
type Inventory struct {
	c inventoryv1.InventoryServiceClient
}

// NewInventory returns a client on cc.
func NewInventory(cc grpc.ClientConnInterface) *Inventory {
	return &Inventory{c: inventoryv1.NewInventoryServiceClient(cc)}
}

// Reserve takes stock for one order.
func (i *Inventory) Reserve(ctx context.Context, r order.Reservation) (order.Reserved, error) {
	resp, err := i.c.Reserve(ctx, &inventoryv1.ReserveRequest{
		ActivityId: r.ActivityID, UserId: r.UserID, Quantity: r.Quantity,
		OrderId: r.OrderID, IdempotencyKey: r.IdempotencyKey, ExpiresAt: timestamppb.New(r.ExpiresAt),
	})
	if err != nil {
		return order.Reserved{}, fmt.Errorf("inventory reserve: %w", inventoryErrors.Domain(err))
	}
	return order.Reserved{OrderID: resp.GetOrderId(), Replayed: resp.GetReplayed(), Remaining: resp.GetRemaining()}, nil
}

// Release gives an order's stock back.
func (i *Inventory) Release(ctx context.Context, activityID, orderID int64) error {
	if _, err := i.c.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: activityID, OrderId: orderID}); err != nil {
		return fmt.Errorf("inventory release: %w", inventoryErrors.Domain(err))
	}
	return nil
}

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
		ID: m.GetActivityId(), SKUID: m.GetSkuId(), Price: m.GetPrice(), PerUserLimit: m.GetPerUserLimit(),
		StartsAt: m.GetStartsAt().AsTime(), EndsAt: m.GetEndsAt().AsTime(),
	}, nil
}

// CallTimeout is a dial option that bounds every call on the connection
// that carries no earlier deadline, so a slow dependency cannot hold a
// buyer's request (and its goroutine) indefinitely.
func CallTimeout(d time.Duration) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}
