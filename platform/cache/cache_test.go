package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
)

func TestConcurrentMissesLoadOnce(t *testing.T) {
	var loads atomic.Int64
	release := make(chan struct{})
	c := cache.New(time.Minute, clock.Real{}, func(_ context.Context, k int) (int, error) {
		loads.Add(1)
		<-release
		return k * 2, nil
	})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			v, err := c.Get(context.Background(), 21)
			if err != nil || v != 42 {
				t.Errorf("Get = %d, %v", v, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let the goroutines pile up on the miss
	close(release)
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Fatalf("loads = %d, want 1", got)
	}
}

// TestAStampedeOnAnExpiringHotKeyLoadsOnce: a key read by 100 callers at
// the moment it expires is loaded once more, not 100 times (缓存击穿).
func TestAStampedeOnAnExpiringHotKeyLoadsOnce(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var loads atomic.Int64
	release := make(chan struct{})
	c := cache.New(time.Second, clk, func(_ context.Context, k int) (int, error) {
		if loads.Add(1) > 1 {
			<-release
		}
		return k, nil
	})
	ctx := context.Background()
	if _, err := c.Get(ctx, 7); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if v, err := c.Get(ctx, 7); err != nil || v != 7 {
				t.Errorf("Get = %d, %v", v, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let the callers pile up on the miss
	close(release)
	wg.Wait()
	if got := loads.Load(); got != 2 {
		t.Fatalf("loads = %d, want 2 (the first and one after expiry); stats %+v", got, c.Stats())
	}
}

// TestRefreshAheadReloadsAHotKeyOnceBeforeItExpires: hits in the last
// fifth of the TTL answer the cached value at once and start one
// background reload; after it the key is fresh again, so a key read all
// the time never makes a reader wait for a load.
func TestRefreshAheadReloadsAHotKeyOnceBeforeItExpires(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var loads atomic.Int64
	release := make(chan struct{})
	c := cache.New(10*time.Second, clk, func(_ context.Context, k int) (int64, error) {
		n := loads.Add(1)
		if n > 1 {
			<-release
		}
		return n, nil
	}).WithRefreshAhead(cache.RefreshAhead)
	ctx := context.Background()
	if v, _ := c.Get(ctx, 1); v != 1 {
		t.Fatalf("first Get = %d, want 1", v)
	}
	clk.Advance(7 * time.Second) // before the last fifth even at the shortest jittered TTL (9 s)
	if v, _ := c.Get(ctx, 1); v != 1 || loads.Load() != 1 {
		t.Fatalf("Get at 7 s = %d after %d loads, want 1 after 1", v, loads.Load())
	}
	clk.Advance(1900 * time.Millisecond) // 8.9 s: in the last fifth whatever the jitter, not yet expired
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if v, err := c.Get(ctx, 1); err != nil || v != 1 {
				t.Errorf("Get during the refresh = %d, %v; want the cached 1 at once", v, err)
			}
		})
	}
	wg.Wait()
	close(release)
	for v, _ := c.Cached(1); v != 2; v, _ = c.Cached(1) {
		time.Sleep(time.Millisecond) // the background reload stores its value
	}
	if got := c.Stats().Refreshes; got != 1 {
		t.Fatalf("refreshes = %d, want 1", got)
	}
	// Once the old entry would have expired, the key still answers
	// without a load.
	clk.Advance(2 * time.Second)
	if v, _ := c.Get(ctx, 1); v != 2 || loads.Load() != 2 || c.Stats().Misses != 1 {
		t.Fatalf("after the refresh: Get = %d, loads %d, misses %d; want 2, 2, 1", v, loads.Load(), c.Stats().Misses)
	}
}

// TestSetAndExpire: a warmed key answers without a load; after Expire
// every key is loaded again, a remembered absence is forgotten, and the
// last value stays for a degraded reader (Cached).
func TestSetAndExpire(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var loads atomic.Int64
	gone := errors.New("gone")
	c := cache.New(time.Minute, clk, func(_ context.Context, k int) (int, error) {
		loads.Add(1)
		if k < 0 {
			return 0, gone
		}
		return -k, nil
	}).WithNegative(cache.Negative{TTL: time.Minute, Absent: func(err error) bool { return err == gone }})
	ctx := context.Background()
	c.Set(1, 100)
	if v, _ := c.Get(ctx, 1); v != 100 || loads.Load() != 0 {
		t.Fatalf("warmed Get = %d after %d loads, want 100 after 0", v, loads.Load())
	}
	if _, err := c.Get(ctx, -1); err != gone {
		t.Fatalf("Get(-1) = %v, want gone", err)
	}
	c.Expire()
	if v, ok := c.Cached(1); !ok || v != 100 {
		t.Fatalf("Cached after Expire = %d, %v; want the last value, 100", v, ok)
	}
	if v, _ := c.Get(ctx, 1); v != -1 || loads.Load() != 2 {
		t.Fatalf("Get after Expire = %d after %d loads, want -1 after 2", v, loads.Load())
	}
	if _, err := c.Get(ctx, -1); err != gone || loads.Load() != 3 {
		t.Fatalf("Get(-1) after Expire = %v after %d loads, want gone asked again (3 loads)", err, loads.Load())
	}
}

func TestExpiryAndErrors(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var n atomic.Int64
	fail := true
	c := cache.New(time.Second, clk, func(context.Context, string) (int64, error) {
		if fail {
			return 0, errors.New("down")
		}
		return n.Add(1), nil
	})
	ctx := context.Background()
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Fatal("error not returned")
	}
	fail = false
	if v, _ := c.Get(ctx, "k"); v != 1 {
		t.Fatalf("errors must not be cached: got %d", v)
	}
	if v, _ := c.Get(ctx, "k"); v != 1 {
		t.Fatalf("cached value not served: got %d", v)
	}
	clk.Advance(time.Second)
	if v, _ := c.Get(ctx, "k"); v != 2 {
		t.Fatalf("expired value served: got %d", v)
	}
	c.Invalidate("k")
	if v, _ := c.Get(ctx, "k"); v != 3 {
		t.Fatalf("invalidated value served: got %d", v)
	}
}

func TestCachedServesStaleValuesWithoutLoading(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var loads atomic.Int64
	c := cache.New(time.Second, clk, func(_ context.Context, k int) (int, error) {
		loads.Add(1)
		return k * 2, nil
	})
	if _, ok := c.Cached(1); ok {
		t.Fatal("Cached of a key never loaded reported a value")
	}
	if _, err := c.Get(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	v, ok := c.Cached(1)
	if !ok || v != 2 {
		t.Errorf("Cached(1) an hour after its load = %d, %v; want 2, true", v, ok)
	}
	if got := loads.Load(); got != 1 {
		t.Errorf("loads = %d, want 1", got)
	}
}

// TestStaleIfErrorRidesOutAnOutage checks WithStale: during an outage the
// last value is served (and counted), the source is asked again once per
// TTL rather than per request, an answer that is not an outage is
// returned as it is, and nothing older than MaxAge or never loaded is
// served.
func TestStaleIfErrorRidesOutAnOutage(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	errDown, errGone := errors.New("source down"), errors.New("not found")
	var loads atomic.Int64
	var fail atomic.Pointer[error]
	c := cache.New(time.Second, clk, func(_ context.Context, k int) (int, error) {
		n := loads.Add(1)
		if err := fail.Load(); err != nil {
			return 0, *err
		}
		return k*100 + int(n), nil
	}).WithStale(cache.Stale{MaxAge: time.Minute, Outage: func(err error) bool { return errors.Is(err, errDown) }})
	served := func() int64 { return c.Stats().Stale }
	ctx := context.Background()
	get := func(k int) (int, error) { return c.Get(ctx, k) }

	if v, err := get(1); v != 101 || err != nil {
		t.Fatalf("first load = %d, %v", v, err)
	}
	fail.Store(&errDown)
	clk.Advance(2 * time.Second)
	for range 3 {
		if v, err := get(1); v != 101 || err != nil {
			t.Fatalf("during the outage Get = %d, %v; want the last value 101", v, err)
		}
	}
	if loads.Load() != 2 || served() != 3 {
		t.Fatalf("%d loads, %d stale answers; want 2 (one failed try per TTL) and 3", loads.Load(), served())
	}
	clk.Advance(time.Second)
	if v, _ := get(1); v != 101 || loads.Load() != 3 {
		t.Fatalf("a TTL later: Get = %d after %d loads; want 101 after a third (failed) load", v, loads.Load())
	}
	if _, err := get(2); !errors.Is(err, errDown) {
		t.Fatalf("a key never loaded during the outage: err %v, want the outage", err)
	}

	fail.Store(&errGone)
	clk.Advance(time.Second)
	if _, err := get(1); !errors.Is(err, errGone) {
		t.Fatalf("an answer that is not an outage: err %v, want it returned", err)
	}

	fail.Store(&errDown)
	clk.Advance(time.Minute)
	if _, err := get(1); !errors.Is(err, errDown) {
		t.Fatalf("a value loaded over MaxAge ago: err %v, want the outage", err)
	}

	fail.Store(nil)
	clk.Advance(time.Second)
	before := served()
	if v, err := get(1); err != nil || v == 101 || served() != before {
		t.Fatalf("after the outage: Get = %d, %v (stale answers %d → %d); want a fresh value, not counted stale", v, err, before, served())
	}
}

// TestBoundedWhileAMillionDistinctKeysAreRead: however many distinct keys
// are read, the cache holds at most its bound, evicting the least
// recently used; a key read often stays.
func TestBoundedWhileAMillionDistinctKeysAreRead(t *testing.T) {
	c := cache.New(time.Hour, clock.Real{}, func(_ context.Context, k int) (int, error) { return k, nil }).WithMaxEntries(1000)
	ctx := context.Background()
	for k := range 1_000_000 {
		if _, err := c.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, -1); err != nil { // the hot key, read between every two others
			t.Fatal(err)
		}
	}
	s := c.Stats()
	if s.Entries != 1000 || s.Evictions != 1_000_001-1000 {
		t.Fatalf("after 1,000,001 distinct keys: %d entries, %d evicted; want 1000 and %d", s.Entries, s.Evictions, 1_000_001-1000)
	}
	if _, ok := c.Cached(-1); !ok {
		t.Fatal("the hot key was evicted")
	}
}

// TestNegativeCacheAnswersUnknownKeysWithoutLoading: 10,000 distinct ids
// that do not exist cost one load each; asked again within the negative
// TTL they cost none; after it, the source is asked again (the id may
// exist by now). Other errors are never remembered.
func TestNegativeCacheAnswersUnknownKeysWithoutLoading(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	errGone, errDown := errors.New("not found"), errors.New("down")
	var loads atomic.Int64
	c := cache.New(time.Minute, clk, func(_ context.Context, k int) (int, error) {
		loads.Add(1)
		if k < 0 {
			return 0, errDown
		}
		return 0, errGone
	}).WithNegative(cache.Negative{TTL: time.Second, Absent: func(err error) bool { return errors.Is(err, errGone) }})
	ctx := context.Background()
	for range 2 {
		for k := range 10_000 {
			if _, err := c.Get(ctx, k); !errors.Is(err, errGone) {
				t.Fatalf("unknown id %d: %v, want the not-found answer", k, err)
			}
		}
	}
	if n, s := loads.Load(), c.Stats(); n != 10_000 || s.Negative != 10_000 {
		t.Fatalf("two passes over 10,000 unknown ids: %d loads, %d remembered answers; want 10,000 and 10,000", n, s.Negative)
	}
	if _, ok := c.Cached(7); ok {
		t.Fatal("Cached reported a value for a remembered absence")
	}
	clk.Advance(time.Second)
	if _, err := c.Get(ctx, 7); !errors.Is(err, errGone) || loads.Load() != 10_001 {
		t.Fatalf("after the negative TTL: %v after %d loads; want the source asked again", err, loads.Load())
	}
	for range 2 {
		_, _ = c.Get(ctx, -1)
	}
	if loads.Load() != 10_003 {
		t.Fatalf("an outage answer was remembered: %d loads, want 10,003", loads.Load())
	}
}

// TestTTLsAreSpread: keys loaded at one instant do not all expire at the
// next: each TTL is shortened by up to a tenth, never lengthened.
func TestTTLsAreSpread(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	var loads atomic.Int64
	c := cache.New(10*time.Second, clk, func(_ context.Context, k int) (int, error) { loads.Add(1); return k, nil })
	ctx := context.Background()
	reload := func() int64 {
		before := loads.Load()
		for k := range 1000 {
			_, _ = c.Get(ctx, k)
		}
		return loads.Load() - before
	}
	reload()
	clk.Advance(8999 * time.Millisecond)
	if n := reload(); n != 0 {
		t.Fatalf("%d of 1000 expired before 90%% of the TTL", n)
	}
	clk.Advance(500 * time.Millisecond)
	if n := reload(); n == 0 || n == 1000 {
		t.Fatalf("%d of 1000 expired at 95%% of the TTL; want some, not all", n)
	}
}

// TestCollectorExportsWhatTheCachesDid reads the metrics a registry
// gathers from a cache's counts.
func TestCollectorExportsWhatTheCachesDid(t *testing.T) {
	c := cache.New(time.Minute, clock.Real{}, func(_ context.Context, k int) (int, error) { return k, nil }).WithMaxEntries(2)
	ctx := context.Background()
	for _, k := range []int{1, 1, 2, 3} {
		_, _ = c.Get(ctx, k)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cache.Collector(map[string][]cache.StatsSource{"product": {c}}))
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				switch {
				case l.GetName() == "result":
					name += "/" + l.GetValue()
				case l.GetName() == "level" && l.GetValue() != cache.L1:
					t.Errorf("%s has level %q, want %q", f.GetName(), l.GetValue(), cache.L1)
				}
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{"cache_lookups_total/hit": 1, "cache_lookups_total/miss": 3,
		"cache_lookups_total/stale": 0, "cache_lookups_total/negative": 0,
		"cache_refreshes_total": 0, "cache_evictions_total": 1, "cache_entries": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
