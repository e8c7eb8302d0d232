package gateway

import (
	"testing"
	"time"

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
