package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
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
	f.probed(1, p, lookClosed)
	if got := len(f.flags); got != 0 {
		t.Errorf("a flag whose probe found the sale's window over is still held (%d flags)", got)
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
	// ones, the one a probe is looking at, and one reopening, whose
	// probe has just placed an order.
	c.Advance(ttl)
	f.mark(20_000) // sweeps: every earlier flag is over
	f.mark(20_004)
	c.Advance(ttl / 2)
	f.mark(20_001) // no sweep yet
	c.Advance(ttl / 2)
	mustProbe(t, f, 20_000)
	f.probed(20_004, mustProbe(t, f, 20_004), lookPlaced)
	f.mark(20_002) // sweeps: 20,000 is being probed, 20,001 is live, 20,004 reopening
	if got, want := len(f.flags), 4; got != want {
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
	c.Advance(ttl)
	f.mark(20_005) // sweeps: 20,004 is over and was not probed for a ttl
	if _, held := f.flags[20_004]; held {
		t.Error("a reopening flag not probed for a ttl survived the sweep")
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
// marks the flag again, and an undecided end of the probe hands the look
// to the next buy (a placed order widens it:
// TestSoldOutFlagReopensAsStockComesBack). A probe out longer
// than ttl no longer holds the rest back alone, and a probe's end changes
// nothing once another probe has taken over.
func TestSoldOutFlagLetsOneProbeThrough(t *testing.T) {
	const ttl = time.Second
	c, f := overFlag(ttl)

	out := letThrough(t, f)
	if len(out) != 1 {
		t.Fatalf("%d probes out at once once the flag is over, want 1", len(out))
	}
	first := out[0]

	// The probe ended without an answer on stock (a timeout, a refused
	// challenge): the next buy looks.
	f.probed(7, first, lookUndecided)
	second := mustProbe(t, f, 7)

	// Order answered SOLD_OUT: the flag is up for another ttl, and the
	// probe's own end changes nothing, not even a placed order.
	f.mark(7)
	f.probed(7, second, lookPlaced)
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
	mustProbe(t, f, 7)
	f.probed(7, slow, lookPlaced)
	if up, p := f.check(7); !up || p.out() {
		t.Fatalf("after the stale probe's end: up %v, probe %v; want refused while the new probe is out", up, p.out())
	}
}

// overFlag returns flags of ttl holding a flag on activity 7 that is just
// over, and their clock.
func overFlag(ttl time.Duration) (*clock.Manual, *soldOutFlags) {
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	f := newSoldOutFlags(c, ttl)
	f.mark(7)
	c.Advance(ttl)
	return c, f
}

// letThrough sends buys at activity 7 until the flag refuses one, and
// returns the probes it let out.
func letThrough(t *testing.T, f *soldOutFlags) []probe {
	t.Helper()
	var out []probe
	for range 3 * reopenedAt {
		up, p := f.check(7)
		if up == p.out() {
			t.Fatalf("up %v, probe %v: a buy is either refused or a probe", up, p.out())
		}
		if up {
			return out
		}
		out = append(out, p)
	}
	t.Fatalf("%d buys in a row let through while the flag is held", 3*reopenedAt)
	return nil
}

// TestSoldOutFlagReopensAsStockComesBack: a probe that places an order
// lets one more probe out at once (slow start), never every buy: one unit
// back costs a SOLD_OUT or two at order, not one per buy in flight. Each
// placed order widens the opening by one, an undecided end frees its
// place, a one-unit SOLD_OUT shuts it for a ttl and back to one probe,
// and once reopenedAt probes may go out together the flag is dropped.
func TestSoldOutFlagReopensAsStockComesBack(t *testing.T) {
	const ttl = time.Second
	c, f := overFlag(ttl)
	if got := letThrough(t, f); len(got) != 1 {
		t.Fatalf("%d probes out at once after the ttl, want 1", len(got))
	} else {
		f.probed(7, got[0], lookPlaced) // one unit came back
	}
	two := letThrough(t, f)
	if len(two) != 2 {
		t.Fatalf("%d probes out at once after one placed order, want 2", len(two))
	}
	// One ends undecided: its place goes to the next buy, no more.
	f.probed(7, two[0], lookUndecided)
	if got := letThrough(t, f); len(got) != 1 {
		t.Fatalf("%d probes let out after an undecided end, want 1", len(got))
	}
	// The unit is gone again: order's SOLD_OUT shuts the sale for a ttl,
	// then one probe looks.
	f.mark(7)
	f.probed(7, two[1], lookPlaced) // ended after the mark: changes nothing
	if up, _ := f.check(7); !up {
		t.Fatal("a buy let through inside the ttl of a new mark")
	}
	c.Advance(ttl)
	open := letThrough(t, f)
	if len(open) != 1 {
		t.Fatalf("%d probes out at once after the new mark's ttl, want 1", len(open))
	}

	// Stock came back in quantity: every probe places an order, and the
	// opening grows by one each time until the flag is dropped.
	for width := 2; width < reopenedAt; width++ {
		f.probed(7, open[0], lookPlaced)
		open = append(open[1:], letThrough(t, f)...)
		if len(open) != width {
			t.Fatalf("after %d placed orders: %d probes out, want %d", width-1, len(open), width)
		}
	}
	f.probed(7, open[0], lookPlaced)
	for range 3 * reopenedAt {
		if up, p := f.check(7); up || p.out() {
			t.Fatalf("after %d placed orders: up %v, probe %v; want the sale open to every buy", reopenedAt-1, up, p.out())
		}
	}
}

// An accepted buy's retry carries the challenge its first try passed
// with: of the wall's refusals it can meet only an expired or a used one,
// which are checked against the accepted keys (and answered 503 while
// those cannot be read); the others are answered as they are.
func TestRetryMeetsOnlyAnExpiredOrUsedChallenge(t *testing.T) {
	for code, may := range map[errcode.Code]bool{
		errcode.ChallengeExpired: true, errcode.ChallengeUsed: true,
		errcode.ChallengeRequired: false, errcode.ChallengeInvalid: false, errcode.ChallengeEarly: false,
	} {
		if got := retryMayMeet(errorf(code, "refused")); got != may {
			t.Errorf("%s: a retry may meet it %v, want %v", code, got, may)
		}
	}
	if retryMayMeet(errors.New("not the gateway's")) {
		t.Error("an error that is no refusal of the wall: a retry may meet it, want not")
	}
}
