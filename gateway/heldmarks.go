package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/sweep"
)

// heldMarks are the marks of the accepted keys (an accepted key's order,
// an unanswered key's mark) that this replica could not write to Redis,
// held in memory until Redis takes them. A mark lost would let a
// shortcut refuse a retry whose first request made an order: SOLD_OUT
// to a buyer who holds one. Lookups read the held marks before Redis, so
// this replica answers such a retry at once, Redis or not; the other
// replicas read the mark from Redis once RunHeldMarks has written it,
// within heldMarksInterval of Redis's return. A pressure test's marks are
// held apart from real ones (heldName): Redis keeps them under the
// shadow prefix, which the client adds for a marked context, so each is
// answered to its own class and written with a context of its class.
type heldMarks struct {
	clock clock.Clock
	max   int
	// n is len(marks), read without the lock: the lookup of every buy a
	// shortcut refuses asks, and nearly always finds none held.
	n     atomic.Int64
	mu    sync.Mutex
	marks map[heldName]heldMark
	// marked counts the pressure test's marks among marks: they may take
	// at most half of max, so that a pressure test running into a Redis
	// outage never crowds out a real buyer's mark.
	marked int
}

// heldName is a held mark's name and traffic class.
type heldName struct {
	name   string
	marked bool // a pressure test's (shadow.Is)
}

func heldNameOf(ctx context.Context, name string) heldName {
	return heldName{name: name, marked: shadow.Is(ctx)}
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
	return &heldMarks{clock: c, max: maxMarks, marks: map[heldName]heldMark{}}
}

// hold keeps the mark name = value of ctx's traffic class for ttl; false
// when the held marks are full and it was dropped.
func (h *heldMarks) hold(ctx context.Context, name, value string, ttl time.Duration) bool {
	key := heldNameOf(ctx, name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.marks[key]; !ok {
		if len(h.marks) >= h.max || key.marked && h.marked >= h.max/2 {
			return false
		}
		if key.marked {
			h.marked++
		}
	}
	h.marks[key] = heldMark{value: value, expires: h.clock.Now().Add(ttl)}
	h.n.Store(int64(len(h.marks)))
	return true
}

// drop lets go of the mark key; h.mu is held.
func (h *heldMarks) drop(key heldName) {
	if _, ok := h.marks[key]; ok && key.marked {
		h.marked--
	}
	delete(h.marks, key)
}

// get returns the held mark name of ctx's traffic class, unless it has
// expired.
func (h *heldMarks) get(ctx context.Context, name string) (string, bool) {
	if h.n.Load() == 0 {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.marks[heldNameOf(ctx, name)]
	if !ok || !h.clock.Now().Before(m.expires) {
		return "", false
	}
	return m.value, true
}

// size is how many marks are held.
func (h *heldMarks) size() int { return int(h.n.Load()) }

// write offers the held marks to rdb, heldMarksBatch to a pipeline, each
// with the time it has left, and lets go of each one Redis took. The
// marks of each traffic class go in pipelines of their own, under a
// context of that class (the client prefixes a marked pipeline's keys).
// It stops at the first pipeline that fails: Redis is still away.
func (h *heldMarks) write(ctx context.Context, rdb redis.Cmdable) error {
	for i, cctx := range shadow.Contexts(ctx) {
		marked := i == 1
		for {
			names, marks := h.batch(marked)
			if len(names) == 0 {
				break
			}
			now := h.clock.Now()
			cmds, err := rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
				for k, name := range names {
					p.Set(cctx, name.name, marks[k].value, marks[k].expires.Sub(now))
				}
				return nil
			})
			h.mu.Lock()
			for k, cmd := range cmds {
				// A mark held again meanwhile (the same value, a later
				// expiry) is kept for the next round.
				if cmd.Err() == nil && h.marks[names[k]] == marks[k] {
					h.drop(names[k])
				}
			}
			h.n.Store(int64(len(h.marks)))
			h.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// batch returns up to heldMarksBatch held marks of one traffic class to
// write, dropping those too close to their expiry to be worth it.
func (h *heldMarks) batch(marked bool) ([]heldName, []heldMark) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	names := make([]heldName, 0, min(len(h.marks), heldMarksBatch))
	marks := make([]heldMark, 0, cap(names))
	for name, m := range h.marks {
		if name.marked != marked {
			continue
		}
		if m.expires.Sub(now) < minHeldMarkTTL {
			h.drop(name)
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
