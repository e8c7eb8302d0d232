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
