// Package servicetest starts the platform's real product, inventory,
// marketing and order services, each through its app.Run, for the gateway's integration
// tests, so those tests exercise what production runs instead of fakes.
package servicetest

import (
	"context"
	"net"
	"testing"

	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	inventoryapp "github.com/flashsale/flashsale/services/inventory/app"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

// Services are the running services: the gRPC addresses the gateway
// dials, and an inventory client for tests to look at (and move) stock.
type Services struct {
	ProductAddr, OrderAddr, MarketingAddr string
	Inventory                             inventoryv1.InventoryServiceClient
}

// MustStart starts inventory, product, marketing and order on the stack
// (which must hold the databases "products", "orders" and "marketing");
// they stop when the test ends.
func MustStart(tb testing.TB, stack *localstack.Stack) Services {
	tb.Helper()
	invGRPC, invAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "inventory", invAdmin, func(ctx context.Context) error {
		return inventoryapp.Run(ctx, inventoryapp.Config{GRPCListener: invGRPC, AdminListener: invAdmin, RedisAddr: stack.RedisAddr})
	})
	prodGRPC, prodAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "product", prodAdmin, func(ctx context.Context) error {
		return productapp.Run(ctx, productapp.Config{
			GRPCListener: prodGRPC, AdminListener: prodAdmin,
			PostgresURL: stack.PostgresURL("products"), InventoryAddr: invGRPC.Addr().String(),
			NodeID: localstack.NodeID(),
		})
	})
	mktGRPC, mktAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "marketing", mktAdmin, func(ctx context.Context) error {
		return marketingapp.Run(ctx, marketingapp.Config{
			GRPCListener: mktGRPC, AdminListener: mktAdmin,
			PostgresURL: stack.PostgresURL("marketing"), NodeID: localstack.NodeID(),
		})
	})
	ordGRPC, ordAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "order", ordAdmin, func(ctx context.Context) error {
		return orderapp.Run(ctx, orderapp.Config{
			GRPCListener: ordGRPC, AdminListener: ordAdmin,
			PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr,
			KafkaBrokers: stack.KafkaBrokers, KafkaPartitions: 2, KafkaDurability: stack.KafkaDurability,
			InventoryAddr: invGRPC.Addr().String(), ProductAddr: prodGRPC.Addr().String(),
			MarketingAddr: mktGRPC.Addr().String(), NodeID: localstack.NodeID(),
		})
	})
	cc, err := rpc.Dial(invGRPC.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return Services{
		ProductAddr:   prodGRPC.Addr().String(),
		OrderAddr:     ordGRPC.Addr().String(),
		MarketingAddr: mktGRPC.Addr().String(),
		Inventory:     inventoryv1.NewInventoryServiceClient(cc),
	}
}

// MustListen listens on a free loopback port, closed when the test ends
// (closing one a server already closed is harmless).
func MustListen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lis.Close() })
	return lis
}

// MustRun runs a service until the test ends, failing the test if Run
// fails; it returns once its dependencies are up (GET
// telemetry.DependenciesPath on admin answers 200).
func MustRun(tb testing.TB, name string, admin net.Listener, run func(context.Context) error) {
	tb.Helper()
	localstack.MustRun(tb, name, "http://"+admin.Addr().String()+telemetry.DependenciesPath, localstack.Status200, run)
}

// StackConfig is what the services need of the test stack: their
// databases and the order topics.
func StackConfig() localstack.Config {
	return localstack.Config{
		Databases:  []string{"products", "orders", "marketing"},
		Topics:     []string{"orders.placed", "orders.placed.dlq", "orders.events"},
		Partitions: 2,
	}
}
