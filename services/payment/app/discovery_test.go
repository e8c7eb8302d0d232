package app_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/testing/consultest"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/payment"
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

// TestChannelSettingsAreSharedThroughConsul: with Consul, a channel's
// routing setting lives in Consul KV and every replica follows it: a
// change made through one replica reaches the others, an operator's
// `consul kv put` reaches all, a deleted key restores the default, a
// replica started later starts from the shared settings, and a key that
// does not parse changes nothing.
func TestChannelSettingsAreSharedThroughConsul(t *testing.T) {
	consul := consultest.MustStart(t)
	p := MustPlatform(t, func(c *app.Config) {
		c.Discovery = discovery.Config{ConsulAddr: consul.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 50 * time.Millisecond}
	})
	other := p.runPaymentReplica(t)
	ctx := context.Background()
	setting := func(c paymentv1.PaymentServiceClient, name string) (int64, bool) {
		resp, err := c.ListChannels(ctx, &paymentv1.ListChannelsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range resp.GetChannels() {
			if ch.GetName() == name {
				return ch.GetWeight(), ch.GetEnabled()
			}
		}
		t.Fatalf("no channel %s", name)
		return 0, false
	}
	follows := func(c paymentv1.PaymentServiceClient, name string, weight int64, enabled bool) func() bool {
		return func() bool { w, e := setting(c, name); return w == weight && e == enabled }
	}

	if _, err := p.payment.UpdateChannel(ctx, &paymentv1.UpdateChannelRequest{Channel: "wechat", Weight: 7, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other replica following the change", follows(other, "wechat", 7, false))
	// A pressure test's request to change the routing is refused: the
	// routing is the real buyers' too.
	_, err := p.payment.UpdateChannel(shadow.With(ctx), &paymentv1.UpdateChannelRequest{Channel: "wechat", Weight: 100, Enabled: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a marked UpdateChannel: %v, want INVALID_ARGUMENT", err)
	}
	if w, e := setting(p.payment, "wechat"); w != 7 || e {
		t.Fatalf("wechat after a marked change: weight %d enabled %v, want 7, off", w, e)
	}

	consul.Put(payment.ChannelSettingsPrefix+"alipay", `{"weight":3,"enabled":true}`)
	waitFor(t, "the first replica following the operator's key", follows(p.payment, "alipay", 3, true))
	waitFor(t, "the other replica following the operator's key", follows(other, "alipay", 3, true))

	consul.Delete(payment.ChannelSettingsPrefix + "wechat")
	waitFor(t, "wechat back to its default", follows(other, "wechat", payment.DefaultWeight, true))

	p.stopPayment()
	later := p.runPaymentReplica(t)
	waitFor(t, "a replica started later following the shared settings", follows(later, "alipay", 3, true))

	consul.Put(payment.ChannelSettingsPrefix+"unionpay", "fast")
	consul.Put(payment.ChannelSettingsPrefix+"alipay", `{"weight":4,"enabled":true}`)
	waitFor(t, "the change after the bad key", follows(later, "alipay", 4, true))
	if w, e := setting(later, "unionpay"); w != payment.DefaultWeight || !e {
		t.Errorf("unionpay after a key that does not parse: weight %d enabled %v, want its default", w, e)
	}
}

// TestNotReadyUntilTheChannelSettingsAreRead: a replica started while
// Consul cannot answer its settings (no leader) is alive but not ready:
// on its environment's values it would route payments to a channel an
// operator switched off. Once Consul answers it is ready, with the
// channel off.
func TestNotReadyUntilTheChannelSettingsAreRead(t *testing.T) {
	consul := consultest.MustStart(t)
	p := MustPlatform(t, func(c *app.Config) {
		c.Discovery = discovery.Config{ConsulAddr: consul.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 50 * time.Millisecond}
	})
	consul.Put(payment.ChannelSettingsPrefix+"wechat", `{"weight":5,"enabled":false}`)
	consul.SetKVDown(true)
	cfg := p.payConfig
	grpcLis, admin := mustListen(t), mustListen(t)
	cfg.GRPCListener, cfg.AdminListener, cfg.NodeID = grpcLis, admin, localstack.NodeID()
	base := "http://" + admin.Addr().String()
	localstack.MustRun(t, "payment", base+"/healthz", localstack.Answering, func(ctx context.Context) error { return app.Run(ctx, cfg) })
	readyz := func() int {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := readyz(); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while Consul has no leader = %d, want 503", got)
	}
	// Its gRPC health says so too, for whatever checks it directly.
	health := rpc.HealthCheck(localstack.MustDial(t, grpcLis.Addr().String()))
	if err := health(context.Background()); err == nil {
		t.Fatal("gRPC health SERVING while the channel settings are unread")
	}
	// Nor is it registered: Consul would drop an instance whose check
	// failed for a minute, and it registers once.
	time.Sleep(200 * time.Millisecond)
	for _, r := range consul.Registered() {
		if reg, _ := consul.Registration(r); reg.Check != nil && reg.Check.GRPC == grpcLis.Addr().String() {
			t.Fatalf("%s registered in Consul while its channel settings are unread", r)
		}
	}

	consul.SetKVDown(false)
	waitFor(t, "the replica ready once Consul answers", func() bool { return readyz() == http.StatusOK })
	if err := health(context.Background()); err != nil {
		t.Fatalf("gRPC health once ready: %v", err)
	}
	consul.MustAwaitPassing(t, "payment", grpcLis.Addr().String())
	resp, err := paymentv1.NewPaymentServiceClient(localstack.MustDial(t, grpcLis.Addr().String())).ListChannels(context.Background(), &paymentv1.ListChannelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range resp.GetChannels() {
		if ch.GetName() == "wechat" && (ch.GetWeight() != 5 || ch.GetEnabled()) {
			t.Errorf("wechat once ready: weight %d enabled %v, want Consul's 5, off", ch.GetWeight(), ch.GetEnabled())
		}
	}
}

// With live channels (production's default) nothing keeps a pressure
// test's trades apart, so its payments are refused before any channel is
// asked; a real buyer's payment goes on as ever.
func TestPressureTestsDoNotPayLiveChannels(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.ChannelsLive = true })
	ctx := context.Background()
	_, err := p.payment.Pay(shadow.With(ctx), &paymentv1.PayRequest{OrderId: 1, UserId: 1})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "FLASHSALE_CHANNELS_LIVE") {
		t.Fatalf("a pressure test's pay through live channels: %v, want UNAVAILABLE naming FLASHSALE_CHANNELS_LIVE", err)
	}
	if _, err := p.payment.Pay(ctx, &paymentv1.PayRequest{OrderId: 1, UserId: 1}); status.Code(err) != codes.NotFound {
		t.Fatalf("a real pay of a missing order: %v, want NOT_FOUND (it reached the service)", err)
	}
}
