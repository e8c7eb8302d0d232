// Package servicetest starts the platform's real product, inventory,
// marketing and order services, each through its app.Run, for the gateway's integration
// tests, so those tests exercise what production runs instead of fakes.
package servicetest

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/localstack"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
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

// nodes gives every service of the run its own snowflake node, so ids
// never collide between tests.
var nodes atomic.Int64

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
			NodeID: nodes.Add(1),
		})
	})
	mktGRPC, mktAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "marketing", mktAdmin, func(ctx context.Context) error {
		return marketingapp.Run(ctx, marketingapp.Config{
			GRPCListener: mktGRPC, AdminListener: mktAdmin,
			PostgresURL: stack.PostgresURL("marketing"), NodeID: nodes.Add(1),
		})
	})
	ordGRPC, ordAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "order", ordAdmin, func(ctx context.Context) error {
		return orderapp.Run(ctx, orderapp.Config{
			GRPCListener: ordGRPC, AdminListener: ordAdmin,
			PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr,
			KafkaBrokers: stack.KafkaBrokers, KafkaPartitions: 2, KafkaDurability: stack.KafkaDurability,
			InventoryAddr: invGRPC.Addr().String(), ProductAddr: prodGRPC.Addr().String(),
			MarketingAddr: mktGRPC.Addr().String(), NodeID: nodes.Add(1),
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("%s: Run: %v", name, err)
		}
	})
	url := "http://" + admin.Addr().String() + telemetry.DependenciesPath
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			tb.Fatalf("%s: Run returned before it was ready: %v", name, err)
		default:
		}
		// Each probe is bounded: a request to a listener that is not
		// served yet (or a service that failed as it started) must not
		// hang the poll past its deadline and the Run error it reports.
		if resp, err := (&http.Client{Timeout: time.Second}).Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	tb.Fatalf("%s: %s not 200 after 30s", name, url)
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
