// Package app wires the inventory service: Redis, the domain, the gRPC
// server and the admin endpoints. main, the demo launcher and tests all
// start the service through Run.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/serve"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/inventory"
	invgrpc "github.com/flashsale/flashsale/services/inventory/grpc"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// Config is the inventory service's configuration.
type Config struct {
	// GRPCAddr and AdminAddr are where to listen when no listener is
	// handed in.
	GRPCAddr, AdminAddr string
	// GRPCListener and AdminListener, when set, are served instead
	// (tests and the demo listen on free ports themselves).
	GRPCListener, AdminListener net.Listener
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// RedisAddr is host:port of the Redis that holds the stock or, with
	// RedisCluster, a comma-separated list of Redis Cluster nodes
	// (redisclient.Config).
	RedisAddr    string
	RedisCluster bool
	// RedisPoolSize is the number of Redis connections (0: go-redis's
	// default of ten per CPU).
	RedisPoolSize int
	// Discovery says where Consul is (FLASHSALE_CONSUL_ADDR); empty
	// means static addresses and no registration.
	Discovery discovery.Config
	// Clock says which expiry entries are due when /metrics reports the
	// backlog (nil: the real clock). The queue's own scripts take their
	// time from the callers.
	Clock clock.Clock
}

// ConfigFromEnv reads the FLASHSALE_* variables, with defaults, and
// records invalid values in env (check env.Err()).
func ConfigFromEnv(env *config.Env) Config {
	redisCfg := redisclient.ConfigFromEnv(env)
	cfg := Config{
		GRPCAddr:      env.String("FLASHSALE_GRPC_ADDR", ":9102"),
		AdminAddr:     env.String("FLASHSALE_ADMIN_ADDR", ":9202"),
		RedisAddr:     redisCfg.Addr,
		RedisCluster:  redisCfg.Cluster,
		RedisPoolSize: int(env.Int("FLASHSALE_REDIS_POOL_SIZE", 0)),
		Discovery:     discovery.ConfigFromEnv(env),
	}
	env.Check(cfg.RedisPoolSize >= 0, "FLASHSALE_REDIS_POOL_SIZE=%d: must not be negative", cfg.RedisPoolSize)
	return cfg
}

// Run serves the inventory service until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	p, err := serve.New(serve.Spec{
		Name: "inventory", GRPCAddr: cfg.GRPCAddr, GRPCListener: cfg.GRPCListener, Errors: invgrpc.Errors,
		HTTPAddr: cfg.AdminAddr, HTTPListener: cfg.AdminListener, Discovery: cfg.Discovery, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: cfg.RedisAddr, Cluster: cfg.RedisCluster}, cfg.RedisPoolSize)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	defer rdb.Close()

	store := invredis.NewStore(redisclient.Coalesced(rdb))
	inventoryv1.RegisterInventoryServiceServer(p.GRPC, invgrpc.NewServer(newRepairing(inventory.NewService(store), p.Registry, p.Log)))
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	p.Registry.MustRegister(newStockCollector(rdb, store, clk))
	p.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	return p.Run(ctx, "redis", cfg.RedisAddr)
}
