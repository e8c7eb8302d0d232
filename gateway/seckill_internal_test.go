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
	}{{0, true}, {ttl / 2, true}, {ttl - time.Nanosecond, true}} {
		c.Set(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).Add(tt.after))
		if up, p := f.check(1); up != tt.want || p.out() {
			t.Errorf("%v after the mark: up %v, probe %v; want %v, none", tt.after, up, p.out(), tt.want)
		}
	}
	c.Advance(time.Nanosecond)
	p := mustProbe(t, f, 1)
	f.probed(1, p, true)
	if got := len(f.flags); got != 0 {
		t.Errorf("a flag whose probe reopened the sale is still held (%d flags)", got)
	}

	// A sale sells out every 10 ms and none is asked for again.
	const step = 10 * time.Millisecond
	const most = int(2*ttl/step) + 1
	for id := int64(100); id < 10_100; id++ {
		f.mark(id)
		if up, _ := f.check(id); !up {
			t.Fatalf("activity %d: not up right after its mark", id)
		}
		if got := len(f.flags); got > most {
			t.Fatalf("after %d sell-outs: %d flags held, want at most %d (those of the last two ttls)", id-99, got, most)
		}
		c.Advance(step)
	}

	// A sweep drops the flags that no longer hold and keeps the live
	// ones and the one a probe is looking at.
	c.Advance(ttl)
	f.mark(20_000) // sweeps: every earlier flag is over
	c.Advance(ttl / 2)
	f.mark(20_001) // no sweep yet
	c.Advance(ttl / 2)
	mustProbe(t, f, 20_000)
	f.mark(20_002) // sweeps: 20,000 is being probed, 20,001 is live
	if got, want := len(f.flags), 3; got != want {
		t.Errorf("%d flags held after the sweep, want %d", got, want)
	}
	for _, tt := range []struct {
		id   int64
		want bool
	}{{20_000, true}, {20_001, true}, {20_002, true}, {20_003, false}} {
		if up, p := f.check(tt.id); up != tt.want || p.out() {
			t.Errorf("activity %d: up %v, probe %v; want %v, none", tt.id, up, p.out(), tt.want)
		}
	}
}

// mustProbe takes the probe of the activity's flag, failing when the flag
// refuses instead or is gone.
func mustProbe(t *testing.T, f *soldOutFlags, id int64) probe {
	t.Helper()
	up, p := f.check(id)
	if up || !p.out() {
		t.Fatalf("activity %d: up %v, probe %v; want the probe", id, up, p.out())
	}
	return p
}

// TestSoldOutFlagLetsOneProbeThrough: once a flag is over, one buy at a
// time goes to order while the rest are still refused. Order's SOLD_OUT
// marks the flag again, a buy placed now reopens the sale, and any other
// end of the probe hands the look to the next buy. A probe out longer
// than ttl no longer holds the rest back alone, and a probe's end changes
// nothing once another probe has taken over.
func TestSoldOutFlagLetsOneProbeThrough(t *testing.T) {
	const ttl = time.Second
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	f := newSoldOutFlags(c, ttl)
	f.mark(7)
	c.Advance(ttl)

	var first probe
	for range 100 {
		up, p := f.check(7)
		if up == p.out() {
			t.Fatalf("up %v, probe %v: a buy is either refused or the probe", up, p.out())
		}
		if p.out() {
			if first.out() {
				t.Fatal("a second probe while the first is out")
			}
			first = p
		}
	}

	// The probe ended without an answer on stock (a timeout, a refused
	// challenge): the next buy looks.
	f.probed(7, first, false)
	second := mustProbe(t, f, 7)

	// Order answered SOLD_OUT: the flag is up for another ttl, and the
	// probe's own end changes nothing.
	f.mark(7)
	f.probed(7, second, false)
	c.Advance(ttl - time.Nanosecond)
	if up, p := f.check(7); !up || p.out() {
		t.Fatalf("inside the new ttl: up %v, probe %v; want refused", up, p.out())
	}

	// A probe order is slow to answer: for a ttl the rest are refused,
	// then the next buy looks too, and the slow probe's end, when it
	// comes, leaves the new one alone.
	c.Advance(time.Nanosecond)
	slow := mustProbe(t, f, 7)
	c.Advance(ttl - time.Nanosecond)
	if up, p := f.check(7); !up || p.out() {
		t.Fatalf("a ttl into the slow probe: up %v, probe %v; want refused", up, p.out())
	}
	c.Advance(time.Nanosecond)
	next := mustProbe(t, f, 7)
	f.probed(7, slow, true)
	if up, p := f.check(7); !up || p.out() {
		t.Fatalf("after the stale probe's end: up %v, probe %v; want refused while the new probe is out", up, p.out())
	}

	// A buy placed now: the sale is open to every buy.
	f.probed(7, next, true)
	for range 3 {
		if up, p := f.check(7); up || p.out() {
			t.Fatalf("after a placed probe: up %v, probe %v; want the sale open", up, p.out())
		}
	}
}
