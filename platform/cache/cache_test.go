package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	var loads, served atomic.Int64
	var fail atomic.Pointer[error]
	c := cache.New(time.Second, clk, func(_ context.Context, k int) (int, error) {
		n := loads.Add(1)
		if err := fail.Load(); err != nil {
			return 0, *err
		}
		return k*100 + int(n), nil
	}).WithStale(cache.Stale{MaxAge: time.Minute, Outage: func(err error) bool { return errors.Is(err, errDown) },
		Served: func() { served.Add(1) }})
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
	if loads.Load() != 2 || served.Load() != 3 {
		t.Fatalf("%d loads, %d stale answers; want 2 (one failed try per TTL) and 3", loads.Load(), served.Load())
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
	before := served.Load()
	if v, err := get(1); err != nil || v == 101 || served.Load() != before {
		t.Fatalf("after the outage: Get = %d, %v (stale answers %d → %d); want a fresh value, not counted stale", v, err, before, served.Load())
	}
}
