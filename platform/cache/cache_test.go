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
