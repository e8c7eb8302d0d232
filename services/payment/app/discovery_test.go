package app_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/discovery/consultest"
	"github.com/flashsale/flashsale/services/payment/app"
)

// With Consul, payment registers as "payment" with a gRPC health check,
// reaches order as "consul://order" (order registers in the same Consul)
// to read the order and to mark it paid, and deregisters when it stops.
// Consul is consultest's in-test agent, which speaks the subset of
// Consul's HTTP API the platform uses: no real agent can be installed
// where the tests run.
func TestRegistersInConsulAndFindsOrderThere(t *testing.T) {
	consul := consultest.MustStart(t)
	var addr string
	p := MustPlatform(t, func(c *app.Config) {
		c.Discovery = discovery.Config{ConsulAddr: consul.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 50 * time.Millisecond}
		c.OrderAddr = "consul://order"
		addr = c.GRPCListener.Addr().String()
	})
	id := consul.MustAwaitPassing(t, "payment", addr)

	o := p.MustOrders(t, 1)[0]
	p.MustBuyerPays(t, p.MustPay(t, o, "alipay"))
	waitFor(t, "the order paid", func() bool { return p.orderStatus(t, o) == paid })

	p.stopPayment()
	got := consul.Registered()
	if slices.Contains(got, id) {
		t.Errorf("registered after stop: %v, want %s gone", got, id)
	}
	if !slices.ContainsFunc(got, func(id string) bool { return strings.HasPrefix(id, "order-") }) {
		t.Errorf("registered after stop: %v, want order's instance still there", got)
	}
}
