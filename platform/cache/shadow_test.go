package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/shadow"
)

// A key read by pressure-test work and by real work is loaded once per
// class, each class answered with its own value (the load sees the
// class in its context, as a store routing to shadow storage does), and
// an invalidation drops both.
func TestTrafficClassesDoNotShareEntries(t *testing.T) {
	ctx := context.Background()
	marked := shadow.With(ctx)
	loads := 0
	l := cache.New(time.Minute, clock.NewManual(time.Now()), func(ctx context.Context, k int64) (string, error) {
		loads++
		return shadow.Label(ctx), nil
	})
	for range 2 {
		if v, _ := l.Get(marked, 7); v != "shadow" {
			t.Fatalf("marked read got %q", v)
		}
		if v, _ := l.Get(ctx, 7); v != "real" {
			t.Fatalf("real read got %q", v)
		}
	}
	if loads != 2 {
		t.Fatalf("%d loads, want one per class", loads)
	}
	if v, ok := l.CachedIn(marked, 7); !ok || v != "shadow" {
		t.Fatalf("CachedIn marked: %q %v", v, ok)
	}
	if v, ok := l.Cached(7); !ok || v != "real" {
		t.Fatalf("Cached: %q %v", v, ok)
	}
	l.Invalidate(7)
	if _, ok := l.CachedIn(marked, 7); ok {
		t.Fatal("Invalidate left the marked entry")
	}
	if _, ok := l.Cached(7); ok {
		t.Fatal("Invalidate left the real entry")
	}
}
