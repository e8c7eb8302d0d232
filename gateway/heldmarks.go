package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
)

// heldMarks are the marks of the accepted keys (an accepted key's order,
// an unanswered key's mark) that this replica could not write to Redis,
// held in memory until Redis takes them. A mark lost would let a
// shortcut refuse a retry whose first request made an order: SOLD_OUT
// to a buyer who holds one. Lookups read the held marks before Redis, so
// this replica answers such a retry at once, Redis or not; the other
// replicas read the mark from Redis once RunHeldMarks has written it,
// within heldMarksInterval of Redis's return.
type heldMarks struct {
	clock clock.Clock
	max   int
	// n is len(marks), read without the lock: the lookup of every buy a
	// shortcut refuses asks, and nearly always finds none held.
	n     atomic.Int64
	mu    sync.Mutex
	marks map[string]heldMark
}

type heldMark struct {
	value   string
	expires time.Time
}

// Bounds of the held marks.
const (
	// maxHeldMarks bounds the marks one replica holds (about 10 MB):
	// half a minute of a spike's accepted buys (≈1,700/s on the demo's
	// machine) while its Redis is down. Past it a mark is dropped and
	// logged, and its retry may meet a shortcut's refusal, as before.
	maxHeldMarks = 1 << 16
	// heldMarksInterval is how often RunHeldMarks offers the held marks
	// to Redis.
	heldMarksInterval = 250 * time.Millisecond
	// heldMarksBatch is how many marks one pipeline writes.
	heldMarksBatch = 1000
	// minHeldMarkTTL: a mark due to expire sooner is dropped, not
	// written (Redis refuses an expiry under a millisecond).
	minHeldMarkTTL = time.Second
)

func newHeldMarks(c clock.Clock, maxMarks int) *heldMarks {
	return &heldMarks{clock: c, max: maxMarks, marks: map[string]heldMark{}}
}

// hold keeps the mark name = value for ttl; false when the held marks
// are full and it was dropped.
func (h *heldMarks) hold(name, value string, ttl time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.marks[name]; !ok && len(h.marks) >= h.max {
		return false
	}
	h.marks[name] = heldMark{value: value, expires: h.clock.Now().Add(ttl)}
	h.n.Store(int64(len(h.marks)))
	return true
}

// get returns the held mark name, unless it has expired.
func (h *heldMarks) get(name string) (string, bool) {
	if h.n.Load() == 0 {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.marks[name]
	if !ok || !h.clock.Now().Before(m.expires) {
		return "", false
	}
	return m.value, true
}

// size is how many marks are held.
func (h *heldMarks) size() int { return int(h.n.Load()) }

// write offers the held marks to rdb, heldMarksBatch to a pipeline, each
// with the time it has left, and lets go of each one Redis took. It
// stops at the first pipeline that fails: Redis is still away.
func (h *heldMarks) write(ctx context.Context, rdb redis.Cmdable) error {
	for {
		names, marks := h.batch()
		if len(names) == 0 {
			return nil
		}
		now := h.clock.Now()
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, name := range names {
				p.Set(ctx, name, marks[i].value, marks[i].expires.Sub(now))
			}
			return nil
		})
		h.mu.Lock()
		for i, cmd := range cmds {
			// A mark held again meanwhile (the same value, a later
			// expiry) is kept for the next round.
			if cmd.Err() == nil && h.marks[names[i]] == marks[i] {
				delete(h.marks, names[i])
			}
		}
		h.n.Store(int64(len(h.marks)))
		h.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// batch returns up to heldMarksBatch held marks to write, dropping those
// too close to their expiry to be worth it.
func (h *heldMarks) batch() ([]string, []heldMark) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	names := make([]string, 0, min(len(h.marks), heldMarksBatch))
	marks := make([]heldMark, 0, cap(names))
	for name, m := range h.marks {
		if m.expires.Sub(now) < minHeldMarkTTL {
			delete(h.marks, name)
			continue
		}
		names, marks = append(names, name), append(marks, m)
		if len(names) == heldMarksBatch {
			break
		}
	}
	h.n.Store(int64(len(h.marks)))
	return names, marks
}

// RunHeldMarks writes the accepted keys' marks this replica holds to
// Redis, every heldMarksInterval, until ctx ends. The service writes
// them once more after its last requests have drained (WriteHeldMarks).
func (g *Gateway) RunHeldMarks(ctx context.Context) error {
	if g.accepted.rdb == nil {
		<-ctx.Done()
		return nil
	}
	return sweep.Every(ctx, heldMarksInterval, g.WriteHeldMarks)
}

// WriteHeldMarks offers the marks this replica holds to Redis once,
// within the call budget: a replica that stops loses those it still
// holds.
func (g *Gateway) WriteHeldMarks(ctx context.Context) {
	a := g.accepted
	if a.rdb == nil || a.held.size() == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, g.opts.CallTimeout)
	defer cancel()
	if err := a.held.write(wctx, a.rdb); err != nil {
		g.log.WarnContext(ctx, "write held accepted-key marks", "held", a.held.size(), "err", err)
	}
}
