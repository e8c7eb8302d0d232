// Package redisclient dials go-redis with pool settings sized for the hot
// path and checks the server answers. It dials either one Redis server or
// a Redis Cluster; callers get a redis.UniversalClient either way, since
// every script of the platform keeps its keys in one hash slot and so
// runs unchanged on both.
package redisclient

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/config"
)

// Config says which Redis to dial.
type Config struct {
	// Addr is host:port of one server or, with Cluster, a comma-separated
	// list of host:port of cluster nodes. The list only seeds the client,
	// which learns every node and slot from CLUSTER SLOTS, so a managed
	// cluster's single configuration endpoint is enough.
	Addr string
	// Cluster dials Redis Cluster (a *redis.ClusterClient) instead of one
	// server. It is a setting of its own rather than guessed from the
	// number of addresses: a cluster is often reached through one
	// endpoint, and a list without it is refused as a likely mistake.
	Cluster bool
}

// DefaultAddr is the Redis of a development machine.
const DefaultAddr = "127.0.0.1:6379"

// ConfigFromEnv reads FLASHSALE_REDIS_ADDR and FLASHSALE_REDIS_CLUSTER,
// with defaults, and records an invalid combination in env.
func ConfigFromEnv(env *config.Env) Config {
	cfg := Config{
		Addr:    env.String("FLASHSALE_REDIS_ADDR", DefaultAddr),
		Cluster: env.Bool("FLASHSALE_REDIS_CLUSTER", false),
	}
	_, err := cfg.Addrs()
	env.Check(err == nil, "%v", err)
	return cfg
}

// Addrs returns the addresses of Addr, or an error naming the setting and
// what is wrong with it.
func (c Config) Addrs() ([]string, error) {
	parts := strings.Split(c.Addr, ",")
	if len(parts) > 1 && !c.Cluster {
		return nil, fmt.Errorf("FLASHSALE_REDIS_ADDR=%q lists %d addresses: set FLASHSALE_REDIS_CLUSTER=true for a Redis Cluster, or name one server", c.Addr, len(parts))
	}
	addrs := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		host, port, err := net.SplitHostPort(p)
		if err == nil && host == "" {
			err = fmt.Errorf("no host")
		}
		if n, perr := strconv.Atoi(port); err == nil && (perr != nil || n < 1 || n > 65535) {
			err = fmt.Errorf("port %q is not 1..65535", port)
		}
		if err != nil {
			return nil, fmt.Errorf("FLASHSALE_REDIS_ADDR=%q: %q is not host:port (%v)", c.Addr, p, err)
		}
		addrs = append(addrs, p)
	}
	return addrs, nil
}

// Dial connects to the Redis cfg names with a pool of poolSize connections
// (0: go-redis's default of ten per CPU); a cluster client keeps such a
// pool per node. It fails unless the server or every cluster primary
// answers, and refuses a mismatch between cfg.Cluster and the server
// found, which would otherwise show up later as MOVED errors or
// "cluster support disabled" on the first request.
func Dial(ctx context.Context, cfg Config, poolSize int) (redis.UniversalClient, error) {
	addrs, err := cfg.Addrs()
	if err != nil {
		return nil, err
	}
	if cfg.Cluster {
		return dialCluster(ctx, addrs, poolSize)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:         addrs[0],
		PoolSize:     poolSize,
		MinIdleConns: poolSize / 4,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addrs[0], err)
	}
	// A proxy in front of a cluster may not serve INFO; only a server
	// that says it is a cluster node is refused.
	if info, err := rdb.Info(ctx, "cluster").Result(); err == nil && strings.Contains(info, "cluster_enabled:1") {
		rdb.Close()
		return nil, fmt.Errorf("redis %s is a Redis Cluster node: set FLASHSALE_REDIS_CLUSTER=true", addrs[0])
	}
	return Shadowed(rdb), nil
}

func dialCluster(ctx context.Context, addrs []string, poolSize int) (*redis.ClusterClient, error) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        addrs,
		PoolSize:     poolSize,
		MinIdleConns: poolSize / 4,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	// ForEachMaster loads the slot map first, so a server without cluster
	// support fails here, and then every primary must answer.
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		return node.Ping(ctx).Err()
	})
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis cluster %s: %w", strings.Join(addrs, ","), err)
	}
	rdb.AddHook(shadowHook{})
	return rdb, nil
}
