package localstack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// runID is the server's run_id (INFO server), new at every start.
func runID(ctx context.Context, t *testing.T, rdb *redis.Client) string {
	t.Helper()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		t.Fatalf("info server: %v", err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return v
		}
	}
	t.Fatalf("no run_id in INFO server:\n%s", info)
	return ""
}

// A killed redis-server comes back on the same address as a new server
// (a new run_id) with what its AOF had fsynced: a write acknowledged
// and made durable (an AOF rewrite) before the kill survives it.
func TestRedisKilledRestartsFromItsAOF(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr})
	defer rdb.Close()
	if got := rdb.ConfigGet(ctx, "appendfsync").Val()["appendfsync"]; got != "everysec" {
		t.Fatalf("appendfsync %q, want everysec", got)
	}
	if err := rdb.Set(ctx, "durable", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// An AOF rewrite writes and fsyncs a base file holding the key: a
	// condition to wait for instead of everysec's second.
	if err := rdb.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info := rdb.Info(ctx, "persistence").Val()
		if !strings.Contains(info, "aof_rewrite_in_progress:0") || !strings.Contains(info, "aof_rewrite_scheduled:0") {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if !strings.Contains(info, "aof_last_bgrewrite_status:ok") {
			t.Fatalf("AOF rewrite failed:\n%s", info)
		}
		break
	}
	before := runID(ctx, t, rdb)

	if err := s.KillRedis(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("redis answers after KillRedis")
	}
	if err := s.RestartRedis(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "durable").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: durable = %q, %v; want v", got, err)
	}
	if after := runID(ctx, t, rdb); after == before {
		t.Fatalf("run_id %s unchanged by a restart", after)
	}
}
