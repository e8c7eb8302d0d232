package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{RedisCluster: true}, func(s *localstack.Stack) { stack = s })
}

func mustRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// backends are the Redis deployments the levels must work on: one
// server, and a Redis Cluster, where a script's keys must share a slot.
func backends(tb testing.TB) map[string]func(testing.TB) redis.UniversalClient {
	tb.Helper()
	return map[string]func(testing.TB) redis.UniversalClient{
		"server": func(tb testing.TB) redis.UniversalClient { return mustRedis(tb) },
		"cluster": func(tb testing.TB) redis.UniversalClient {
			rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: stack.RedisClusterAddrs})
			tb.Cleanup(func() { rdb.Close() })
			return rdb
		},
	}
}

type row struct {
	ID    int64
	Title string
}

// prefix is a key prefix of the test's own.
func prefix(t *testing.T) string { return fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()) }

// TestSharedIsOneLoadForEveryReplica: what one replica loaded, another
// reads from Redis without asking the source.
func TestSharedIsOneLoadForEveryReplica(t *testing.T) {
	p := prefix(t)
	var loads atomic.Int64
	load := func(_ context.Context, id int64) (row, error) {
		loads.Add(1)
		return row{ID: id, Title: "t"}, nil
	}
	a := cache.NewShared[int64, row](mustRedis(t), p, time.Minute)
	b := cache.NewShared[int64, row](mustRedis(t), p, time.Minute)
	ctx := context.Background()
	for _, s := range []*cache.Shared[int64, row]{a, b, a, b} {
		got, err := s.Through(load)(ctx, 5)
		if err != nil || got != (row{ID: 5, Title: "t"}) {
			t.Fatalf("Through = %+v, %v", got, err)
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("loads = %d, want 1", loads.Load())
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Misses != 1 || sa.Hits+sb.Hits != 3 || sa.Level != cache.L2 {
		t.Fatalf("stats %+v and %+v, want one miss and three hits", sa, sb)
	}
}

// TestALoadRacingAWriteDoesNotStoreTheOldValue: a load that read the row
// before a write committed, and returns after the write invalidated the
// key, must not put its old value back in Redis, where every replica
// would read it for a TTL.
func TestALoadRacingAWriteDoesNotStoreTheOldValue(t *testing.T) {
	s := cache.NewShared[int64, row](mustRedis(t), prefix(t), time.Minute)
	ctx := context.Background()
	title := "old"
	racing := func(ctx context.Context, id int64) (row, error) {
		r := row{ID: id, Title: title}
		// The write commits and invalidates while this load is under way.
		title = "new"
		if err := s.Invalidate(ctx, id); err != nil {
			t.Fatal(err)
		}
		return r, nil
	}
	if got, _ := s.Through(racing)(ctx, 1); got.Title != "old" {
		t.Fatalf("racing load = %+v", got)
	}
	var loads int
	got, err := s.Through(func(_ context.Context, id int64) (row, error) {
		loads++
		return row{ID: id, Title: title}, nil
	})(ctx, 1)
	if err != nil || got.Title != "new" || loads != 1 {
		t.Fatalf("read after the write = %+v, %v after %d loads; want the new title from the source", got, err, loads)
	}
	if got, _ := s.Through(func(context.Context, int64) (row, error) { return row{}, errors.New("not asked") })(ctx, 1); got.Title != "new" {
		t.Fatalf("third read = %+v, want the new value stored", got)
	}
}

// TestSharedRidesOutRedisDown: with Redis unreachable, reads go to the
// source and count an error.
func TestSharedRidesOutRedisDown(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer dead.Close()
	s := cache.NewShared[int64, row](dead, prefix(t), time.Minute)
	got, err := s.Through(func(_ context.Context, id int64) (row, error) { return row{ID: id}, nil })(context.Background(), 3)
	if err != nil || got.ID != 3 {
		t.Fatalf("Through = %+v, %v; want the source's row", got, err)
	}
	if st := s.Stats(); st.Errors != 1 || st.Hits+st.Misses != 0 {
		t.Fatalf("stats %+v, want one error", st)
	}
	if _, err := s.Warm(context.Background(), 3, func(context.Context, int64) (row, error) { return row{}, nil }); err == nil {
		t.Fatal("Warm with Redis down: no error")
	}
}

// TestWarmFillsRedisBeforeTheReads: a warmed key is read without a load,
// and a warm-up replaces a value already there.
func TestWarmFillsRedisBeforeTheReads(t *testing.T) {
	s := cache.NewShared[int64, row](mustRedis(t), prefix(t), time.Minute)
	ctx := context.Background()
	for _, title := range []string{"first", "second"} {
		if _, err := s.Warm(ctx, 9, func(_ context.Context, id int64) (row, error) { return row{ID: id, Title: title}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Through(func(context.Context, int64) (row, error) { return row{}, errors.New("not asked") })(ctx, 9)
	if err != nil || got.Title != "second" {
		t.Fatalf("read after warm-up = %+v, %v", got, err)
	}
}

// TestSharedTTLIsJittered: values stored together get TTLs spread over
// the last tenth.
func TestSharedTTLIsJittered(t *testing.T) {
	rdb := mustRedis(t)
	p := prefix(t)
	s := cache.NewShared[int64, row](rdb, p, 100*time.Second)
	ctx := context.Background()
	ttls := map[time.Duration]bool{}
	for id := range int64(50) {
		if _, err := s.Through(func(_ context.Context, id int64) (row, error) { return row{ID: id}, nil })(ctx, id); err != nil {
			t.Fatal(err)
		}
		ttl, err := rdb.PTTL(ctx, fmt.Sprintf("{%s%d}", p, id)).Result()
		if err != nil || ttl <= 89*time.Second || ttl > 100*time.Second {
			t.Fatalf("TTL of %d = %v, %v; want within (89 s, 100 s]", id, ttl, err)
		}
		ttls[ttl.Truncate(time.Second)] = true
	}
	if len(ttls) < 3 {
		t.Fatalf("50 TTLs fall in %d seconds: not spread", len(ttls))
	}
}

// TestSharedAndInvalidationsOnEveryBackend runs a write's round on one
// server and on a Redis Cluster, over 30 ids (whose keys hash to slots
// all over the cluster): a load stored, a warm-up, an invalidation that
// deletes the value and makes a racing load discard its row, and the
// invalidation heard by a subscriber.
func TestSharedAndInvalidationsOnEveryBackend(t *testing.T) {
	for name, dial := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rdb := dial(t)
			s := cache.NewShared[int64, row](rdb, prefix(t), time.Minute)
			sub, err := cache.Subscribe(ctx, dial(t))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			heard := make(chan cache.Invalidation, 100)
			go func() {
				_ = sub.Run(ctx, func(inv cache.Invalidation) { heard <- inv }, func() {}, func(err error) { t.Error(err) })
			}()
			for id := range int64(30) {
				if _, err := s.Through(func(_ context.Context, id int64) (row, error) { return row{ID: id, Title: "a"}, nil })(ctx, id); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Warm(ctx, id, func(_ context.Context, id int64) (row, error) { return row{ID: id, Title: "b"}, nil }); err != nil {
					t.Fatal(err)
				}
				got, _ := s.Through(func(context.Context, int64) (row, error) { return row{}, errors.New("not asked") })(ctx, id)
				if got.Title != "b" {
					t.Fatalf("id %d after the warm-up: %+v", id, got)
				}
				_, _ = s.Through(func(ctx context.Context, id int64) (row, error) {
					if err := s.Invalidate(ctx, id); err != nil {
						t.Fatal(err)
					}
					return row{ID: id, Title: "old"}, nil
				})(ctx, id+1000)
				if got, _ := s.Through(func(_ context.Context, id int64) (row, error) { return row{ID: id, Title: "new"}, nil })(ctx, id+1000); got.Title != "new" {
					t.Fatalf("id %d: the racing load's row was stored: %+v", id+1000, got)
				}
				if err := cache.Publish(ctx, rdb, cache.Invalidation{Kind: cache.KindProduct, ID: id}); err != nil {
					t.Fatal(err)
				}
				if inv := <-heard; inv.ID != id {
					t.Fatalf("heard %+v, want id %d", inv, id)
				}
			}
			if st := s.Stats(); st.Errors != 0 {
				t.Fatalf("stats %+v: Redis errors", st)
			}
			if cluster, ok := rdb.(*redis.ClusterClient); ok {
				primaries := map[string]bool{}
				for id := range int64(30) {
					node, err := cluster.MasterForKey(ctx, s.KeyOf(id))
					if err != nil {
						t.Fatal(err)
					}
					primaries[node.Options().Addr] = true
				}
				if len(primaries) != len(stack.RedisClusterAddrs) {
					t.Fatalf("the ids' keys landed on %d of %d primaries", len(primaries), len(stack.RedisClusterAddrs))
				}
			}
		})
	}
}

// TestAColdKeyLoadsOnceAcrossReplicas (互斥锁 against 缓存击穿): replicas
// that miss the same key at once make one load between them; the others
// read its value from Redis when it lands.
func TestAColdKeyLoadsOnceAcrossReplicas(t *testing.T) {
	for name, client := range backends(t) {
		t.Run(name, func(t *testing.T) {
			p := prefix(t)
			var loads atomic.Int64
			load := func(_ context.Context, id int64) (row, error) {
				loads.Add(1)
				time.Sleep(50 * time.Millisecond) // a slow database read
				return row{ID: id, Title: "t"}, nil
			}
			const replicas = 4
			var wg sync.WaitGroup
			for range replicas {
				s := cache.NewShared[int64, row](client(t), p, time.Minute)
				wg.Go(func() {
					if got, err := s.Through(load)(context.Background(), 9); err != nil || got != (row{ID: 9, Title: "t"}) {
						t.Errorf("Through = %+v, %v", got, err)
					}
				})
			}
			wg.Wait()
			if got := loads.Load(); got != 1 {
				t.Fatalf("loads = %d across %d replicas, want 1", got, replicas)
			}
		})
	}
}

// TestALockWhoseHolderDiedCostsAShortWait: a replica that took the lock
// and never released it (it died mid-load) holds the others back for at
// most LockWait; then they load themselves.
func TestALockWhoseHolderDiedCostsAShortWait(t *testing.T) {
	rdb := mustRedis(t)
	p := prefix(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "{"+p+"3}:lock", 1, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	s := cache.NewShared[int64, row](rdb, p, time.Minute)
	start := time.Now()
	got, err := s.Through(func(_ context.Context, id int64) (row, error) { return row{ID: id}, nil })(ctx, 3)
	if err != nil || got.ID != 3 {
		t.Fatalf("Through = %+v, %v; want the source's row", got, err)
	}
	if waited := time.Since(start); waited < cache.LockWait {
		t.Fatalf("answered after %v: it did not wait for the holder's value", waited)
	}
}
