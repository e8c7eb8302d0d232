package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// KillRedis kills the stack's redis-server with SIGKILL, as a crashed
// node or an OOM kill would: it gets no chance to fsync, so with
// `appendfsync everysec` the writes of (up to) its last second are lost.
// It returns once the process is gone. RestartRedis brings it back.
// Neither may run concurrently with another Stack method.
func (s *Stack) KillRedis() error {
	if s.redis == nil {
		return errors.New("localstack: no redis-server to kill")
	}
	if err := s.redis.stop(syscall.SIGKILL); err != nil {
		return fmt.Errorf("localstack: kill redis-server: %w", err)
	}
	return nil
}

// RestartRedis starts the stack's redis-server again on the same port and
// directory (after KillRedis, or stopping an already stopped one first),
// so it reloads its data from the AOF, and returns once it answers.
// Clients keep RedisAddr and reconnect by themselves.
func (s *Stack) RestartRedis(ctx context.Context) error {
	if err := s.KillRedis(); err != nil {
		return err
	}
	_, p, err := net.SplitHostPort(s.redisDirect)
	if err != nil {
		return fmt.Errorf("localstack: redis address %q: %w", s.redisDirect, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("localstack: redis address %q: %w", s.redisDirect, err)
	}
	c, _, err := s.spawnRedisOn(ctx, s.redisBin, "redis", port, redisAOF...)
	if err != nil {
		return fmt.Errorf("localstack: restart redis-server: %w", err)
	}
	s.redis = c
	return nil
}
