package redisclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// CoalescedBounded answers as the plain client does, on one server and
// on the cluster: plain commands, a multi-key read, a conditional write,
// and a script by EVALSHA and, the first time, EVAL.
func TestCoalescedBoundedAnswersAsThePlainClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, cfg := range []redisclient.Config{{Addr: stack.RedisAddr}, {Addr: strings.Join(stack.RedisClusterAddrs, ","), Cluster: true}} {
		rdb, err := redisclient.Dial(ctx, cfg, 8)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		c := redisclient.CoalescedBounded(rdb)
		k := fmt.Sprintf("{bounded:%d}", time.Now().UnixNano())
		if err := c.Set(ctx, k+":a", "1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.MGet(ctx, k+":a", k+":none").Result(); err != nil || len(got) != 2 || got[0] != "1" || got[1] != nil {
			t.Errorf("cluster %v: MGet = %v, %v; want [1 <nil>]", cfg.Cluster, got, err)
		}
		if prev, err := c.SetArgs(ctx, k+":a", "2", redis.SetArgs{Mode: "NX", Get: true}).Result(); err != nil || prev != "1" {
			t.Errorf("cluster %v: SET NX GET = %q, %v; want 1 (and no write)", cfg.Cluster, prev, err)
		}
		if err := c.Get(ctx, k+":none").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("cluster %v: GET of a missing key: %v, want redis.Nil", cfg.Cluster, err)
		}
		// A script this run's server has not seen: EVALSHA says NOSCRIPT,
		// and Run falls back to EVAL.
		script := redis.NewScript(fmt.Sprintf("-- %s\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])", k))
		for want := int64(4); want <= 8; want += 4 {
			if got, err := script.Run(ctx, c, []string{k + ":n"}, 4).Int64(); err != nil || got != want {
				t.Fatalf("cluster %v: script = %d, %v; want %d", cfg.Cluster, got, err, want)
			}
		}
		if n, err := rdb.Get(ctx, k+":n").Int64(); err != nil || n != 8 {
			t.Errorf("cluster %v: the script's key holds %d, %v; want 8 (two runs, by EVAL then EVALSHA)", cfg.Cluster, n, err)
		}
	}
}

// On a Redis that went silent (its host takes connections and answers
// nothing), a bounded call gives up when its context ends: the error is
// the context's. (With Coalesced, the deferred face, the same calls
// wait for the batch's own timeouts: an i/o timeout after 16 s, tried.)
func TestCoalescedBoundedGivesUpAtTheDeadline(t *testing.T) {
	hole := localstack.MustSilentListener(t)
	rdb := redis.NewClient(&redis.Options{Addr: hole.Addr().String(), ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	defer rdb.Close()
	c := redisclient.CoalescedBounded(rdb)
	for _, call := range []func(context.Context) error{
		func(ctx context.Context) error { return c.MGet(ctx, "a", "b").Err() },
		func(ctx context.Context) error { return c.Set(ctx, "a", 1, time.Minute).Err() },
		func(ctx context.Context) error { return c.EvalSha(ctx, "0123", []string{"a"}).Err() },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a call on a silent Redis: %v, want the context's deadline", err)
		}
	}
}

// BenchmarkCoalescedFaces: one MGET a call from parallel callers, on the
// deferred face and on the bounded one (which builds each command by a
// pipeline never run and waits with the caller's context).
func BenchmarkCoalescedFaces(b *testing.B) {
	for _, face := range []struct {
		name string
		of   func(redis.UniversalClient) redis.Cmdable
	}{{"deferred", redisclient.Coalesced}, {"bounded", redisclient.CoalescedBounded}} {
		b.Run(face.name, func(b *testing.B) {
			rdb, err := redisclient.Dial(context.Background(), redisclient.Config{Addr: stack.RedisAddr}, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer rdb.Close()
			c := face.of(rdb)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for pb.Next() {
					if err := c.MGet(ctx, "{bench}:a", "{bench}:b").Err(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
