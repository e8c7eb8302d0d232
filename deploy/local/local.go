// Package local runs the whole platform in one process on a local stack
// (platform/testing/localstack): inventory, product, marketing, order, payment,
// the payment channel simulator and the gateway, each through the same
// app.Run its own binary uses, on free loopback ports with static
// discovery. `make up`, `make demo` and the end-to-end tests use it.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway"
	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/channelsim"
	invapp "github.com/flashsale/flashsale/services/inventory/app"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	payapp "github.com/flashsale/flashsale/services/payment/app"
	channelwire "github.com/flashsale/flashsale/services/payment/channel/wire"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

// Kafka topics and databases of the platform.
const (
	TopicOrdersPlaced = "orders.placed"
	TopicOrdersDLQ    = "orders.placed.dlq"
	TopicOrderEvents  = "orders.events"
	ConsumerGroup     = "order-writer"
	DBProduct         = "product"
	DBOrders          = "orders"
	DBPayment         = "payment"
	DBMarketing       = "marketing"
)

// StackConfig is what the platform needs from the local stack.
func StackConfig(log *slog.Logger) localstack.Config {
	return localstack.Config{
		Databases:  []string{DBProduct, DBOrders, DBPayment, DBMarketing},
		Topics:     []string{TopicOrdersPlaced, TopicOrdersDLQ, TopicOrderEvents},
		Partitions: 8,
		Logger:     log,
	}
}

// Options adjust the platform. The zero value runs it with the services'
// defaults, dev tokens on and the gateway on a free port.
type Options struct {
	Logger *slog.Logger
	Clock  clock.Clock
	// HTTPAddr is the gateway's address; empty picks a free loopback port.
	HTTPAddr string
	// OrderReplicas is how many order services run (default 1), each on
	// ports of its own with its own id space (FLASHSALE_NODE_ID plus its
	// index), all in the consumer group of orders.placed; the gateway and
	// the payment service spread their calls over the live ones.
	OrderReplicas int
	// JWTSecret signs tokens; empty makes a random one.
	JWTSecret string
	// Environ, when true, has every service read the process
	// environment's FLASHSALE_* settings as its binary does (make up and
	// make demo); false runs them on their defaults (the tests).
	// Addresses, listeners, the JWT secret, dev tokens and the
	// per-address limit are the harness's own either way, and the
	// harness is a development setup (FLASHSALE_DEV=true).
	Environ bool
	// Adjust, when set, may change any service's configuration before it
	// starts (tests use it for short payment windows or tight limits).
	AdjustGateway   func(*gwapp.Config)
	AdjustOrder     func(*orderapp.Config)
	AdjustProduct   func(*productapp.Config)
	AdjustInventory func(*invapp.Config)
	AdjustPayment   func(*payapp.Config)
	AdjustChannels  func(*channelsim.Config)
	AdjustMarketing func(*marketingapp.Config)
	// PressureStub runs a stub of the channels for pressure tests beside
	// the simulator, which then stands for live channels (payment's
	// ChannelsLive on): a pressure test pays through the stub, as in
	// production (docs/pressure-test.md).
	PressureStub bool
}

// Platform is a running platform.
type Platform struct {
	// GatewayURL is the gateway's base URL (http://host:port).
	GatewayURL string
	// JWTSecret is the secret the gateway verifies tokens with.
	JWTSecret string
	// Channels is the payment channel simulator: the demo and tests
	// change channels' behaviour and pay as buyers through it.
	Channels *channelsim.Simulator
	// ChannelsURL is the simulator's base URL (its channel API, pay URLs
	// and admin endpoint).
	ChannelsURL string
	// StubURL is the pressure-test stub's base URL (Options.PressureStub;
	// empty without it).
	StubURL string
	// ProductMetricsURL is the product service's /metrics (its cache
	// levels, for the report).
	ProductMetricsURL string

	cancel context.CancelFunc
	runCtx context.Context
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	failed chan struct{}
	once   sync.Once
	// orders are the order service's replicas; the first is the one
	// KillOrder stops.
	orders []*orderProcess
	// metrics are the services' /metrics URLs (their admin servers).
	metrics []Link
}

// Links are the URLs to open on a running platform, for Banner: the API,
// its development token endpoint, the channel simulator, and every
// service's metrics.
func (p *Platform) Links() []Link {
	links := []Link{
		{"API (gateway)", p.GatewayURL},
		{"dev token", "POST " + p.GatewayURL + "/api/v1/dev/token"},
		{"channel simulator", p.ChannelsURL},
		{"metrics: gateway", p.GatewayURL + "/metrics"},
	}
	if p.StubURL != "" {
		links = append(links, Link{"channels stub (pressure tests)", p.StubURL})
	}
	for _, m := range p.metrics {
		links = append(links, Link{"metrics: " + m.Name, m.URL})
	}
	return links
}

// orderProcess is an order service replica the platform runs, which a
// fault scenario may kill and start again (KillOrder, StartOrder,
// KillOrderReplica, StartOrderReplica).
type orderProcess struct {
	name                string
	cfg                 orderapp.Config
	grpcAddr, adminAddr string
	// wire is cfg.GRPCListener, whose connections a hard kill breaks.
	wire *wire
	// started is false from a restart until the replica is ready: a
	// replica that fails to start again is started once more.
	started bool
	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	// armed, when set, is closed by the next batch the consumer has
	// written, which then waits for the kill instead of committing.
	armed chan struct{}
}

// Up starts every service on stack and returns once the gateway is ready.
func Up(ctx context.Context, stack *localstack.Stack, opts Options) (_ *Platform, err error) {
	opts = opts.withDefaults()
	var lis listeners
	defer func() {
		if err != nil {
			lis.closeAll()
		}
	}()
	pl, err := newPlan(stack, opts, &lis)
	if err != nil {
		return nil, err
	}
	pl.adjust(opts)
	sim, err := channelsim.New(pl.sim)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	var stub *channelsim.Simulator
	if opts.PressureStub {
		if stub, err = channelsim.New(pl.stub); err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
	}
	p := pl.start(ctx, opts, sim, stub)
	if err := p.waitReady(ctx); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	opts.Logger.Info("platform ready", "gateway", p.GatewayURL)
	return p, nil
}

// withDefaults fills the options Up needs: a silent logger, the real
// clock, a random secret.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.JWTSecret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		o.JWTSecret = hex.EncodeToString(b)
	}
	o.OrderReplicas = max(o.OrderReplicas, 1)
	return o
}

// settings is what the services read their FLASHSALE_* settings from: the
// process's environment with Environ, nothing without, and always the
// development switch.
func (o Options) settings() *config.Env {
	process := func(string) (string, bool) { return "", false }
	if o.Environ {
		process = os.LookupEnv
	}
	return config.FromFunc(func(name string) (string, bool) {
		if name == config.DevVar {
			return "true", true
		}
		return process(name)
	})
}

// plan is every process's configuration, each wired to the listeners of
// the ones it calls, before any of them starts.
type plan struct {
	inv  invapp.Config
	prod productapp.Config
	mkt  marketingapp.Config
	ord  orderapp.Config
	// orderLis are each order replica's gRPC and admin listeners, in
	// turn; orderAddrs their gRPC addresses.
	orderLis   []net.Listener
	orderAddrs []string
	pay        payapp.Config
	gw         gwapp.Config
	simLis     net.Listener
	sim        channelsim.Config
	// stubLis and stub are the pressure-test stub's (nil and unused
	// without Options.PressureStub).
	stubLis net.Listener
	stub    channelsim.Config
}

// newPlan reads the settings and takes a listener for every server.
func newPlan(stack *localstack.Stack, opts Options, lis *listeners) (*plan, error) {
	env, log, clk := opts.settings(), opts.Logger, opts.Clock
	pl := &plan{}
	pl.inv = invapp.ConfigFromEnv(env)
	pl.inv.GRPCListener, pl.inv.AdminListener = lis.take(), lis.take()
	pl.inv.Logger, pl.inv.Clock = log.With("service", "inventory"), clk
	pl.inv.RedisAddr = stack.RedisAddr

	pl.prod = productapp.ConfigFromEnv(env)
	pl.prod.GRPCListener, pl.prod.AdminListener = lis.take(), lis.take()
	pl.prod.Logger, pl.prod.Clock = log.With("service", "product"), clk
	pl.prod.PostgresURL = stack.PostgresURL(DBProduct)
	pl.prod.RedisAddr = stack.RedisAddr
	pl.prod.InventoryAddr = addr(pl.inv.GRPCListener)

	pl.mkt = marketingapp.ConfigFromEnv(env)
	pl.mkt.GRPCListener, pl.mkt.AdminListener = lis.take(), lis.take()
	pl.mkt.Logger, pl.mkt.Clock = log.With("service", "marketing"), clk
	pl.mkt.PostgresURL = stack.PostgresURL(DBMarketing)

	if err := pl.planOrders(stack, opts, env, lis); err != nil {
		return nil, err
	}

	pl.simLis = lis.take()
	pl.pay = payapp.ConfigFromEnv(env)
	pl.pay.GRPCListener, pl.pay.AdminListener = lis.take(), lis.take()
	pl.pay.Logger, pl.pay.Clock = log.With("service", "payment"), clk
	pl.pay.PostgresURL = stack.PostgresURL(DBPayment)
	pl.pay.OrderAddr = staticTarget(pl.orderAddrs)
	pl.pay.ChannelsURL = "http://" + addr(pl.simLis)
	if opts.PressureStub {
		// The simulator stands for live channels; the stub signs with
		// secrets of its own.
		pl.stubLis = lis.take()
		pl.pay.ChannelsLive, pl.pay.StubChannelsURL = true, "http://"+addr(pl.stubLis)
		pl.pay.StubChannels = nil
		for _, c := range pl.pay.Channels {
			pl.pay.StubChannels = append(pl.pay.StubChannels, channelwire.Channel{Name: c.Name, Secret: c.Secret + "-stub"})
		}
	}
	pl.ord.PaymentAddr = addr(pl.pay.GRPCListener)

	if err := pl.planGateway(stack, opts, env, lis); err != nil {
		return nil, err
	}
	if lis.err != nil {
		return nil, fmt.Errorf("local: listen: %w", lis.err)
	}
	if err := env.Err(); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return pl, nil
}

// planOrders plans the order service's replicas: one configuration, a
// pair of listeners each.
func (pl *plan) planOrders(stack *localstack.Stack, opts Options, env *config.Env, lis *listeners) error {
	pl.ord = orderapp.ConfigFromEnv(env)
	pl.orderLis = make([]net.Listener, 2*opts.OrderReplicas)
	pl.orderAddrs = make([]string, opts.OrderReplicas)
	for i := range opts.OrderReplicas {
		pl.orderLis[2*i], pl.orderLis[2*i+1] = lis.take(), lis.take()
		pl.orderAddrs[i] = addr(pl.orderLis[2*i])
	}
	pl.ord.Logger, pl.ord.Clock = opts.Logger.With("service", "order"), opts.Clock
	pl.ord.PostgresURL = stack.PostgresURL(DBOrders)
	pl.ord.RedisAddr = stack.RedisAddr
	pl.ord.KafkaBrokers, pl.ord.KafkaDurability = stack.KafkaBrokers, stack.KafkaDurability
	pl.ord.InventoryAddr = addr(pl.inv.GRPCListener)
	if stack.Faulty() {
		// The order service's link to inventory (its hot path) crosses
		// a fault proxy too (localstack.Inventory).
		var err error
		if pl.ord.InventoryAddr, err = stack.Proxy(localstack.Inventory, pl.ord.InventoryAddr); err != nil {
			return fmt.Errorf("local: %w", err)
		}
	}
	pl.ord.ProductAddr = addr(pl.prod.GRPCListener)
	pl.ord.MarketingAddr = addr(pl.mkt.GRPCListener)
	return nil
}

// planGateway plans the gateway, on opts.HTTPAddr when set.
func (pl *plan) planGateway(stack *localstack.Stack, opts Options, env *config.Env, lis *listeners) error {
	pl.gw = gwapp.ConfigFromEnv(env)
	if opts.HTTPAddr != "" {
		l, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return fmt.Errorf("local: gateway listen: %w", err)
		}
		lis.add(l)
		pl.gw.HTTPListener = l
	} else {
		pl.gw.HTTPListener = lis.take()
	}
	pl.gw.Logger, pl.gw.Clock = opts.Logger.With("service", "gateway"), opts.Clock
	pl.gw.RedisAddr = stack.RedisAddr
	pl.gw.ProductAddr = addr(pl.prod.GRPCListener)
	pl.gw.OrderAddr = staticTarget(pl.orderAddrs)
	pl.gw.PaymentAddr = addr(pl.pay.GRPCListener)
	pl.gw.MarketingAddr = addr(pl.mkt.GRPCListener)
	pl.gw.JWTSecret = opts.JWTSecret
	pl.gw.DevTokens = true
	// The big screen reads the order events and the payment service's
	// counters (docs/big-screen.md).
	pl.gw.ScreenKafkaBrokers = stack.KafkaBrokers
	pl.gw.ScreenPaymentMetrics = []string{"http://" + addr(pl.pay.AdminListener) + "/metrics"}
	// Every virtual buyer of a replay comes from this machine's loopback
	// address: a per-address limit would refuse the whole crowd as one
	// client.
	pl.gw.IPLimit = gateway.Limit{}
	return nil
}

// adjust lets the caller change each configuration (a test's short
// windows, a fault scenario's hooks).
func (pl *plan) adjust(opts Options) {
	adjust(opts.AdjustInventory, &pl.inv)
	adjust(opts.AdjustProduct, &pl.prod)
	adjust(opts.AdjustMarketing, &pl.mkt)
	adjust(opts.AdjustOrder, &pl.ord)
	adjust(opts.AdjustPayment, &pl.pay)
	adjust(opts.AdjustGateway, &pl.gw)
	// The channel simulator follows the payment service's channels and
	// calls the gateway back, both as adjusted.
	pl.sim = channelsim.Config{
		Channels:  pl.pay.Channels,
		NotifyURL: "http://" + addr(pl.gw.HTTPListener) + "/api/v1/payments/callbacks",
		Clock:     opts.Clock,
		Logger:    opts.Logger.With("service", "channelsim"),
	}
	adjust(opts.AdjustChannels, &pl.sim)
	pl.stub = pl.sim
	pl.stub.Stub, pl.stub.Channels, pl.stub.Logger = true, pl.pay.StubChannels, opts.Logger.With("service", "channels stub")
}

func adjust[C any](f func(*C), cfg *C) {
	if f != nil {
		f(cfg)
	}
}

// start runs every process of the plan, each until the platform is
// closed, and returns the platform (not yet ready).
func (pl *plan) start(ctx context.Context, opts Options, sim, stub *channelsim.Simulator) *Platform {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Platform{GatewayURL: "http://" + addr(pl.gw.HTTPListener), JWTSecret: opts.JWTSecret, Channels: sim,
		ChannelsURL: "http://" + addr(pl.simLis), ProductMetricsURL: "http://" + addr(pl.prod.AdminListener) + "/metrics",
		cancel: cancel, failed: make(chan struct{})}
	p.metrics = []Link{
		{"inventory", "http://" + addr(pl.inv.AdminListener) + "/metrics"},
		{"product", "http://" + addr(pl.prod.AdminListener) + "/metrics"},
		{"marketing", "http://" + addr(pl.mkt.AdminListener) + "/metrics"},
		{"payment", "http://" + addr(pl.pay.AdminListener) + "/metrics"},
	}
	for i := range opts.OrderReplicas {
		p.metrics = append(p.metrics, Link{fmt.Sprintf("order %d", i), "http://" + addr(pl.orderLis[2*i+1]) + "/metrics"})
	}
	inv, prod, mkt, pay, gw := pl.inv, pl.prod, pl.mkt, pl.pay, pl.gw
	p.run(runCtx, "inventory", func(ctx context.Context) error { return invapp.Run(ctx, inv) })
	p.run(runCtx, "product", func(ctx context.Context) error { return productapp.Run(ctx, prod) })
	p.run(runCtx, "marketing", func(ctx context.Context) error { return marketingapp.Run(ctx, mkt) })
	p.runCtx = runCtx
	for i := range opts.OrderReplicas {
		o := &orderProcess{name: "order", cfg: pl.ord, grpcAddr: pl.orderAddrs[i], adminAddr: addr(pl.orderLis[2*i+1])}
		if opts.OrderReplicas > 1 {
			o.name = fmt.Sprintf("order replica %d", i)
			o.cfg.Logger = pl.ord.Logger.With("replica", i)
		}
		o.cfg.NodeID = pl.ord.NodeID + int64(i)
		o.listenOn(pl.orderLis[2*i], pl.orderLis[2*i+1])
		p.orders = append(p.orders, o)
		p.runOrder(o, false)
	}
	simLis := pl.simLis
	p.run(runCtx, "channelsim", func(ctx context.Context) error { return sim.Serve(ctx, simLis) })
	if stub != nil {
		stubLis := pl.stubLis
		p.StubURL = "http://" + addr(stubLis)
		p.run(runCtx, "channels stub", func(ctx context.Context) error { return stub.Serve(ctx, stubLis) })
	}
	p.run(runCtx, "payment", func(ctx context.Context) error { return payapp.Run(ctx, pay) })
	p.run(runCtx, "gateway", func(ctx context.Context) error { return gwapp.Run(ctx, gw) })
	return p
}

func (p *Platform) run(ctx context.Context, name string, fn func(context.Context) error) {
	p.wg.Go(func() {
		err := fn(ctx)
		if err != nil && ctx.Err() == nil {
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			p.mu.Unlock()
			p.once.Do(func() { close(p.failed) })
		}
	})
}

// runOrder runs the order replica o under a context of its own, so a
// kill can stop it alone. A replica started again after a kill may find
// a dependency down (Postgres restarting at that moment): when it fails
// before it was ready, it is started once more half a second later, as a
// supervisor (Kubernetes) restarts a crashed container, instead of
// failing the platform.
func (p *Platform) runOrder(o *orderProcess, restart bool) {
	ctx, cancel := context.WithCancel(p.runCtx)
	o.mu.Lock()
	o.cancel, o.done, o.started = cancel, make(chan struct{}), !restart
	o.armed = nil // a hard kill's, for the process it killed
	o.mu.Unlock()
	p.run(ctx, o.name, func(ctx context.Context) error {
		defer o.exited()
		for {
			o.mu.Lock()
			cfg := o.cfg
			o.mu.Unlock()
			err := orderapp.Run(ctx, cfg, orderapp.AfterConsumerWrite(o.afterWrite))
			o.mu.Lock()
			started := o.started
			o.mu.Unlock()
			if err == nil || ctx.Err() != nil || started {
				return err
			}
			cfg.Logger.Warn("order service failed to start again; starting it once more", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
			cfg.GRPCListener.Close()
			cfg.AdminListener.Close()
			if err := o.listen(); err != nil {
				return err
			}
		}
	})
}

// listen opens o's listeners on its addresses again.
func (o *orderProcess) listen() error {
	grpcLis, err := net.Listen("tcp", o.grpcAddr)
	if err != nil {
		return fmt.Errorf("local: %s listen: %w", o.name, err)
	}
	adminLis, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("local: %s listen: %w", o.name, err)
	}
	o.listenOn(grpcLis, adminLis)
	return nil
}

// listenOn makes o serve on the listeners (its own addresses, at the
// start and after a kill).
func (o *orderProcess) listenOn(grpcLis, adminLis net.Listener) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.wire = newWire(grpcLis)
	o.cfg.GRPCListener, o.cfg.AdminListener = o.wire, adminLis
}

func (o *orderProcess) exited() {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.done)
}

// afterWrite is the consumer's hook between a batch's write and its
// commit: when a kill is armed, the batch is stored but its offsets are
// never committed, as when the process dies at that instant.
func (o *orderProcess) afterWrite(ctx context.Context, stored int) error {
	o.mu.Lock()
	armed := o.armed
	o.armed = nil
	o.mu.Unlock()
	if armed != nil {
		close(armed)
		<-ctx.Done()
		return fmt.Errorf("killed between the batch's write and its commit: %w", ctx.Err())
	}
	return nil
}

// KillOrder stops the order service the way a crash does at the worst
// moment for its consumer: it waits (up to wait) for the consumer to have
// stored a batch, stops the service before that batch's offsets are
// committed, and returns whether a batch was caught between its write and
// its commit (false when no batch came within wait; the service is
// stopped all the same). Buys answer UNAVAILABLE until StartOrder; the
// caught batch is delivered again after it, and stored once.
//
// With several replicas it stops the first (the others keep serving).
func (p *Platform) KillOrder(wait time.Duration) (midBatch bool) {
	o := p.orders[0]
	armed := make(chan struct{})
	o.mu.Lock()
	o.armed = armed
	cancel, done := o.cancel, o.done
	o.mu.Unlock()
	select {
	case <-armed:
		midBatch = true
	case <-time.After(wait):
		o.mu.Lock()
		o.armed = nil
		o.mu.Unlock()
	}
	cancel()
	<-done
	return midBatch
}

// StartOrder starts the order service again after KillOrder, on the same
// addresses, and returns once it is ready.
func (p *Platform) StartOrder(ctx context.Context) error {
	return p.startOrder(ctx, p.orders[0])
}

// OrderReplicas is how many order replicas the platform runs.
func (p *Platform) OrderReplicas() int { return len(p.orders) }

// OrderAdminURL is the base URL of order replica i's admin server
// (metrics, dependencies).
func (p *Platform) OrderAdminURL(i int) string { return "http://" + p.orders[i].adminAddr }

// KillOrderReplica kills order replica i (0 is the first) as kill -9 does,
// without draining: its connections break at once, so the calls in flight
// on it fail (UNAVAILABLE), and a consumer batch it writes from then on is
// never committed (the group delivers it again, to a live replica). The
// gateway's and the payment service's later calls go to the other
// replicas: the dead one's reconnects are refused and round_robin leaves
// it out. It returns at once, as a kill does; the replica's goroutines
// wind down behind it, their consumer batch uncommitted. One difference
// from a real kill -9: its consumer leaves the group as it stops, so its
// partitions move at once instead of after the group's session timeout
// (10 s). Run StartOrderReplica to bring it back.
func (p *Platform) KillOrderReplica(i int) error {
	if i < 0 || i >= len(p.orders) {
		return fmt.Errorf("local: no order replica %d (the platform runs %d)", i, len(p.orders))
	}
	o := p.orders[i]
	o.mu.Lock()
	o.armed = make(chan struct{})
	cancel, w := o.cancel, o.wire
	o.mu.Unlock()
	cancel()
	w.cutAll()
	return nil
}

// StartOrderReplica starts order replica i again after KillOrderReplica,
// on the same addresses, and returns once it is ready.
func (p *Platform) StartOrderReplica(ctx context.Context, i int) error {
	if i < 0 || i >= len(p.orders) {
		return fmt.Errorf("local: no order replica %d (the platform runs %d)", i, len(p.orders))
	}
	return p.startOrder(ctx, p.orders[i])
}

func (p *Platform) startOrder(ctx context.Context, o *orderProcess) error {
	o.mu.Lock()
	done := o.done
	o.mu.Unlock()
	select { // the killed process has let go of its addresses
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("local: %s still stopping: %w", o.name, ctx.Err())
	}
	if err := o.listen(); err != nil {
		return err
	}
	p.runOrder(o, true)
	if err := waitOK(ctx, "http://"+o.adminAddr+telemetry.DependenciesPath, p.failed, p.Err); err != nil {
		return err
	}
	o.mu.Lock()
	o.started = true
	o.mu.Unlock()
	return nil
}

// Failed is closed when a service stops with an error before Close.
func (p *Platform) Failed() <-chan struct{} { return p.failed }

// Err returns the errors services stopped with.
func (p *Platform) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// Close stops every service (gracefully: in-flight requests and the
// consumer's current batch finish) and waits for them.
func (p *Platform) Close() error {
	p.cancel()
	p.wg.Wait()
	return p.Err()
}

// waitReady waits for the gateway and for every order replica: the
// gateway is ready as soon as one replica answers, and a replica still
// starting would get no calls at first.
func (p *Platform) waitReady(ctx context.Context) error {
	for _, o := range p.orders {
		if err := waitOK(ctx, "http://"+o.adminAddr+telemetry.DependenciesPath, p.failed, p.Err); err != nil {
			return err
		}
	}
	return waitOK(ctx, p.GatewayURL+telemetry.DependenciesPath, p.failed, p.Err)
}

// waitOK waits up to a minute until url answers 200, failing early when
// failed closes (with errs's errors).
func waitOK(ctx context.Context, url string, failed <-chan struct{}, errs func() error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-failed:
			return fmt.Errorf("local: a service failed to start: %w", errs())
		case <-ctx.Done():
			return fmt.Errorf("local: %s not ready: %w (last: %v)", url, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listeners opens loopback listeners on free ports and remembers the
// first error, so a run of takes is checked once.
type listeners struct {
	all []net.Listener
	err error
}

func (l *listeners) take() net.Listener {
	if l.err != nil {
		return nil
	}
	n, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.err = err
		return nil
	}
	l.add(n)
	return n
}

func (l *listeners) add(n net.Listener) { l.all = append(l.all, n) }

func (l *listeners) closeAll() {
	for _, n := range l.all {
		n.Close()
	}
}

func addr(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// ScreenURL is the big screen's address with a screen token in its
// fragment (docs/big-screen.md): an admin token from the gateway's dev
// endpoint mints it, and only the screen token is printed, so the page's
// address reads the figures and nothing else.
func (p *Platform) ScreenURL(ctx context.Context) (string, error) {
	var admin, screen struct {
		Token string `json:"token"`
		Path  string `json:"path"`
	}
	if err := p.post(ctx, "/api/v1/dev/token", "", `{"user_id": "1", "role": "admin"}`, http.StatusOK, &admin); err != nil {
		return "", fmt.Errorf("local: admin token: %w", err)
	}
	if admin.Token == "" {
		return "", errors.New("local: admin token: answered without one")
	}
	if err := p.post(ctx, gateway.ScreenTokensPath, admin.Token, "", http.StatusCreated, &screen); err != nil {
		return "", fmt.Errorf("local: screen token: %w", err)
	}
	if screen.Path == "" {
		return "", errors.New("local: screen token: answered without the page's path")
	}
	return p.GatewayURL + screen.Path, nil
}

// post sends body to the gateway's path with the bearer token (none when
// empty) and decodes the answer, which must have the status want, into
// out.
func (p *Platform) post(ctx context.Context, path, token, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.GatewayURL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
