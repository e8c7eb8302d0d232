package gateway

import (
	"bytes"
	"log/slog"
	"regexp"
	"slices"
	"strings"
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
// limit; a window with too few answers says nothing. Each move of the
// cap is logged at debug level with its cause, and nothing else is.
func TestBudgetGuardCapsWhatItAdmitsUntilLatencyFitsTheBudget(t *testing.T) {
	c := clock.NewManual(time.Unix(1_800_000_000, 0))
	const budget, window, floor, limit = 2 * time.Second, 250 * time.Millisecond, 12, 100
	var logged bytes.Buffer
	g := newBudgetGuard(c, budget, window, floor, func() int { return limit }, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
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
	moves := regexp.MustCompile(`cap=\d+ was=\d+ why="[a-z ]+"`).FindAllString(logged.String(), -1)
	if want := []string{
		"cap=50 was=0 why=\"answers slow\"",
		"cap=25 was=50 why=\"answers slow\"",
		"cap=12 was=25 why=\"answers slow\"",
		"cap=24 was=12 why=\"answers fast\"",
		"cap=48 was=24 why=\"answers fast\"",
		"cap=96 was=48 why=\"answers fast\"",
		"cap=0 was=96 why=\"answers fast\"",
	}; !slices.Equal(moves, want) {
		t.Fatalf("logged moves:\n%s\nwant:\n%s", strings.Join(moves, "\n"), strings.Join(want, "\n"))
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

// The guard reads the ages of what is still in flight: once more than a
// tenth of it has waited past half the budget (before any of it answers)
// the guard caps at half the peak, once a window, and no fast window
// doubles the cap until those requests are answered. A lone straggler
// among many trips nothing, and a request that outlived the ring of age
// slots does not uncount the request that reused its slot.
func TestBudgetGuardTripsOnTheAgeOfWhatIsStillInFlight(t *testing.T) {
	const budget, window, floor, limit = 2 * time.Second, 250 * time.Millisecond, 4, 100
	c := clock.NewManual(time.Unix(1_800_000_000, 0)) // on a slot's start
	g := newBudgetGuard(c, budget, window, floor, func() int { return limit }, slog.New(slog.DiscardHandler))
	var slots []uint64
	for i := range 20 {
		if !g.admits(i) {
			t.Fatalf("request %d refused before any cap", i)
		}
		slots = append(slots, g.started(c.Now()))
	}
	c.Advance(budget/2 + 100*time.Millisecond) // within the slot that ends past half the budget
	if !g.admits(20) || g.capped() != 0 {
		t.Fatalf("20 in flight for 1.1 s: cap %d, want none yet", g.capped())
	}
	c.Advance(200 * time.Millisecond) // 1.3 s: all 20 past half the budget
	if g.admits(20) {
		t.Fatal("20 in flight past half the budget: admitted, want refused")
	}
	if got := g.capped(); got != 10 {
		t.Fatalf("cap %d, want 10 (half the in-flight peak of 21)", got)
	}
	g.admits(20)
	if got := g.capped(); got != 10 {
		t.Fatalf("second stalled admit in the window: cap %d, want still 10", got)
	}
	// fastWindow answers enough requests fast to close a window, ends it
	// and checks the cap it left.
	fastWindow := func(step string, capped int) {
		t.Helper()
		for range guardMinSamples {
			g.answered(time.Millisecond)
		}
		c.Advance(window)
		g.turn()
		if got := g.capped(); got != capped {
			t.Fatalf("%s: cap %d, want %d", step, got, capped)
		}
	}
	fastWindow("a fast window while the 20 are still out", 10)
	for _, s := range slots {
		g.left(s)
	}
	fastWindow("a fast window once they were answered", 20)

	// A lone straggler: 1 of 20 in flight past half the budget.
	c2 := clock.NewManual(time.Unix(1_800_000_000, 0))
	g2 := newBudgetGuard(c2, budget, window, floor, func() int { return limit }, slog.New(slog.DiscardHandler))
	straggler := g2.started(c2.Now())
	c2.Advance(budget)
	for i := range 19 {
		g2.admits(i + 1)
		g2.started(c2.Now())
	}
	if !g2.admits(20) || g2.capped() != 0 {
		t.Fatalf("one straggler in 20: cap %d, want none", g2.capped())
	}
	// The ring spans 16 slots: a request that outlived it shares its word
	// with one started now, and its answer must not uncount that one.
	c2.Advance(guardSlots*g2.slot - budget)
	fresh := g2.started(c2.Now())
	if fresh%guardSlots != straggler%guardSlots || fresh == straggler {
		t.Fatalf("slots %d and %d: want the same word, another slot", straggler, fresh)
	}
	g2.left(straggler)
	if v := g2.slots[fresh%guardSlots].Load(); v>>guardCountBits != fresh || v&(1<<guardCountBits-1) != 1 {
		t.Fatalf("word after the outlived request left: slot %d count %d, want slot %d count 1",
			v>>guardCountBits, v&(1<<guardCountBits-1), fresh)
	}
}

// An admit that saw the ring stalled trips on its own in-flight count:
// a window that closed between its check and its trip has reset the
// window's peak, and halving that would drop the cap to the floor.
func TestBudgetGuardTripsOnTheCountThatSawTheStall(t *testing.T) {
	const budget, window, floor, limit = 2 * time.Second, 250 * time.Millisecond, 4, 100
	c := clock.NewManual(time.Unix(1_800_000_000, 0))
	g := newBudgetGuard(c, budget, window, floor, func() int { return limit }, slog.New(slog.DiscardHandler))
	g.peak.Store(0) // the window turned meanwhile
	g.tripOnAge(c.Now(), 31)
	if got := g.capped(); got != 15 {
		t.Fatalf("cap %d, want 15 (half the 31 in flight that saw the stall)", got)
	}
}
