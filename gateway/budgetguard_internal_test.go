package gateway

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
)

// turn closes the guard's window if it is over, as the next answer would.
func (g *budgetGuard) turn() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.turnLocked()
}

// The guard drives the cap window by window: a window whose p90 is past
// half the budget caps the requests in flight at half its peak, a slow
// window halves the cap again down to the limit's floor, a fast one
// doubles it, and the guard lets go once the cap reaches the adaptive
// limit; a window with too few answers says nothing.
func TestBudgetGuardCapsWhatItAdmitsUntilLatencyFitsTheBudget(t *testing.T) {
	c := clock.NewManual(time.Unix(1_800_000_000, 0))
	const budget, window, floor, limit = 2 * time.Second, 250 * time.Millisecond, 12, 100
	g := newBudgetGuard(c, budget, window, floor, func() int { return limit })
	// window_ lets n requests in (as many at once), answers them, late
	// of them after more than half the budget and the rest after took,
	// ends the window and returns how many of n the guard refused.
	window_ := func(n, late int, took time.Duration) (refused int) {
		admitted := 0
		for range n {
			if g.admits(admitted) {
				admitted++
			} else {
				refused++
			}
		}
		for i := range admitted {
			d := took
			if i < late {
				d = budget/2 + time.Millisecond
			}
			g.answered(d)
		}
		c.Advance(window)
		g.turn()
		return refused
	}
	want := func(step string, capped int) {
		t.Helper()
		if got := g.capped(); got != capped {
			t.Fatalf("%s: cap %d, want %d", step, got, capped)
		}
	}

	if r := window_(100, 10, 10*time.Millisecond); r != 0 {
		t.Fatalf("no cap yet: %d refused", r)
	}
	want("a tenth slow is within the p90", 0)
	window_(100, 11, 10*time.Millisecond)
	want("more than a tenth slow: half the peak", 50)
	if r := window_(100, 50, 10*time.Millisecond); r != 50 {
		t.Fatalf("under a cap of 50: %d of 100 refused, want 50", r)
	}
	want("still slow: halved", 25)
	window_(100, 25, 0)
	want("halved again", floor)
	window_(100, floor, 0)
	want("never below the floor", floor)
	g.answered(budget) // a window of one slow answer: too few to judge
	c.Advance(window)
	g.turn()
	want("a window of too few answers", floor)
	for range guardMinSamples - 1 { // the window goes on to ten answers
		g.answered(0)
	}
	g.turn()
	want("one slow of ten, not more than a tenth", floor)
	for _, next := range []int{24, 48, 96} {
		window_(g.capped(), 0, 10*time.Millisecond)
		want("fast: doubled", next)
	}
	window_(96, 0, 10*time.Millisecond)
	want("the cap reached the adaptive limit: the guard lets go", 0)
	if r := window_(150, 0, 0); r != 0 {
		t.Fatalf("after letting go: %d refused", r)
	}
}

// The admission limit refuses what the guard's cap leaves out, with its
// own reason, and counts it for the degrade controller like a refusal
// by the limit.
func TestAdmissionRefusesOverTheBudgetCap(t *testing.T) {
	c := clock.NewManual(time.Unix(1_800_000_000, 0))
	a, err := newAdmission("seckill", AdmissionLimit{Min: 2, Initial: 50, Max: 50}, time.Second, 5, c, 2*time.Second, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var dones []func()
	for range 20 {
		done, _, err := a.enter(false)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, done)
	}
	c.Advance(1500 * time.Millisecond) // past half the budget
	for _, done := range dones {
		done()
	}
	for i := range 10 {
		if _, refusal, err := a.enter(false); err != nil {
			t.Fatalf("request %d under the cap of 10: %s %v", i, refusal, err)
		}
	}
	_, refusal, err := a.enter(false)
	if ge, ok := err.(*Error); refusal != refusedBudget || !ok || ge.Code != errcode.Overloaded {
		t.Fatalf("over the cap: %q %v, want %q and OVERLOADED", refusal, err, refusedBudget)
	}
	if admitted, refused := a.counts(); admitted != 30 || refused != 1 {
		t.Fatalf("counts: %d admitted, %d refused; want 30, 1", admitted, refused)
	}
}
