// Package app wires the product service: Postgres, the inventory client,
// the catalog service, its gRPC server and its admin HTTP server.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/ids"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/sweep"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/product"
	productgrpc "github.com/flashsale/flashsale/services/product/grpc"
	"github.com/flashsale/flashsale/services/product/postgres"
)

// Config is the product service's configuration. Zero durations, a nil
// Clock and a nil Logger take the defaults of ConfigFromEnv.
type Config struct {
	// GRPCAddr and AdminAddr are where to listen unless GRPCListener and
	// AdminListener are given (tests and the demo hand in listeners).
	GRPCAddr, AdminAddr         string
	GRPCListener, AdminListener net.Listener
	Logger                      *slog.Logger
	Clock                       clock.Clock

	// PostgresURL is the catalog database; PostgresMaxConns bounds its
	// pool.
	PostgresURL      string
	PostgresMaxConns int32
	// InventoryAddr is the inventory service's gRPC target;
	// InventoryTimeout bounds each call to it.
	InventoryAddr    string
	InventoryTimeout time.Duration
	// NodeID is this replica's replica number for ids (0..127), distinct per
	// replica so that ids never collide.
	NodeID int64
	// ActivityTTL, StockTTL and CatalogTTL are the in-process cache
	// lifetimes (see product.Config).
	ActivityTTL, StockTTL, CatalogTTL time.Duration
	// RedisAddr (with RedisCluster, a list of Redis Cluster nodes) is
	// the catalogue's second cache level and the channel of its
	// invalidations (docs/caching.md); empty keeps each replica to its
	// in-process caches. SharedTTL is how long a value stays in Redis
	// (writes delete it before then).
	RedisAddr    string
	RedisCluster bool
	SharedTTL    time.Duration
	// FilterRebuild is how often the Bloom filters of the ids that exist
	// are loaded again from Postgres.
	FilterRebuild time.Duration
	// Discovery says where Consul is (FLASHSALE_CONSUL_ADDR); empty
	// means static addresses and no registration.
	Discovery discovery.Config
}

// Defaults of the settings.
const (
	DefaultGRPCAddr         = ":9101"
	DefaultAdminAddr        = ":9201"
	DefaultInventoryAddr    = "127.0.0.1:9102"
	DefaultPostgresURL      = "postgres://flashsale@127.0.0.1:5432/products?sslmode=disable"
	DefaultPostgresMaxConns = 20
	DefaultInventoryTimeout = 2 * time.Second
	DefaultActivityTTL      = 30 * time.Second
	DefaultStockTTL         = 200 * time.Millisecond
	DefaultCatalogTTL       = time.Second
	DefaultSharedTTL        = time.Minute
	DefaultFilterRebuild    = 10 * time.Minute
)

// ConfigFromEnv reads the FLASHSALE_* variables; problems are collected in
// env (check env.Err()).
func ConfigFromEnv(env *config.Env) Config {
	redisCfg := redisclient.ConfigFromEnv(env)
	cfg := Config{
		RedisAddr:        redisCfg.Addr,
		RedisCluster:     redisCfg.Cluster,
		SharedTTL:        env.Positive("FLASHSALE_CATALOG_SHARED_TTL", DefaultSharedTTL),
		FilterRebuild:    env.Positive("FLASHSALE_CATALOG_FILTER_REBUILD", DefaultFilterRebuild),
		GRPCAddr:         env.String("FLASHSALE_GRPC_ADDR", DefaultGRPCAddr),
		AdminAddr:        env.String("FLASHSALE_ADMIN_ADDR", DefaultAdminAddr),
		Clock:            clock.Real{},
		PostgresURL:      env.DatabaseURL("FLASHSALE_POSTGRES_URL", DefaultPostgresURL),
		PostgresMaxConns: pgplatform.PoolSize(env, DefaultPostgresMaxConns),
		InventoryAddr:    env.String("FLASHSALE_INVENTORY_ADDR", DefaultInventoryAddr),
		InventoryTimeout: env.Positive("FLASHSALE_INVENTORY_TIMEOUT", DefaultInventoryTimeout),
		NodeID:           env.IntIn("FLASHSALE_NODE_ID", 0, 0, ids.MaxReplica),
		ActivityTTL:      env.Positive("FLASHSALE_ACTIVITY_CACHE_TTL", DefaultActivityTTL),
		StockTTL:         env.Positive("FLASHSALE_STOCK_CACHE_TTL", DefaultStockTTL),
		CatalogTTL:       env.Positive("FLASHSALE_CATALOG_CACHE_TTL", DefaultCatalogTTL),
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
	c.InventoryTimeout = cmp.Or(c.InventoryTimeout, DefaultInventoryTimeout)
	c.ActivityTTL = cmp.Or(c.ActivityTTL, DefaultActivityTTL)
	c.StockTTL = cmp.Or(c.StockTTL, DefaultStockTTL)
	c.CatalogTTL = cmp.Or(c.CatalogTTL, DefaultCatalogTTL)
	c.SharedTTL = cmp.Or(c.SharedTTL, DefaultSharedTTL)
	c.FilterRebuild = cmp.Or(c.FilterRebuild, DefaultFilterRebuild)
	return c
}

// Run applies the schema and serves until ctx ends. The inventory service
// need not be up yet: telemetry.DependenciesPath reports it until it is.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	p, err := serve.New(serve.Spec{
		Name: "product", GRPCAddr: cfg.GRPCAddr, GRPCListener: cfg.GRPCListener, Errors: productgrpc.Errors,
		HTTPAddr: cfg.AdminAddr, HTTPListener: cfg.AdminListener, Discovery: cfg.Discovery, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	log := p.Log

	gen, err := ids.NewGenerator(ids.SpaceProduct, cfg.NodeID, cfg.Clock)
	if err != nil {
		return fmt.Errorf("product: %w", err)
	}
	pool, err := pgplatform.DialRouted(ctx, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return fmt.Errorf("product: %w", err)
	}
	defer pool.Close()
	if err := pgplatform.MigrateRouted(ctx, pool, postgres.Migrations); err != nil {
		return fmt.Errorf("product: %w", err)
	}
	invConn, err := p.Consul.Dial(cfg.InventoryAddr, rpc.CallTimeout(cfg.InventoryTimeout))
	if err != nil {
		return fmt.Errorf("product: inventory: %w", err)
	}
	defer invConn.Close()
	p.AddCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	p.AddCheck("inventory", rpc.HealthCheck(invConn))

	var shared *product.Shared
	var sub *cache.Subscriber
	if cfg.RedisAddr != "" {
		rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: cfg.RedisAddr, Cluster: cfg.RedisCluster}, 0)
		if err != nil {
			return fmt.Errorf("product: %w", err)
		}
		defer rdb.Close()
		p.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
		shared = &product.Shared{
			Products:   cache.NewShared[int64, product.Product](rdb, "catalog:product:", cfg.SharedTTL),
			Activities: cache.NewShared[int64, product.Activity](rdb, "catalog:activity:", cfg.SharedTTL),
			Publish:    func(ctx context.Context, inv cache.Invalidation) error { return cache.Publish(ctx, rdb, inv) },
			Failed: func(err error) {
				log.Warn("catalogue cache: a write's invalidation, warm-up or announcement failed; the TTLs bound the staleness, an announcement is sent again", "err", err)
			},
		}
		// Subscribed before serving: every write after this replica is
		// ready reaches its caches.
		if sub, err = cache.Subscribe(ctx, rdb); err != nil {
			return fmt.Errorf("product: %w", err)
		}
		defer sub.Close()
	}
	svc := product.NewService(product.Config{
		Store:       postgres.New(pool),
		Inventory:   productgrpc.NewInventory(invConn),
		IDs:         gen,
		Clock:       cfg.Clock,
		ActivityTTL: cfg.ActivityTTL,
		StockTTL:    cfg.StockTTL,
		CatalogTTL:  cfg.CatalogTTL,
		Shared:      shared,
	})
	if err := svc.RebuildFilters(ctx); err != nil {
		return fmt.Errorf("product: %w", err)
	}
	rebuild := func(ctx context.Context) {
		if err := svc.RebuildFilters(ctx); err != nil {
			log.Warn("catalogue Bloom filters not rebuilt; the last ones stay", "err", err)
		}
	}
	p.AddWorker(func(ctx context.Context) error { return sweep.Every(ctx, cfg.FilterRebuild, rebuild) })
	p.AddWorker(func(ctx context.Context) error { return svc.RunAnnouncements(ctx, time.Second) })
	if sub != nil {
		p.AddWorker(func(ctx context.Context) error {
			return sub.Run(ctx, func(inv cache.Invalidation) { svc.Invalidated(ctx, inv) },
				func() {
					log.Warn("catalogue invalidations resubscribed: caches expired, filters rebuilt")
					svc.InvalidationsLost()
					go rebuild(ctx)
				},
				func(err error) { log.Warn("catalogue invalidation skipped", "err", err) })
		})
	}
	p.Registry.MustRegister(cache.Collector(svc.Caches()))
	productv1.RegisterProductServiceServer(p.GRPC, productgrpc.NewServer(svc))
	return p.Run(ctx, "inventory", cfg.InventoryAddr)
}
