// Package local runs the whole platform in one process on a local stack
// (platform/localstack): inventory, product, marketing, order, payment,
// the payment channel simulator and the gateway, each through the same
// app.Run its own binary uses, on free loopback ports with static
// discovery. `make up`, `make demo` and the end-to-end tests use it.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway"
	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/localstack"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/services/channelsim"
	invapp "github.com/flashsale/flashsale/services/inventory/app"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	payapp "github.com/flashsale/flashsale/services/payment/app"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

// Kafka topics and databases of the platform.
const (
	TopicOrdersPlaced = "orders.placed"
	TopicOrdersDLQ    = "orders.placed.dlq"
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
		Topics:     []string{TopicOrdersPlaced, TopicOrdersDLQ},
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

	cancel context.CancelFunc
	runCtx context.Context
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	failed chan struct{}
	once   sync.Once
	order  orderProcess
}

// orderProcess is the order service the platform runs, which a fault
// scenario may kill and start again (KillOrder, StartOrder).
type orderProcess struct {
	cfg                 orderapp.Config
	grpcAddr, adminAddr string
	// hook is the consumer hook the caller configured, if any.
	hook   func(ctx context.Context, stored int) error
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// armed, when set, is closed by the next batch the consumer has
	// written, which then waits for the kill instead of committing.
	armed chan struct{}
}

// Up starts every service on stack and returns once the gateway is ready.
func Up(ctx context.Context, stack *localstack.Stack, opts Options) (_ *Platform, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	secret := opts.JWTSecret
	if secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = hex.EncodeToString(b)
	}
	process := func(string) (string, bool) { return "", false }
	if opts.Environ {
		process = os.LookupEnv
	}
	defaults := config.FromFunc(func(name string) (string, bool) {
		if name == config.DevVar {
			return "true", true
		}
		return process(name)
	})
	var lis listeners
	defer func() {
		if err != nil {
			lis.closeAll()
		}
	}()

	inv := invapp.ConfigFromEnv(defaults)
	inv.GRPCListener, inv.AdminListener = lis.take(), lis.take()
	inv.Logger, inv.Clock = log.With("service", "inventory"), clk
	inv.RedisAddr = stack.RedisAddr

	prod := productapp.ConfigFromEnv(defaults)
	prod.GRPCListener, prod.AdminListener = lis.take(), lis.take()
	prod.Logger, prod.Clock = log.With("service", "product"), clk
	prod.PostgresURL = stack.PostgresURL(DBProduct)
	prod.InventoryAddr = addr(inv.GRPCListener)

	mkt := marketingapp.ConfigFromEnv(defaults)
	mkt.GRPCListener, mkt.AdminListener = lis.take(), lis.take()
	mkt.Logger, mkt.Clock = log.With("service", "marketing"), clk
	mkt.PostgresURL = stack.PostgresURL(DBMarketing)

	ord := orderapp.ConfigFromEnv(defaults)
	ord.GRPCListener, ord.AdminListener = lis.take(), lis.take()
	ord.Logger, ord.Clock = log.With("service", "order"), clk
	ord.PostgresURL = stack.PostgresURL(DBOrders)
	ord.RedisAddr = stack.RedisAddr
	ord.KafkaBrokers, ord.KafkaDurability = stack.KafkaBrokers, stack.KafkaDurability
	ord.InventoryAddr = addr(inv.GRPCListener)
	if stack.Faulty() {
		// The order service's link to inventory (its hot path) crosses
		// a fault proxy too (localstack.Inventory).
		if ord.InventoryAddr, err = stack.Proxy(localstack.Inventory, ord.InventoryAddr); err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
	}
	ord.ProductAddr = addr(prod.GRPCListener)
	ord.MarketingAddr = addr(mkt.GRPCListener)

	simLis := lis.take()
	pay := payapp.ConfigFromEnv(defaults)
	pay.GRPCListener, pay.AdminListener = lis.take(), lis.take()
	pay.Logger, pay.Clock = log.With("service", "payment"), clk
	pay.PostgresURL = stack.PostgresURL(DBPayment)
	pay.OrderAddr = addr(ord.GRPCListener)
	pay.ChannelsURL = "http://" + addr(simLis)
	ord.PaymentAddr = addr(pay.GRPCListener)

	gw := gwapp.ConfigFromEnv(defaults)
	if opts.HTTPAddr != "" {
		l, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("local: gateway listen: %w", err)
		}
		lis.add(l)
		gw.HTTPListener = l
	} else {
		gw.HTTPListener = lis.take()
	}
	gw.Logger, gw.Clock = log.With("service", "gateway"), clk
	gw.RedisAddr = stack.RedisAddr
	gw.ProductAddr = addr(prod.GRPCListener)
	gw.OrderAddr = addr(ord.GRPCListener)
	gw.PaymentAddr = addr(pay.GRPCListener)
	gw.MarketingAddr = addr(mkt.GRPCListener)
	gw.JWTSecret = secret
	gw.DevTokens = true
	// Every virtual buyer of a replay comes from this machine's loopback
	// address: a per-address limit would refuse the whole crowd as one
	// client.
	gw.IPLimit = gateway.Limit{}
	if lis.err != nil {
		return nil, fmt.Errorf("local: listen: %w", lis.err)
	}
	if err := defaults.Err(); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}

	if opts.AdjustInventory != nil {
		opts.AdjustInventory(&inv)
	}
	if opts.AdjustProduct != nil {
		opts.AdjustProduct(&prod)
	}
	if opts.AdjustMarketing != nil {
		opts.AdjustMarketing(&mkt)
	}
	if opts.AdjustOrder != nil {
		opts.AdjustOrder(&ord)
	}
	if opts.AdjustPayment != nil {
		opts.AdjustPayment(&pay)
	}
	if opts.AdjustGateway != nil {
		opts.AdjustGateway(&gw)
	}
	simCfg := channelsim.Config{
		Channels:  pay.Channels,
		NotifyURL: "http://" + addr(gw.HTTPListener) + "/api/v1/payments/callbacks",
		Clock:     clk,
		Logger:    log.With("service", "channelsim"),
	}
	if opts.AdjustChannels != nil {
		opts.AdjustChannels(&simCfg)
	}
	sim, err := channelsim.New(simCfg)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Platform{GatewayURL: "http://" + addr(gw.HTTPListener), JWTSecret: secret, Channels: sim, ChannelsURL: "http://" + addr(simLis),
		cancel: cancel, failed: make(chan struct{})}
	p.run(runCtx, "inventory", func(ctx context.Context) error { return invapp.Run(ctx, inv) })
	p.run(runCtx, "product", func(ctx context.Context) error { return productapp.Run(ctx, prod) })
	p.run(runCtx, "marketing", func(ctx context.Context) error { return marketingapp.Run(ctx, mkt) })
	p.runCtx = runCtx
	p.order.grpcAddr, p.order.adminAddr = addr(ord.GRPCListener), addr(ord.AdminListener)
	p.order.hook = ord.ConsumerAfterWrite
	ord.ConsumerAfterWrite = p.order.afterWrite
	p.order.cfg = ord
	p.runOrder()
	p.run(runCtx, "channelsim", func(ctx context.Context) error { return sim.Serve(ctx, simLis) })
	p.run(runCtx, "payment", func(ctx context.Context) error { return payapp.Run(ctx, pay) })
	p.run(runCtx, "gateway", func(ctx context.Context) error { return gwapp.Run(ctx, gw) })

	if err := p.waitReady(ctx); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	log.Info("platform ready", "gateway", p.GatewayURL)
	return p, nil
}

func (p *Platform) run(ctx context.Context, name string, fn func(context.Context) error) {
	p.wg.Go(func() {
		err := fn(ctx)
		if name == "order" {
			p.order.exited()
		}
		if err != nil && ctx.Err() == nil {
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			p.mu.Unlock()
			p.once.Do(func() { close(p.failed) })
		}
	})
}

// runOrder runs the order service of p.order.cfg under a context of its
// own, so KillOrder can stop it alone.
func (p *Platform) runOrder() {
	ctx, cancel := context.WithCancel(p.runCtx)
	p.order.mu.Lock()
	p.order.cancel, p.order.done = cancel, make(chan struct{})
	cfg := p.order.cfg
	p.order.mu.Unlock()
	p.run(ctx, "order", func(ctx context.Context) error { return orderapp.Run(ctx, cfg) })
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
	if o.hook != nil {
		return o.hook(ctx, stored)
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
func (p *Platform) KillOrder(wait time.Duration) (midBatch bool) {
	armed := make(chan struct{})
	p.order.mu.Lock()
	p.order.armed = armed
	cancel, done := p.order.cancel, p.order.done
	p.order.mu.Unlock()
	select {
	case <-armed:
		midBatch = true
	case <-time.After(wait):
		p.order.mu.Lock()
		p.order.armed = nil
		p.order.mu.Unlock()
	}
	cancel()
	<-done
	return midBatch
}

// StartOrder starts the order service again after KillOrder, on the same
// addresses, and returns once it is ready.
func (p *Platform) StartOrder(ctx context.Context) error {
	grpcLis, err := net.Listen("tcp", p.order.grpcAddr)
	if err != nil {
		return fmt.Errorf("local: order listen: %w", err)
	}
	adminLis, err := net.Listen("tcp", p.order.adminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("local: order listen: %w", err)
	}
	p.order.mu.Lock()
	p.order.cfg.GRPCListener, p.order.cfg.AdminListener = grpcLis, adminLis
	p.order.mu.Unlock()
	p.runOrder()
	return waitOK(ctx, "http://"+p.order.adminAddr+telemetry.DependenciesPath, p.failed, p.Err)
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

func (p *Platform) waitReady(ctx context.Context) error {
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
