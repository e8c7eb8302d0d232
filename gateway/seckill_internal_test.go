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
		if up, probe := f.check(1); up != tt.want || probe {
			t.Errorf("%v after the mark: up %v, probe %v; want %v, false", tt.after, up, probe, tt.want)
		}
	}
	c.Advance(time.Nanosecond)
	if up, probe := f.check(1); up || !probe {
		t.Fatalf("ttl after the mark: up %v, probe %v; want the probe", up, probe)
	}
	f.probed(1, true)
	if got := len(f.flags); got != 0 {
		t.Errorf("a flag whose probe was placed is still held (%d flags)", got)
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

	// A sweep drops the flags that are over and keeps the live ones and
	// the one being probed.
	c.Advance(ttl)
	f.mark(20_000) // sweeps: every earlier flag is over
	c.Advance(ttl / 2)
	f.mark(20_001) // no sweep yet
	c.Advance(ttl / 2)
	if _, probe := f.check(20_000); !probe {
		t.Fatal("activity 20000: over, and no probe handed out")
	}
	f.mark(20_002) // sweeps: 20,000 is probed, 20,001 is live
	if got, want := len(f.flags), 3; got != want {
		t.Errorf("%d flags held after the sweep, want %d", got, want)
	}
	for _, tt := range []struct {
		id   int64
		want bool
	}{{20_000, true}, {20_001, true}, {20_002, true}, {20_003, false}} {
		if up, probe := f.check(tt.id); up != tt.want || probe {
			t.Errorf("activity %d: up %v, probe %v; want %v, false", tt.id, up, probe, tt.want)
		}
	}
}

// TestSoldOutFlagLetsOneProbeThrough: once a flag is over, one buy at a
// time goes to order while the rest are still refused. Order's SOLD_OUT
// marks the flag again, an accepted buy opens the sale, and any other
// end of the probe hands the look to the next buy.
func TestSoldOutFlagLetsOneProbeThrough(t *testing.T) {
	const ttl = time.Second
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	f := newSoldOutFlags(c, ttl)
	f.mark(7)
	c.Advance(ttl)

	probes := 0
	for range 100 {
		up, probe := f.check(7)
		if up == probe {
			t.Fatalf("up %v, probe %v: a buy is either refused or the probe", up, probe)
		}
		if probe {
			probes++
		}
	}
	if probes != 1 {
		t.Fatalf("%d probes among 100 buys after the flag was over, want 1", probes)
	}

	// The probe ended without an answer on stock (a timeout, a closed
	// window): the next buy looks.
	f.probed(7, false)
	if up, probe := f.check(7); up || !probe {
		t.Fatalf("after an undecided probe: up %v, probe %v; want the next probe", up, probe)
	}

	// Order answered SOLD_OUT: the flag is up for another ttl, and the
	// probe's own end changes nothing.
	f.mark(7)
	f.probed(7, false)
	c.Advance(ttl - time.Nanosecond)
	if up, probe := f.check(7); !up || probe {
		t.Fatalf("inside the new ttl: up %v, probe %v; want refused", up, probe)
	}

	// Order accepted the probe: the sale is open to every buy.
	c.Advance(time.Nanosecond)
	if _, probe := f.check(7); !probe {
		t.Fatal("no probe once the new ttl was over")
	}
	f.probed(7, true)
	for range 3 {
		if up, probe := f.check(7); up || probe {
			t.Fatalf("after a placed probe: up %v, probe %v; want the sale open", up, probe)
		}
	}
}
