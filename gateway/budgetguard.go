package gateway

import (
	"sync"
	"sync/atomic"
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
//
// Every request on the route asks admits, refusals included, so admits
// takes no lock: the cap and the window's in-flight peak are atomics.
// Only an admitted request's answer takes the lock that counts the
// window and moves the cap.
type budgetGuard struct {
	clock  clock.Clock
	slow   time.Duration // half the call budget
	window time.Duration
	floor  int        // the limit's floor: the cap never goes below it
	limit  func() int // the adaptive limit now

	cap  atomic.Int64 // the most requests admitted at once; 0: no cap
	peak atomic.Int64 // the most in flight in the window

	mu      sync.Mutex
	start   time.Time // of the current window
	answers int       // answered in the window
	late    int       // of them, slower than slow
}

func newBudgetGuard(c clock.Clock, budget, window time.Duration, floor int, limit func() int) *budgetGuard {
	return &budgetGuard{clock: c, slow: budget / 2, window: window, floor: max(floor, 1), limit: limit, start: c.Now()}
}

// admits reports whether one more request may start while inflight are
// in flight already, and notes the in-flight peak of the window.
func (g *budgetGuard) admits(inflight int) bool {
	n := int64(inflight) + 1
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	c := g.cap.Load()
	return c == 0 || int64(inflight) < c
}

// answered records an admitted request that took took, first closing the
// window if it is over.
func (g *budgetGuard) answered(took time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.turnLocked()
	g.answers++
	if took > g.slow {
		g.late++
	}
}

// turnLocked closes the window once it has lasted g.window and has
// guardMinSamples answers (a window of fewer goes on), moving the cap by
// what the window saw. g.mu must be held.
func (g *budgetGuard) turnLocked() {
	now := g.clock.Now()
	if now.Sub(g.start) < g.window || g.answers < guardMinSamples {
		return
	}
	c, peak := g.cap.Load(), g.peak.Swap(0)
	switch {
	case float64(g.late) > guardSlowShare*float64(g.answers):
		if c == 0 || c > peak {
			c = peak
		}
		c = max(c/2, int64(g.floor))
	case g.late == 0 && c > 0:
		c *= 2
		if c >= int64(g.limit()) {
			c = 0
		}
	}
	g.cap.Store(c)
	g.start, g.answers, g.late = now, 0, 0
}

// capped is the cap in force, 0 when there is none.
func (g *budgetGuard) capped() int { return int(g.cap.Load()) }
