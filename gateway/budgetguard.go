package gateway

import (
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// The budget guard's rules (budgetGuard).
const (
	// guardSlowShare is the share of a window's admitted requests that
	// may take longer than half the call budget before the guard trips:
	// a tenth, so it trips on the window's p90, the quantile the
	// adaptive limit also reads.
	guardSlowShare = 0.1
	// guardMinSamples is how many answered requests a window needs
	// before it says anything.
	guardMinSamples = 10
)

// budgetGuard keeps a group's admitted requests within their call
// budget where the adaptive limit does not. The limit compares latency
// with a baseline it learned, so on a machine that slows down as a whole
// (other processes taking the CPU, a doubled load) the baseline drifts up
// with the latency and the limit stays open while requests queue towards
// the gateway's call timeout, where they fail with 503. The guard looks at
// latency against the budget itself: when more than a tenth of a window's
// admitted requests took over half the budget, it caps the requests in
// flight at half the most the window had (never below the limit's floor),
// and halves the cap again each window that is still slow; a window with
// no slow request doubles it, and once the cap reaches the adaptive
// limit, the guard lets go. Requests over the cap are refused at once
// like those over the limit (reason "budget").
type budgetGuard struct {
	clock  clock.Clock
	slow   time.Duration // half the call budget
	window time.Duration
	floor  int        // the limit's floor: the cap never goes below it
	limit  func() int // the adaptive limit now

	mu      sync.Mutex
	start   time.Time // of the current window
	answers int       // answered in the window
	late    int       // of them, slower than slow
	peak    int       // the most in flight in the window
	cap     int       // the most requests admitted at once; 0: no cap
}

func newBudgetGuard(c clock.Clock, budget, window time.Duration, floor int, limit func() int) *budgetGuard {
	return &budgetGuard{clock: c, slow: budget / 2, window: window, floor: max(floor, 1), limit: limit, start: c.Now()}
}

// admits reports whether one more request may start while inflight are
// in flight already, and notes the in-flight peak of the window.
func (g *budgetGuard) admits(inflight int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.turnLocked()
	g.peak = max(g.peak, inflight+1)
	return g.cap == 0 || inflight < g.cap
}

// answered records an admitted request that took took.
func (g *budgetGuard) answered(took time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.turnLocked()
	g.answers++
	if took > g.slow {
		g.late++
	}
}

// turn closes the window if it is over.
func (g *budgetGuard) turn() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.turnLocked()
}

// turnLocked closes the window once it has lasted g.window and has
// guardMinSamples answers (a window of fewer goes on), moving the cap by
// what the window saw. g.mu must be held.
func (g *budgetGuard) turnLocked() {
	now := g.clock.Now()
	if now.Sub(g.start) < g.window || g.answers < guardMinSamples {
		return
	}
	switch {
	case float64(g.late) > guardSlowShare*float64(g.answers):
		if g.cap == 0 || g.cap > g.peak {
			g.cap = g.peak
		}
		g.cap = max(g.cap/2, g.floor)
	case g.late == 0 && g.cap > 0:
		g.cap *= 2
		if g.cap >= g.limit() {
			g.cap = 0
		}
	}
	g.start, g.answers, g.late, g.peak = now, 0, 0, 0
}

// capped is the cap in force, 0 when there is none.
func (g *budgetGuard) capped() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cap
}
