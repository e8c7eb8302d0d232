package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const installHint = "install it with `make deps` or `apt-get install redis-server postgresql`"

// redisDirs are searched after PATH.
var redisDirs = []string{"/usr/bin", "/usr/local/bin"}

func findRedis(dirs []string) (string, error) {
	p, err := lookBin("redis-server", dirs...)
	if err != nil {
		return "", fmt.Errorf("localstack: redis-server not found: %s", installHint)
	}
	return p, nil
}

// redisAOF is the main redis-server's persistence, as production runs
// it: an append-only file fsynced once a second, so a crash (kill -9)
// loses at most the last second of acknowledged writes, and no RDB
// snapshots. The AOF lives in its own directory of the stack's.
var redisAOF = []string{"--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", "redis-aof"}

func (s *Stack) startRedis(ctx context.Context, bin string) error {
	c, addr, err := s.spawnRedis(ctx, bin, "redis", redisAOF...)
	if err != nil {
		return err
	}
	s.redisBin, s.redis, s.RedisAddr, s.redisDirect = bin, c, addr, addr
	return nil
}

// spawnRedis starts a redis-server on a free port, retrying when another
// process took the port first, and waits until it answers. name names its
// log file and, with extra arguments, any file the server writes into the
// stack directory. Without persistence arguments in extra the server
// keeps nothing on disk.
func (s *Stack) spawnRedis(ctx context.Context, bin, name string, extra ...string) (*child, string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, "", fmt.Errorf("localstack: free port: %w", err)
		}
		c, addr, err := s.spawnRedisOn(ctx, bin, name, port, extra...)
		if err == nil {
			return c, addr, nil
		}
		lastErr = err
	}
	return nil, "", lastErr
}

// spawnRedisOn starts a redis-server on port and waits until it answers
// (after loading its AOF, if it has one).
func (s *Stack) spawnRedisOn(ctx context.Context, bin, name string, port int, extra ...string) (*child, string, error) {
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no",
		"--maxclients", "10000", "--loglevel", "warning",
	}, extra...)
	c, err := s.procs.spawn(name, filepath.Join(s.dir, name+".log"), exec.Command(bin, args...))
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitRedis(ctx, c, addr); err != nil {
		_ = c.stop(syscall.SIGKILL)
		return nil, "", err
	}
	return c, addr, nil
}

func waitRedis(ctx context.Context, c *child, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	return poll(ctx, c, func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		func(err error) error { return fmt.Errorf("localstack: redis-server on %s not ready: %w", addr, err) })
}

// poll calls ready until it succeeds, the child exits, ctx ends or 15s
// pass; notReady words the last error of ready.
func poll(ctx context.Context, c *child, ready func(context.Context) error, notReady func(error) error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := c.failed(); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ready(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return notReady(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterNodes is the size of the test cluster: three primaries is the
// smallest Redis Cluster redis-cli agrees to create, and enough for
// activities to land on different nodes.
const clusterNodes = 3

// startRedisCluster starts clusterNodes cluster-enabled redis-servers,
// gives each an equal range of the 16384 slots, joins them and waits
// until every node reports cluster_state:ok. No replicas: tests need the
// slot routing of a cluster, not its failover.
func (s *Stack) startRedisCluster(ctx context.Context, bin string) error {
	for i := range clusterNodes {
		name := "redis-cluster-" + strconv.Itoa(i)
		c, addr, err := s.spawnRedis(ctx, bin, name,
			"--cluster-enabled", "yes", "--cluster-config-file", name+".nodes.conf",
			"--cluster-node-timeout", "5000")
		if err != nil {
			return err
		}
		s.clusterNodes = append(s.clusterNodes, c)
		s.RedisClusterAddrs = append(s.RedisClusterAddrs, addr)
	}
	nodes := make([]*redis.Client, clusterNodes)
	for i, addr := range s.RedisClusterAddrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: addr})
		defer nodes[i].Close()
	}
	const slots = 16384
	for i, n := range nodes {
		first, last := i*slots/clusterNodes, (i+1)*slots/clusterNodes-1
		// Distinct config epochs, as redis-cli --cluster create sets them,
		// spare the nodes resolving an epoch collision before they agree.
		if err := n.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("localstack: redis cluster node %s: set config epoch: %w", s.RedisClusterAddrs[i], err)
		}
		if err := n.ClusterAddSlotsRange(ctx, first, last).Err(); err != nil {
			return fmt.Errorf("localstack: redis cluster node %s: add slots %d-%d: %w", s.RedisClusterAddrs[i], first, last, err)
		}
	}
	for _, addr := range s.RedisClusterAddrs[1:] {
		host, port, _ := net.SplitHostPort(addr)
		if err := nodes[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			return fmt.Errorf("localstack: redis cluster: meet %s: %w", addr, err)
		}
	}
	for i, n := range nodes {
		err := poll(ctx, s.clusterNodes[i], func(ctx context.Context) error { return clusterReady(ctx, n) },
			func(err error) error {
				return fmt.Errorf("localstack: redis cluster node %s not ready: %w", s.RedisClusterAddrs[i], err)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// clusterReady succeeds once n reports the cluster state ok and knows
// every node, so a client seeded with any node gets the full slot map.
func clusterReady(ctx context.Context, n *redis.Client) error {
	info, err := n.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(clusterNodes)) {
		return errors.New("cluster not formed yet:\n" + info)
	}
	return nil
}

// RedisClusterClient returns a client of the stack's Redis Cluster, seeded
// with every node and closed when tb ends. The stack must have been
// started with Config.RedisCluster.
func (s *Stack) RedisClusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	if len(s.RedisClusterAddrs) == 0 {
		tb.Fatal("localstack: no Redis Cluster: start the stack with Config{RedisCluster: true}")
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.RedisClusterAddrs})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}
