package redisclient_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/shadow"
)

// incrBoth is a script in the platform's style: every key through KEYS.
var incrBoth = redis.NewScript(`
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('INCRBY', KEYS[2], ARGV[1])`)

// Marked commands (plain, multi-key, pipelined, transactions and scripts
// by EVALSHA and EVAL) read and write the shadow keys, in the slot of the
// real ones, and leave the real keys alone; unmarked commands never see
// a shadow key. On one server and on the cluster, where a script's keys
// must stay in one slot for the script to run at all.
func TestMarkedCommandsUseShadowKeys(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  redisclient.Config
	}{
		{"one server", redisclient.Config{Addr: stack.RedisAddr}},
		{"cluster", redisclient.Config{Addr: strings.Join(stack.RedisClusterAddrs, ","), Cluster: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rdb, err := redisclient.Dial(ctx, tt.cfg, 8)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			marked := shadow.With(ctx)
			tag := fmt.Sprintf("{shadowtest:%d}", time.Now().UnixNano())
			a, b := tag+":a", tag+":b"

			// Real values first; marked work must not see or change them.
			if err := rdb.MSet(ctx, a, 100, b, 200).Err(); err != nil {
				t.Fatal(err)
			}
			if n := rdb.Exists(marked, a, b).Val(); n != 0 {
				t.Fatalf("marked EXISTS sees %d real keys", n)
			}
			if err := rdb.Set(marked, a, 1, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.HSet(marked, tag+":h", "f", "v").Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := rdb.Pipelined(marked, func(p redis.Pipeliner) error {
				p.IncrBy(marked, a, 1)
				p.Set(marked, b, 5, time.Minute)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := rdb.TxPipelined(marked, func(p redis.Pipeliner) error {
				p.IncrBy(marked, b, 1)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// EVALSHA first fails with NOSCRIPT on a fresh node, then EVAL:
			// both carry the shadow keys.
			if err := rdb.ScriptFlush(ctx).Err(); err != nil && !tt.cfg.Cluster {
				t.Fatal(err)
			}
			got, err := incrBoth.Run(marked, rdb, []string{a, b}, 10).Int64()
			if err != nil {
				t.Fatalf("marked script: %v", err)
			}
			if got != 16 { // b: 5, +1 in the transaction, +10
				t.Fatalf("marked script returned %d, want 16", got)
			}
			vals, err := rdb.MGet(marked, a, b).Result()
			if err != nil || fmt.Sprint(vals) != "[12 16]" {
				t.Fatalf("marked MGET: %v %v, want [12 16]", vals, err)
			}
			// The real keys are as they were, and the shadow keys are where
			// the prefix says, in the real keys' slot.
			vals, err = rdb.MGet(ctx, a, b).Result()
			if err != nil || fmt.Sprint(vals) != "[100 200]" {
				t.Fatalf("real MGET after marked work: %v %v, want [100 200]", vals, err)
			}
			vals, err = rdb.MGet(ctx, "shadow:"+a, "shadow:"+b).Result()
			if err != nil || fmt.Sprint(vals) != "[12 16]" {
				t.Fatalf("shadow keys read unmarked: %v %v, want [12 16]", vals, err)
			}
			if cc, ok := rdb.(*redis.ClusterClient); ok {
				slot := func(k string) int64 { return cc.ClusterKeySlot(ctx, k).Val() }
				if slot(a) != slot("shadow:"+a) {
					t.Fatalf("the shadow key is in slot %d, the real one in %d", slot("shadow:"+a), slot(a))
				}
			}
			// A marked command without a key rule is refused, never run on
			// the real keyspace.
			if err := rdb.Do(marked, "rename", a, b).Err(); err == nil || !strings.Contains(err.Error(), "no shadow key rule") {
				t.Fatalf("marked RENAME: %v, want a refusal", err)
			}
			if vals := rdb.MGet(ctx, a, b).Val(); fmt.Sprint(vals) != "[100 200]" {
				t.Fatalf("a refused command changed the real keys: %v", vals)
			}
			if err := rdb.Del(marked, a, b, tag+":h").Err(); err != nil {
				t.Fatal(err)
			}
			if n := rdb.Exists(ctx, a, b).Val(); n != 2 {
				t.Fatalf("marked DEL removed real keys: %d left", n)
			}
			rdb.Del(ctx, a, b)
		})
	}
}

// The auto-pipeliner batches many callers' commands under one context,
// which the hook cannot read the mark from: Coalesced (and
// CoalescedBounded) sends marked commands (its own methods and every
// other) to the plain client, so they are prefixed too, while real ones
// stay real.
func TestCoalescedMarkedCommandsUseShadowKeys(t *testing.T) {
	for _, face := range []struct {
		name string
		of   func(redis.UniversalClient) redis.Cmdable
	}{{"deferred", redisclient.Coalesced}, {"bounded", redisclient.CoalescedBounded}} {
		t.Run(face.name, func(t *testing.T) { testCoalescedMarked(t, face.of) })
	}
}

func testCoalescedMarked(t *testing.T, of func(redis.UniversalClient) redis.Cmdable) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: strings.Join(stack.RedisClusterAddrs, ","), Cluster: true}, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c := of(rdb)
	marked := shadow.With(ctx)
	k := fmt.Sprintf("{coalesced:%d}:k", time.Now().UnixNano())
	for _, set := range []func(context.Context) error{
		func(ctx context.Context) error { return c.Set(ctx, k, shadow.Label(ctx), time.Minute).Err() },
		func(ctx context.Context) error { return c.SAdd(ctx, k+":set", shadow.Label(ctx)).Err() },   // a method of its own
		func(ctx context.Context) error { return c.LPush(ctx, k+":list", shadow.Label(ctx)).Err() }, // one it has not
		func(ctx context.Context) error {
			return incrBoth.Run(ctx, c, []string{k + ":a", k + ":b"}, 1).Err()
		},
	} {
		if err := set(ctx); err != nil {
			t.Fatal(err)
		}
		if err := set(marked); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{k, k + ":set", k + ":list", k + ":a"} {
		if n := rdb.Exists(ctx, key, shadow.KeyPrefix+key).Val(); n != 2 {
			t.Fatalf("%s: %d of the real and the shadow key exist, want both", key, n)
		}
	}
	if got := rdb.Get(ctx, shadow.KeyPrefix+k).Val(); got != "shadow" {
		t.Fatalf("the shadow key holds %q", got)
	}
	if got := rdb.Get(ctx, k).Val(); got != "real" {
		t.Fatalf("the real key holds %q", got)
	}
}
