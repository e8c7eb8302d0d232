// Package app wires the payment service: the Postgres ledger, the order
// service client, one channel client per configured channel, the router,
// the domain service with its sweep and reconciliation worker, its gRPC
// server and the admin HTTP server. main, the demo launcher and tests all
// start the service through Run.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/ids"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/shadow"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/payment"
	"github.com/flashsale/flashsale/services/payment/channel"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
	paymentgrpc "github.com/flashsale/flashsale/services/payment/grpc"
	"github.com/flashsale/flashsale/services/payment/postgres"
)

// Config is the payment service's configuration. Zero values take the
// defaults below (a nil Logger discards, a nil Clock is the wall clock).
type Config struct {
	// GRPCAddr and AdminAddr are where to listen unless GRPCListener and
	// AdminListener are given.
	GRPCAddr, AdminAddr         string
	GRPCListener, AdminListener net.Listener
	Logger                      *slog.Logger
	// Clock stamps payments and decides when a PAYING payment is stuck.
	Clock clock.Clock

	// PostgresURL is the ledger's database; PostgresMaxConns bounds its
	// pool.
	PostgresURL      string
	PostgresMaxConns int32
	// OrderAddr is the order service's gRPC target; RPCTimeout bounds each
	// call to it.
	OrderAddr  string
	RPCTimeout time.Duration
	// ChannelsURL is the channels' API base (the channel simulator's
	// address in development; outside it, required);
	// Channels name them with their notification secrets; ChannelTimeout
	// bounds each call to a channel.
	ChannelsURL string
	// ChannelsLive says the channels at ChannelsURL move real money, so a
	// pressure test's payments go to the stub (StubChannelsURL) or, with
	// none, are refused (nothing there keeps them apart). It defaults to
	// true outside development and to false in it, where the channels are
	// the simulator, whose shadow twins do.
	ChannelsLive   bool
	Channels       []wire.Channel
	ChannelTimeout time.Duration
	// StubChannelsURL, when set, is a stub of the channels beside live
	// ones (the channel simulator with FLASHSALE_CHANNELSIM_STUB): a
	// pressure test pays there instead of being refused. StubChannels
	// name the same channels with the stub's own notification secrets,
	// none of them a live channel's.
	StubChannelsURL string
	StubChannels    []wire.Channel
	// PayBudget bounds one pay request, every channel tried included
	// (payment.Config.PayBudget): a channel that does not answer within
	// its share is abandoned for the next.
	PayBudget time.Duration
	// Router tunes routing and the breakers (its Channels and Clock are
	// filled from the fields above).
	Router payment.RouterConfig
	// QueryAfter is how long a payment stays PAYING before its channel is
	// first asked, and the shortest wait between two questions about it;
	// SweepEvery and ReconcileEvery pace the worker.
	QueryAfter     time.Duration
	SweepEvery     time.Duration
	ReconcileEvery time.Duration
	// NodeID is this replica's replica number for ids (0..127).
	NodeID int64
	// Discovery says where Consul is (FLASHSALE_CONSUL_ADDR): with it the
	// service registers as "payment" and OrderAddr may be
	// "consul://order"; empty means static addresses and no registration.
	Discovery discovery.Config
}

// Defaults of the settings.
const (
	DefaultGRPCAddr         = ":9104"
	DefaultAdminAddr        = ":9204"
	DefaultPostgresURL      = "postgres://flashsale@127.0.0.1:5432/payment?sslmode=disable"
	DefaultPostgresMaxConns = 20
	DefaultOrderAddr        = "127.0.0.1:9103"
	DefaultRPCTimeout       = 2 * time.Second
	DefaultChannelsURL      = "http://127.0.0.1:9301"
	DefaultChannelTimeout   = 2 * time.Second
	DefaultQueryAfter       = 30 * time.Second
	DefaultSweepEvery       = 5 * time.Second
	DefaultReconcileEvery   = time.Minute
)

// ConfigFromEnv reads the FLASHSALE_* variables; problems are collected in
// env (check env.Err()).
func ConfigFromEnv(env *config.Env) Config {
	cfg := Config{
		GRPCAddr:         env.String("FLASHSALE_GRPC_ADDR", DefaultGRPCAddr),
		AdminAddr:        env.String("FLASHSALE_ADMIN_ADDR", DefaultAdminAddr),
		Clock:            clock.Real{},
		PostgresURL:      env.DatabaseURL("FLASHSALE_POSTGRES_URL", DefaultPostgresURL),
		PostgresMaxConns: pgplatform.PoolSize(env, DefaultPostgresMaxConns),
		OrderAddr:        env.String("FLASHSALE_ORDER_ADDR", DefaultOrderAddr),
		RPCTimeout:       env.Positive("FLASHSALE_RPC_TIMEOUT", DefaultRPCTimeout),
		ChannelsURL:      env.DevString("FLASHSALE_CHANNELS_URL", DefaultChannelsURL),
		ChannelsLive:     env.Bool("FLASHSALE_CHANNELS_LIVE", !env.Dev()),
		Channels:         wire.ParseChannels(env, "FLASHSALE_CHANNELS"),
		ChannelTimeout:   env.Positive("FLASHSALE_CHANNEL_TIMEOUT", DefaultChannelTimeout),
		PayBudget:        env.Positive("FLASHSALE_PAY_BUDGET", payment.DefaultPayBudget),
		Router: payment.RouterConfig{
			OpenFor: env.Positive("FLASHSALE_BREAKER_OPEN_FOR", 5*time.Second),
			Seed:    uint64(env.Int("FLASHSALE_ROUTER_SEED", 1)),
		},
		QueryAfter:     env.Positive("FLASHSALE_QUERY_AFTER", DefaultQueryAfter),
		SweepEvery:     env.Positive("FLASHSALE_SWEEP_EVERY", DefaultSweepEvery),
		ReconcileEvery: env.Positive("FLASHSALE_RECONCILE_EVERY", DefaultReconcileEvery),
		NodeID:         env.IntIn("FLASHSALE_NODE_ID", 0, 0, ids.MaxReplica),
		Discovery:      discovery.ConfigFromEnv(env),
	}
	checkHTTPURL(env, "FLASHSALE_CHANNELS_URL", cfg.ChannelsURL)
	cfg.StubChannelsURL = env.String("FLASHSALE_STUB_CHANNELS_URL", "")
	if env.SecretIf(cfg.StubChannelsURL != "", "FLASHSALE_STUB_CHANNELS"); cfg.StubChannelsURL != "" {
		checkHTTPURL(env, "FLASHSALE_STUB_CHANNELS_URL", cfg.StubChannelsURL)
		cfg.StubChannels = wire.ParseChannels(env, "FLASHSALE_STUB_CHANNELS")
		checkStub(env, cfg.Channels, cfg.StubChannels)
	}
	return cfg
}

// checkHTTPURL requires v to be an http URL, and outside development one
// that names no placeholder host (config.PlaceholderHost): the prod
// overlay ships one for the channels, and payments would fail against it
// while the service looked healthy.
func checkHTTPURL(env *config.Env, name, v string) {
	u, err := url.Parse(v)
	ok := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	env.Check(ok, "%s=%q: not an http URL", name, v)
	env.Check(!ok || env.Dev() || !config.PlaceholderHost(u.Hostname()), "%s=%q names a placeholder host: set your own (%s=true allows it)", name, v, config.DevVar)
}

// checkStub requires the stub to serve the live channels, each under a
// secret of its own: a stub that held any live channel's secret could
// sign a real payment's notification on that channel, and one secret
// for two of its channels would let one sign for the other.
func checkStub(env *config.Env, live, stub []wire.Channel) {
	liveSecrets := make(map[string]bool, len(live))
	names := make(map[string]bool, len(live))
	for _, c := range live {
		liveSecrets[c.Secret], names[c.Name] = true, false
	}
	stubSecrets := make(map[string]string, len(stub))
	for _, c := range stub {
		_, ok := names[c.Name]
		env.Check(ok, "FLASHSALE_STUB_CHANNELS: %s is not a channel of FLASHSALE_CHANNELS", c.Name)
		env.Check(!liveSecrets[c.Secret], "FLASHSALE_STUB_CHANNELS: %s has a live channel's secret; a stub needs its own", c.Name)
		other, dup := stubSecrets[c.Secret]
		env.Check(!dup, "FLASHSALE_STUB_CHANNELS: %s and %s share a secret", other, c.Name)
		stubSecrets[c.Secret] = c.Name
		names[c.Name] = true
	}
	for _, c := range live {
		env.Check(names[c.Name], "FLASHSALE_STUB_CHANNELS: no stub of %s, where a pressure test may be routed", c.Name)
	}
}

// withDefaults fills the zero settings.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	c.PostgresMaxConns = cmp.Or(c.PostgresMaxConns, DefaultPostgresMaxConns)
	c.RPCTimeout = cmp.Or(c.RPCTimeout, DefaultRPCTimeout)
	c.ChannelsURL = cmp.Or(c.ChannelsURL, DefaultChannelsURL)
	if len(c.Channels) == 0 {
		c.Channels = wire.DefaultChannels
	}
	c.ChannelTimeout = cmp.Or(c.ChannelTimeout, DefaultChannelTimeout)
	c.QueryAfter = cmp.Or(c.QueryAfter, DefaultQueryAfter)
	c.SweepEvery = cmp.Or(c.SweepEvery, DefaultSweepEvery)
	c.ReconcileEvery = cmp.Or(c.ReconcileEvery, DefaultReconcileEvery)
	return c
}

// Run applies the schema and serves gRPC while the worker sweeps stuck
// payments and reconciles, until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	p, err := serve.New(serve.Spec{
		Name: "payment", GRPCAddr: cfg.GRPCAddr, GRPCListener: cfg.GRPCListener, Errors: paymentgrpc.Errors,
		HTTPAddr: cfg.AdminAddr, HTTPListener: cfg.AdminListener, Discovery: cfg.Discovery, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	log, consul := p.Log, p.Consul

	gen, err := ids.NewGenerator(ids.SpacePayment, cfg.NodeID, cfg.Clock)
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	channels, router, err := channelsAt(cfg, cfg.ChannelsURL, cfg.Channels)
	if err != nil {
		return err
	}
	var stub *payment.Stub
	if cfg.StubChannelsURL != "" {
		stub = &payment.Stub{}
		if stub.Channels, stub.Router, err = channelsAt(cfg, cfg.StubChannelsURL, cfg.StubChannels); err != nil {
			return err
		}
	}
	pool, err := pgplatform.DialRouted(ctx, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	defer pool.Close()
	if err := pgplatform.MigrateRouted(ctx, pool, postgres.Migrations); err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	orderConn, err := consul.Dial(cfg.OrderAddr, rpc.CallTimeout(cfg.RPCTimeout))
	if err != nil {
		return fmt.Errorf("payment: order: %w", err)
	}
	defer orderConn.Close()

	svc := payment.NewService(payment.Config{
		Ledger:     postgres.NewLedger(pool),
		Orders:     paymentgrpc.NewOrders(orderConn),
		Channels:   channels,
		Router:     router,
		Stub:       stub,
		Live:       cfg.ChannelsLive,
		Clock:      cfg.Clock,
		NextID:     gen.Next,
		QueryAfter: cfg.QueryAfter,
		PayBudget:  cfg.PayBudget,
		Logger:     log,
		Observer:   newPaymentMetrics(p.Registry, router, stubRouter(stub)),
	})
	var shared paymentgrpc.PutChannelSetting
	if consul != nil {
		shared = func(ctx context.Context, channel string, s payment.ChannelSetting) error {
			return consul.Put(ctx, payment.ChannelSettingsPrefix+channel, s.Encode())
		}
	}
	paymentv1.RegisterPaymentServiceServer(p.GRPC, paymentgrpc.NewServer(svc, shared))
	p.AddCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	// The sweep and the reconciliation read the ledger without a request:
	// they run once per traffic class (docs/pressure-test.md).
	// With live channels and no stub, pressure tests pay nowhere: the
	// marked class has nothing to sweep or reconcile, and must ask the
	// live channels nothing.
	p.AddWorker(func(ctx context.Context) error {
		work := func(ctx context.Context) error { return svc.Run(ctx, cfg.SweepEvery, cfg.ReconcileEvery) }
		if !svc.PressureTestsPay() {
			return work(ctx)
		}
		return shadow.Each(ctx, work)
	})
	// Not ready until Consul's channel settings are read: a replica
	// must not route to a channel an operator switched off.
	p.WatchSettings("the channel settings in consul", payment.ChannelSettingsPrefix, func(kv map[string]string) {
		settings, err := payment.ParseChannelSettings(kv, router.Settings())
		if err = errors.Join(err, router.Apply(settings)); err != nil {
			log.Error("payment channel settings in consul: bad keys keep the settings in force, unknown channels ignored", "err", err)
		}
		log.Info("payment channel settings applied", "settings", settings)
	})
	return p.Run(ctx, "order", cfg.OrderAddr, "channels", cfg.ChannelsURL, "stub_channels", cfg.StubChannelsURL)
}

// stubRouter is stub's router, or nil without a stub.
func stubRouter(stub *payment.Stub) *payment.Router {
	if stub == nil {
		return nil
	}
	return stub.Router
}

// channelsAt returns the clients of the channels served at base and a
// router over them (its breakers their own).
func channelsAt(cfg Config, base string, list []wire.Channel) (map[string]payment.Channel, *payment.Router, error) {
	channels := make(map[string]payment.Channel, len(list))
	rc := cfg.Router
	rc.Channels, rc.Clock = nil, cfg.Clock
	for _, c := range list {
		channels[c.Name] = channel.New(c.Name, base, c.Secret, cfg.ChannelTimeout)
		rc.Channels = append(rc.Channels, c.Name)
	}
	router, err := payment.NewRouter(rc)
	return channels, router, err
}
