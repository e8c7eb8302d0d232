package localstack

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
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

func (s *Stack) startRedis(ctx context.Context, bin string) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("localstack: free port: %w", err)
		}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--daemonize", "no",
			"--maxclients", "10000", "--loglevel", "warning",
		)
		c, err := s.procs.spawn("redis-server", filepath.Join(s.dir, "redis.log"), cmd)
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitRedis(ctx, c, addr); lastErr == nil {
			s.redis, s.RedisAddr = c, addr
			return nil
		}
		_ = c.stop(syscall.SIGKILL)
	}
	return lastErr
}

func waitRedis(ctx context.Context, c *child, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := c.failed(); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("localstack: redis-server on %s not ready: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
