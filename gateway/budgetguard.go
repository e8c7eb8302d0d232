package gateway

import (
	"log/slog"
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
	// before it says anything, and how many must be in flight before
	// their ages do.
	guardMinSamples = 10
	// guardSlots is the ring of start-time slots that counts the
	// requests in flight by age: slots of a quarter of the slow time
	// (guardOldSlots of them make it), sixteen in all, so the ring
	// spans twice the call budget, past which no request outlives its
	// deadline.
	guardSlots    = 16
	guardOldSlots = 4
	// guardCountBits is the part of a slot's word that counts; the rest
	// holds the slot's number (its start's time since the guard's epoch
	// over the slot's length) modulo guardSlotMask+1, so that a short
	// slot cannot overflow it.
	guardCountBits = 24
	guardSlotMask  = 1<<(64-guardCountBits) - 1
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
// Answers come late in a stall: a request that will take the whole
// budget says so only when it ends, and everything admitted meanwhile
// joins it. So the guard also reads the ages of the requests still in
// flight: when more than a tenth of them have been waiting longer than
// half the budget, it trips as a slow window would (at most once a
// window), and no window doubles the cap while that lasts.
//
// Every request on the route asks admits, refusals included, so admits
// takes no lock: the cap, the window's in-flight peak and the age slots
// are atomics. Only an admitted request's answer, and a trip by age,
// take the lock that counts the window and moves the cap.
type budgetGuard struct {
	clock  clock.Clock
	slow   time.Duration // half the call budget
	window time.Duration
	floor  int        // the limit's floor: the cap never goes below it
	limit  func() int // the adaptive limit now
	log    *slog.Logger

	cap  atomic.Int64 // the most requests admitted at once; 0: no cap
	peak atomic.Int64 // the most in flight in the window

	// slots count the admitted requests in flight by the slot of their
	// start: slot n (of length slot) is word n % guardSlots, which holds
	// n above guardCountBits and the count below.
	slot  time.Duration
	slots [guardSlots]atomic.Uint64
	epoch time.Time // slot 0's start

	mu      sync.Mutex
	start   time.Time // of the current window
	answers int       // answered in the window
	late    int       // of them, slower than slow
	aged    time.Time // the last trip by age
}

// newBudgetGuard returns the guard of a call budget, timed on c, that
// logs each move of its cap at debug level on log.
func newBudgetGuard(c clock.Clock, budget, window time.Duration, floor int, limit func() int, log *slog.Logger) *budgetGuard {
	return &budgetGuard{clock: c, slow: budget / 2, window: window, floor: max(floor, 1), limit: limit, log: log, start: c.Now(),
		slot: max(budget/2/guardOldSlots, time.Millisecond), epoch: c.Now()}
}

// admits reports whether one more request may start while inflight are
// in flight already, and notes the in-flight peak of the window. With
// enough in flight, it reads their ages first.
func (g *budgetGuard) admits(inflight int) bool {
	n := int64(inflight) + 1
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	if inflight >= guardMinSamples {
		if now := g.clock.Now(); g.stalled(now) {
			g.tripOnAge(now, n)
		}
	}
	c := g.cap.Load()
	return c == 0 || int64(inflight) < c
}

// slotOf is the number of the slot that holds t (modulo guardSlotMask+1),
// counted from the guard's epoch on the monotonic clock, so a step of the
// wall clock (NTP) neither ages the requests in flight nor hides them.
func (g *budgetGuard) slotOf(t time.Time) uint64 {
	return uint64(max(t.Sub(g.epoch), 0)/g.slot) & guardSlotMask
}

// started counts an admitted request in flight from t, when it started,
// and returns its slot, which left takes back.
func (g *budgetGuard) started(t time.Time) uint64 {
	n := g.slotOf(t)
	w := &g.slots[n%guardSlots]
	for {
		v := w.Load()
		next := n<<guardCountBits | 1 // the word held an older slot: reuse it
		if v>>guardCountBits == n {
			next = v + 1
		}
		if w.CompareAndSwap(v, next) {
			return n
		}
	}
}

// left uncounts a request of slot n that was answered; one whose word
// was reused since (it outlived the ring) is not counted anyway.
func (g *budgetGuard) left(n uint64) {
	w := &g.slots[n%guardSlots]
	for {
		v := w.Load()
		if v>>guardCountBits != n || v&(1<<guardCountBits-1) == 0 || w.CompareAndSwap(v, v-1) {
			return
		}
	}
}

// stalled reports whether more than a tenth of the requests in flight at
// now have waited longer than half the budget.
func (g *budgetGuard) stalled(now time.Time) bool {
	cur := g.slotOf(now)
	var old, all uint64
	for k := range uint64(guardSlots) {
		n := (cur - k) & guardSlotMask // slot numbers wrap at the mask
		v := g.slots[n%guardSlots].Load()
		if v>>guardCountBits != n {
			continue
		}
		c := v & (1<<guardCountBits - 1)
		all += c
		if k > guardOldSlots {
			old += c
		}
	}
	return all >= guardMinSamples && float64(old) > guardSlowShare*float64(all)
}

// tripOnAge caps the requests in flight as a slow window does, once a
// window at most; n is the in-flight count that saw the stall, which a
// window closing meanwhile may have dropped from the peak.
func (g *budgetGuard) tripOnAge(now time.Time, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.aged.IsZero() && now.Sub(g.aged) < g.window {
		return
	}
	g.aged = now
	g.moveLocked(g.halvedLocked(max(g.peak.Load(), n)), "in flight too long", int(n))
}

// moveLocked sets the cap to c, logging the move and what caused it
// (peak: the in-flight count it read).
func (g *budgetGuard) moveLocked(c int64, why string, peak int) {
	if old := g.cap.Load(); old != c {
		g.log.Debug("budget guard", "cap", c, "was", old, "why", why, "peak", peak, "limit", g.limit())
	}
	g.cap.Store(c)
}

// halvedLocked is the cap after a slow spell whose in-flight peak was
// peak: half the smaller of the cap and the peak, never below the floor.
func (g *budgetGuard) halvedLocked(peak int64) int64 {
	c := g.cap.Load()
	if c == 0 || c > peak {
		c = peak
	}
	return max(c/2, int64(g.floor))
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
	why := "answers slow"
	switch {
	case float64(g.late) > guardSlowShare*float64(g.answers):
		c = g.halvedLocked(peak)
	case g.late == 0 && c > 0 && !g.stalled(now):
		why = "answers fast"
		c *= 2
		if c >= int64(g.limit()) {
			c = 0
		}
	}
	g.moveLocked(c, why, int(peak))
	g.start, g.answers, g.late = now, 0, 0
}

// capped is the cap in force, 0 when there is none.
func (g *budgetGuard) capped() int { return int(g.cap.Load()) }
