package app_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/testing/consultest"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	"github.com/flashsale/flashsale/services/marketing/app"
)

// The service registers as "marketing" with a gRPC health check, answers
// calls made to "consul://marketing" (as order and the gateway make them),
// and deregisters when it stops. Consul is consultest's in-test agent,
// which speaks the subset of Consul's HTTP API the platform uses: no real
// agent can be installed where the tests run.
func TestRegistersInConsul(t *testing.T) {
	consul := consultest.MustStart(t)
	disc := discovery.Config{ConsulAddr: consul.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 50 * time.Millisecond}
	addr, stop := mustRun(t, func(c *app.Config) { c.Discovery = disc })
	id := consul.MustAwaitPassing(t, "marketing", addr)

	c, err := discovery.Open(disc, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Dial("consul://marketing", grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := marketingv1.NewMarketingServiceClient(cc).ListCoupons(callCtx(t), &marketingv1.ListCouponsRequest{UserId: 1}); err != nil {
		t.Errorf("ListCoupons through consul://marketing: %v", err)
	}

	stop()
	if got := consul.Registered(); slices.Contains(got, id) {
		t.Errorf("registered after stop: %v, want %s gone", got, id)
	}
}
