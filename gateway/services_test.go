package gateway_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/rpc"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	inventoryapp "github.com/flashsale/flashsale/services/inventory/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

// services are the real product, inventory and order services, each
// started through its app.Run on the test stack.
type services struct {
	productAddr, orderAddr string
	inventory              inventoryv1.InventoryServiceClient
}

// nodes gives every service of the run its own snowflake node, so ids
// never collide between tests.
var nodes atomic.Int64

// MustServices starts inventory, product and order, stopped when the test
// ends.
func MustServices(tb testing.TB) services {
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
	ordGRPC, ordAdmin := MustListen(tb), MustListen(tb)
	MustRun(tb, "order", ordAdmin, func(ctx context.Context) error {
		return orderapp.Run(ctx, orderapp.Config{
			GRPCListener: ordGRPC, AdminListener: ordAdmin,
			PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr,
			KafkaBrokers: stack.KafkaBrokers, KafkaPartitions: 2,
			InventoryAddr: invGRPC.Addr().String(), ProductAddr: prodGRPC.Addr().String(),
			NodeID: nodes.Add(1),
		})
	})
	cc, err := rpc.Dial(invGRPC.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return services{
		productAddr: prodGRPC.Addr().String(),
		orderAddr:   ordGRPC.Addr().String(),
		inventory:   inventoryv1.NewInventoryServiceClient(cc),
	}
}

// MustListen listens on a free loopback port.
func MustListen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// MustRun runs a service until the test ends, failing the test if Run
// fails; it returns once the service's /readyz on admin answers 200.
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
	url := "http://" + admin.Addr().String() + "/readyz"
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			tb.Fatalf("%s: Run returned before it was ready: %v", name, err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	tb.Fatalf("%s: %s not 200 after 30s", name, url)
}
