package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
)

// TestHeldMarksAreBoundedAndExpire holds marks up to the bound and no
// further (a mark held again still fits), answers a mark until exactly
// its ttl, and leaves out of a write the marks too close to their expiry.
func TestHeldMarksAreBoundedAndExpire(t *testing.T) {
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	h := newHeldMarks(c, 2)
	if !h.hold("a", "1", time.Hour) || !h.hold("b", "2", 10*time.Second) {
		t.Fatal("marks under the bound were dropped")
	}
	if h.hold("c", "3", time.Hour) {
		t.Error("a third mark was held over a bound of 2")
	}
	if !h.hold("a", "1", 2*time.Hour) {
		t.Error("a mark held again was dropped at the bound")
	}
	if v, ok := h.get("a"); !ok || v != "1" {
		t.Errorf("get a = %q, %v; want 1", v, ok)
	}
	if _, ok := h.get("c"); ok {
		t.Error("the dropped mark is answered")
	}

	c.Advance(10*time.Second - time.Nanosecond)
	if v, ok := h.get("b"); !ok || v != "2" {
		t.Errorf("b just before its ttl: %q, %v; want 2", v, ok)
	}
	names, _ := h.batch()
	if len(names) != 1 || names[0] != "a" || h.size() != 1 {
		t.Errorf("batch %v with %d left held, want [a] and b dropped (under %v left)", names, h.size(), minHeldMarkTTL)
	}
	c.Advance(time.Nanosecond)
	if _, ok := h.get("b"); ok {
		t.Error("b is answered at its ttl")
	}
	c.Advance(2 * time.Hour)
	if _, ok := h.get("a"); ok {
		t.Error("a is answered after its ttl")
	}
}

// TestHeldUnansweredMarkLeavesTheKeysUnknown: while Redis cannot be
// read, a key whose unanswered mark this replica holds is unanswered
// (the flag lets it through to order) and still unknown (it may have
// been accepted since, on another replica: any other shortcut answers
// 503, not its refusal); a held accepted key is found.
func TestHeldUnansweredMarkLeavesTheKeysUnknown(t *testing.T) {
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}) // nothing listens there
	defer down.Close()
	a := &acceptedKeys{rdb: down, ttl: time.Hour, timeout: time.Second, held: newHeldMarks(c, 8),
		log: func(context.Context, string, ...any) {}}
	ctx := context.Background()
	a.held.hold(a.unsureName(1, 2, "lost"), "1", time.Hour)
	if _, found, unanswered, unknown := a.lookup(ctx, 1, 2, "lost"); found || !unanswered || !unknown {
		t.Errorf("held unanswered key, Redis down: found %v, unanswered %v, unknown %v; want false, true, true", found, unanswered, unknown)
	}
	if _, found, unanswered, unknown := a.lookup(ctx, 1, 2, "other"); found || unanswered || !unknown {
		t.Errorf("a key held nowhere, Redis down: found %v, unanswered %v, unknown %v; want false, false, true", found, unanswered, unknown)
	}
	a.held.hold(a.name(1, 2, "took"), "77", time.Hour)
	if id, found, _, unknown := a.lookup(ctx, 1, 2, "took"); !found || id != 77 || unknown {
		t.Errorf("held accepted key, Redis down: %d, found %v, unknown %v; want 77, true, false", id, found, unknown)
	}
}
