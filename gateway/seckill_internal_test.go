package gateway

import (
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// TestSoldOutFlagsForgetExpiredFlags holds a flag up from its mark until
// exactly ttl later, and the flags of sales that sold out and were never
// asked for again to those marked in the last two ttls: a replica that
// sees sale after sale sell out must not keep a flag per sale for good.
func TestSoldOutFlagsForgetExpiredFlags(t *testing.T) {
	const ttl = time.Second
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	f := newSoldOutFlags(c, ttl)

	f.mark(1)
	for _, tt := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {ttl / 2, true}, {ttl - time.Nanosecond, true}, {ttl, false}, {2 * ttl, false}} {
		c.Set(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).Add(tt.after))
		if got := f.marked(1); got != tt.want {
			t.Errorf("%v after the mark: marked = %v, want %v", tt.after, got, tt.want)
		}
	}
	if got := len(f.until); got != 0 {
		t.Errorf("an expired flag that was looked up is still held (%d flags)", got)
	}

	// A sale sells out every 10 ms and none is asked for again.
	const step = 10 * time.Millisecond
	const most = int(2*ttl/step) + 1
	for id := int64(100); id < 10_100; id++ {
		f.mark(id)
		if !f.marked(id) {
			t.Fatalf("activity %d: not marked right after its mark", id)
		}
		if got := len(f.until); got > most {
			t.Fatalf("after %d sell-outs: %d flags held, want at most %d (those of the last two ttls)", id-99, got, most)
		}
		c.Advance(step)
	}

	// A sweep drops the expired flags and keeps the live ones.
	c.Advance(ttl)
	f.mark(20_000) // sweeps: every earlier flag has expired
	c.Advance(ttl / 2)
	f.mark(20_001) // no sweep yet
	c.Advance(ttl / 2)
	f.mark(20_002) // sweeps: 20,000 expired now, 20,001 is live
	for _, tt := range []struct {
		id   int64
		want bool
	}{{20_000, false}, {20_001, true}, {20_002, true}} {
		if got := f.marked(tt.id); got != tt.want {
			t.Errorf("activity %d: marked = %v, want %v", tt.id, got, tt.want)
		}
	}
	if got, want := len(f.until), 2; got != want {
		t.Errorf("%d flags held after the sweep, want %d", got, want)
	}
}
