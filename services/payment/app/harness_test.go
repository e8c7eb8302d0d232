package app_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/channelsim"
	inventoryapp "github.com/flashsale/flashsale/services/inventory/app"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	"github.com/flashsale/flashsale/services/payment/app"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{
		Databases:  []string{"orders", "products", "payment", "marketing"},
		Topics:     []string{"orders.placed", "orders.placed.dlq"},
		Partitions: 4,
	}, func(s *localstack.Stack) { stack = s })
}

// users hands out user ids no earlier run against the same databases
// used.
var users atomic.Int64

func init() { users.Store(time.Now().UnixMicro()) }

func mustListen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// mustRun runs run until the test ends and returns once ready answers 200,
// with a stop that ends the run sooner and waits for it.
func mustRun(tb testing.TB, ready string, run func(context.Context) error) (stop func()) {
	tb.Helper()
	return localstack.MustRun(tb, ready, ready, localstack.Answering, run)
}

// platform is one test's services: the real inventory, product, marketing
// and order services, the channel simulator as an HTTP server, and the
// payment service under test on a manual clock. Callbacks reach payment through a
// forwarder that does what the gateway's callback route does.
type platform struct {
	clock  *clock.Manual
	sim    *channelsim.Simulator
	simURL string
	// stub is the stub of the channels for pressure tests, when the
	// platform has one (MustPlatformWithStub).
	stub      *channelsim.Simulator
	order     orderv1.OrderServiceClient
	product   productv1.ProductServiceClient
	inventory inventoryv1.InventoryServiceClient
	marketing marketingv1.MarketingServiceClient
	payment   paymentv1.PaymentServiceClient
	orders    *pgxpool.Pool // the orders database
	ledger    *pgxpool.Pool // the payment database
	// admin is the payment service's admin base URL (/metrics, /readyz),
	// orderAdmin the running order service's.
	admin, orderAdmin string
	// stopPayment stops the payment service before the test ends.
	stopPayment func()
	// payConfig is the payment service's configuration, for more replicas.
	payConfig app.Config
	// orderConfig is the order service's configuration without its
	// listeners; stopOrder stops the running order service before the
	// test ends, and runOrder starts another.
	orderConfig orderapp.Config
	stopOrder   func()
}

// MustPlatform starts every service; configure may adjust payment's
// configuration. The order service registers in the Consul that payment's
// Discovery names, if any, so that payment may reach it as
// "consul://order".
func MustPlatform(tb testing.TB, configure func(*app.Config)) *platform {
	tb.Helper()
	return mustPlatform(tb, configure, false)
}

// stubChannels are the stub's channels: the live ones' names, secrets of
// their own.
var stubChannels = []wire.Channel{
	{Name: "alipay", Secret: "alipay-stub-secret"},
	{Name: "wechat", Secret: "wechat-stub-secret"},
	{Name: "unionpay", Secret: "unionpay-stub-secret"},
}

// MustPlatformWithStub is MustPlatform with a stub of the channels for
// pressure tests (channelsim.Config.Stub) beside the simulator, which
// stands for the live channels, payment's StubChannelsURL pointing at it.
func MustPlatformWithStub(tb testing.TB, configure func(*app.Config)) *platform {
	tb.Helper()
	return mustPlatform(tb, configure, true)
}

func mustPlatform(tb testing.TB, configure func(*app.Config), withStub bool) *platform {
	tb.Helper()
	p := &platform{clock: clock.NewManual(time.Now().UTC().Truncate(time.Millisecond))}
	payGRPC, payAdmin := mustListen(tb), mustListen(tb)
	ordGRPC, ordAdmin := mustListen(tb), mustListen(tb)
	simLis := mustListen(tb)
	p.simURL = "http://" + simLis.Addr().String()
	cfg := app.Config{
		GRPCListener: payGRPC, AdminListener: payAdmin, Clock: p.clock,
		PostgresURL: stack.PostgresURL("payment"), OrderAddr: ordGRPC.Addr().String(),
		ChannelsURL: p.simURL, NodeID: localstack.NodeID(),
		QueryAfter: time.Hour, SweepEvery: 20 * time.Millisecond, ReconcileEvery: time.Hour,
	}
	var stubLis net.Listener
	if withStub {
		stubLis = mustListen(tb)
		cfg.StubChannelsURL, cfg.StubChannels = "http://"+stubLis.Addr().String(), stubChannels
	}
	if configure != nil {
		configure(&cfg)
	}

	invGRPC, invAdmin := mustListen(tb), mustListen(tb)
	mustRun(tb, "http://"+invAdmin.Addr().String()+"/readyz", func(ctx context.Context) error {
		return inventoryapp.Run(ctx, inventoryapp.Config{GRPCListener: invGRPC, AdminListener: invAdmin, RedisAddr: stack.RedisAddr})
	})
	prodGRPC, prodAdmin := mustListen(tb), mustListen(tb)
	mustRun(tb, "http://"+prodAdmin.Addr().String()+"/readyz", func(ctx context.Context) error {
		return productapp.Run(ctx, productapp.Config{GRPCListener: prodGRPC, AdminListener: prodAdmin,
			PostgresURL: stack.PostgresURL("products"), InventoryAddr: invGRPC.Addr().String(), NodeID: localstack.NodeID()})
	})
	mktGRPC, mktAdmin := mustListen(tb), mustListen(tb)
	mustRun(tb, "http://"+mktAdmin.Addr().String()+"/readyz", func(ctx context.Context) error {
		return marketingapp.Run(ctx, marketingapp.Config{GRPCListener: mktGRPC, AdminListener: mktAdmin,
			PostgresURL: stack.PostgresURL("marketing"), NodeID: localstack.NodeID()})
	})
	// Order refunds through payment, which is started last: the order
	// service dials it lazily.
	p.orderConfig = orderapp.Config{
		PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr, KafkaBrokers: stack.KafkaBrokers, KafkaDurability: stack.KafkaDurability,
		InventoryAddr: invGRPC.Addr().String(), ProductAddr: prodGRPC.Addr().String(),
		MarketingAddr: mktGRPC.Addr().String(), PaymentAddr: payGRPC.Addr().String(),
		RefundSweepEvery: 20 * time.Millisecond, RefundRetryAfter: 200 * time.Millisecond,
		Discovery: cfg.Discovery,
	}
	p.runOrder(tb, ordGRPC, ordAdmin)

	forwarder := mustListen(tb)
	p.payment = paymentv1.NewPaymentServiceClient(localstack.MustDial(tb, payGRPC.Addr().String()))
	mustRun(tb, "http://"+forwarder.Addr().String()+"/", func(ctx context.Context) error {
		srv := telemetry.NewServer(http.HandlerFunc(p.forward))
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(forwarder); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	sim, err := channelsim.New(channelsim.Config{
		NotifyURL: "http://" + forwarder.Addr().String() + "/callbacks", Clock: p.clock, Seed: 7,
		NotifyBackoff: 10 * time.Millisecond, StatementPage: 2, // every reconciliation reads several pages
	})
	if err != nil {
		tb.Fatal(err)
	}
	p.sim = sim
	mustRun(tb, p.simURL+"/admin/channels", func(ctx context.Context) error { return sim.Serve(ctx, simLis) })
	if withStub {
		p.stub, err = channelsim.New(channelsim.Config{
			Stub: true, Channels: stubChannels, NotifyURL: "http://" + forwarder.Addr().String() + "/callbacks",
			Clock: p.clock, Seed: 8, NotifyBackoff: 10 * time.Millisecond,
		})
		if err != nil {
			tb.Fatal(err)
		}
		mustRun(tb, cfg.StubChannelsURL+"/admin/channels", func(ctx context.Context) error { return p.stub.Serve(ctx, stubLis) })
	}

	p.admin = "http://" + payAdmin.Addr().String()
	p.stopPayment = mustRun(tb, p.admin+"/readyz", func(ctx context.Context) error { return app.Run(ctx, cfg) })
	p.payConfig = cfg

	p.product = productv1.NewProductServiceClient(localstack.MustDial(tb, prodGRPC.Addr().String()))
	p.inventory = inventoryv1.NewInventoryServiceClient(localstack.MustDial(tb, invGRPC.Addr().String()))
	p.marketing = marketingv1.NewMarketingServiceClient(localstack.MustDial(tb, mktGRPC.Addr().String()))
	p.orders = mustPool(tb, "orders")
	p.ledger = mustPool(tb, "payment")
	return p
}

// runOrder runs an order service of p.orderConfig serving on the
// listeners, stops the one running before, if any, and points p.order at
// the new one. The payment service keeps calling the order address it
// started with, so a test that runs another order service on new
// listeners asks payment for nothing that needs order afterwards.
func (p *platform) runOrder(tb testing.TB, grpcLis, admin net.Listener) {
	tb.Helper()
	if p.stopOrder != nil {
		p.stopOrder()
	}
	cfg := p.orderConfig
	cfg.GRPCListener, cfg.AdminListener, cfg.NodeID = grpcLis, admin, localstack.NodeID()
	p.orderAdmin = "http://" + admin.Addr().String()
	p.stopOrder = mustRun(tb, "http://"+admin.Addr().String()+"/readyz", func(ctx context.Context) error { return orderapp.Run(ctx, cfg) })
	p.order = orderv1.NewOrderServiceClient(localstack.MustDial(tb, grpcLis.Addr().String()))
}

// runPaymentReplica runs another payment service of the platform's
// configuration on new listeners until the test ends, and returns a client
// of it.
func (p *platform) runPaymentReplica(tb testing.TB) paymentv1.PaymentServiceClient {
	tb.Helper()
	cfg := p.payConfig
	grpcLis, admin := mustListen(tb), mustListen(tb)
	cfg.GRPCListener, cfg.AdminListener, cfg.NodeID = grpcLis, admin, localstack.NodeID()
	mustRun(tb, "http://"+admin.Addr().String()+"/readyz", func(ctx context.Context) error { return app.Run(ctx, cfg) })
	return paymentv1.NewPaymentServiceClient(localstack.MustDial(tb, grpcLis.Addr().String()))
}

func mustPool(tb testing.TB, db string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgplatform.Dial(context.Background(), stack.PostgresURL(db), 8)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// forward hands a channel's callback to payment, answering 200 on success
// and 401 on a bad signature, as the gateway's route does.
func (p *platform) forward(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		return
	}
	body, _ := io.ReadAll(r.Body)
	_, err := p.payment.HandleCallback(r.Context(), &paymentv1.CallbackRequest{
		Channel: r.URL.Path[len("/callbacks/"):], Body: body, Signature: r.Header.Get(wire.SignatureHeader),
	})
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
	}
}

// order is a stored PENDING_PAYMENT order of a fresh user.
type order struct {
	ID, UserID, ActivityID, Payable int64
}

// MustOrders creates an activity of n units and places one order of one
// unit for each of n fresh users, and waits until all are stored.
func (p *platform) MustOrders(tb testing.TB, n int) []order {
	tb.Helper()
	return p.mustOrdersIn(tb, context.Background(), n)
}

// mustOrdersIn is MustOrders in ctx's traffic class: a pressure test's
// orders, sale and product with a marked ctx.
func (p *platform) mustOrdersIn(tb testing.TB, ctx context.Context, n int) []order {
	tb.Helper()
	prod, err := p.product.CreateProduct(ctx, &productv1.CreateProductRequest{Title: "Phone", Price: 199_00, Stock: int64(n)})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	a, err := p.product.CreateActivity(ctx, &productv1.CreateActivityRequest{
		SkuId: prod.GetSkuId(), Price: 99_00, Stock: int64(n), PerUserLimit: 1,
		StartsAt: timestamppb.New(now.Add(-time.Minute)), EndsAt: timestamppb.New(now.Add(time.Hour)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	first := users.Add(int64(n)) - int64(n) + 1
	out := make([]order, n)
	for i := range out {
		user := first + int64(i)
		resp, err := p.order.PlaceSeckillOrder(ctx, &orderv1.PlaceSeckillOrderRequest{
			UserId: user, ActivityId: a.GetActivityId(), Quantity: 1, IdempotencyKey: "k",
		})
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = order{ID: resp.GetOrderId(), UserID: user, ActivityID: a.GetActivityId(), Payable: 99_00}
	}
	for _, o := range out {
		waitFor(tb, "order stored", func() bool {
			return p.orderStatusIn(tb, ctx, o) == orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT
		})
	}
	return out
}

func (p *platform) orderStatus(tb testing.TB, o order) orderv1.OrderStatus {
	tb.Helper()
	return p.orderStatusIn(tb, context.Background(), o)
}

func (p *platform) orderStatusIn(tb testing.TB, ctx context.Context, o order) orderv1.OrderStatus {
	tb.Helper()
	m, err := p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: o.ID, UserId: o.UserID})
	if err != nil {
		tb.Fatal(err)
	}
	return m.GetStatus()
}

func (p *platform) MustPay(tb testing.TB, o order, channel string) *paymentv1.Payment {
	tb.Helper()
	pay, err := p.payment.Pay(context.Background(), &paymentv1.PayRequest{OrderId: o.ID, UserId: o.UserID, Channel: channel})
	if err != nil {
		tb.Fatalf("pay order %d through %s: %v", o.ID, channel, err)
	}
	return pay
}

// MustBuyerPays confirms the payment in the channel's wallet over HTTP,
// as the buyer's app would.
func (p *platform) MustBuyerPays(tb testing.TB, pay *paymentv1.Payment) {
	tb.Helper()
	resp, err := http.Post(pay.GetPayUrl(), "application/json", bytes.NewReader(nil))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("wallet pay %s: status %d", pay.GetPayUrl(), resp.StatusCode)
	}
}

func (p *platform) paymentStatus(tb testing.TB, id int64) paymentv1.PaymentStatus {
	tb.Helper()
	m, err := p.payment.GetPayment(context.Background(), &paymentv1.GetPaymentRequest{PaymentId: id})
	if err != nil {
		tb.Fatal(err)
	}
	return m.GetStatus()
}

func (p *platform) reservation(tb testing.TB, o order) inventoryv1.ReservationStatus {
	tb.Helper()
	r, err := p.inventory.GetReservation(context.Background(), &inventoryv1.GetReservationRequest{ActivityId: o.ActivityID, OrderId: o.ID})
	if err != nil {
		tb.Fatal(err)
	}
	return r.GetStatus()
}

// waitFor polls cond until it holds or twenty seconds pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}
