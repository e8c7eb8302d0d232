// Package app wires the marketing service: Postgres, the domain service,
// its gRPC server and its admin HTTP server. main, the local platform and
// tests all start the service through Run.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/ids"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/serve"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	"github.com/flashsale/flashsale/services/marketing"
	marketinggrpc "github.com/flashsale/flashsale/services/marketing/grpc"
	"github.com/flashsale/flashsale/services/marketing/postgres"
)

// Config is the marketing service's configuration. Zero values take the
// defaults below (a nil Logger discards, a nil Clock is the wall clock).
type Config struct {
	// GRPCAddr and AdminAddr are where to listen unless GRPCListener and
	// AdminListener are given (tests and the local platform hand in
	// listeners).
	GRPCAddr, AdminAddr         string
	GRPCListener, AdminListener net.Listener
	Logger                      *slog.Logger
	// Clock decides promotion and coupon windows.
	Clock clock.Clock

	// PostgresURL is the marketing database; PostgresMaxConns bounds its
	// pool.
	PostgresURL      string
	PostgresMaxConns int32
	// NodeID is this replica's replica number for ids (0..127), distinct per
	// replica so that ids never collide.
	NodeID int64
	// Discovery says where Consul is (FLASHSALE_CONSUL_ADDR): with it the
	// service registers as "marketing" so that order and the gateway find
	// it as "consul://marketing"; empty means no registration.
	Discovery discovery.Config
}

// Defaults of the settings.
const (
	DefaultGRPCAddr         = ":9105"
	DefaultAdminAddr        = ":9205"
	DefaultPostgresURL      = "postgres://flashsale@127.0.0.1:5432/marketing?sslmode=disable"
	DefaultPostgresMaxConns = 20
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
		NodeID:           env.IntIn("FLASHSALE_NODE_ID", 0, 0, ids.MaxReplica),
		Discovery:        discovery.ConfigFromEnv(env),
	}
	return cfg
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
	return c
}

// Run applies the schema and serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	p, err := serve.New(serve.Spec{
		Name: "marketing", GRPCAddr: cfg.GRPCAddr, GRPCListener: cfg.GRPCListener, Errors: marketinggrpc.Errors,
		HTTPAddr: cfg.AdminAddr, HTTPListener: cfg.AdminListener, Discovery: cfg.Discovery, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	gen, err := ids.NewGenerator(ids.SpaceMarketing, cfg.NodeID, cfg.Clock)
	if err != nil {
		return fmt.Errorf("marketing: %w", err)
	}
	pool, err := pgplatform.DialRouted(ctx, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return fmt.Errorf("marketing: %w", err)
	}
	defer pool.Close()
	if err := pgplatform.MigrateRouted(ctx, pool, postgres.Migrations); err != nil {
		return fmt.Errorf("marketing: %w", err)
	}
	svc := marketing.NewService(marketing.Config{
		Store: postgres.New(pool),
		IDs:   gen,
		Clock: cfg.Clock,
	})
	marketingv1.RegisterMarketingServiceServer(p.GRPC, marketinggrpc.NewServer(svc))
	p.AddCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	return p.Run(ctx)
}
