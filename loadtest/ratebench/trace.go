// Package ratebench replays one bursty arrival trace through each way of
// limiting a rate the field knows (fixed window, sliding window log and
// counter, leaky bucket, token bucket, GCRA) and through the adaptive
// concurrency limit the gateway uses, and records what each admitted and
// refused every 100 ms, the largest burst it let through, the memory one
// key's state costs and the Redis round trips one decision costs.
// docs/rate-limiting.md reads its figures.
package ratebench

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// TraceConfig is a steady Poisson stream of arrivals with periodic
// bursts: Base arrivals a second, BurstFactor times that during BurstLen
// out of every BurstEvery (the first burst starts at BurstEvery/2).
type TraceConfig struct {
	Base        float64
	BurstFactor float64
	BurstLen    time.Duration
	BurstEvery  time.Duration
	Duration    time.Duration
	Seed        uint64
}

// DefaultTrace is the trace of `make bench`: 200 arrivals a second with
// a 5× burst (1,000 a second) of 300 ms every second, for 3 s, seed 13.
var DefaultTrace = TraceConfig{Base: 200, BurstFactor: 5, BurstLen: 300 * time.Millisecond,
	BurstEvery: time.Second, Duration: 3 * time.Second, Seed: 13}

// String describes the trace in one line.
func (c TraceConfig) String() string {
	return fmt.Sprintf("%.0f/s Poisson with %.0f× bursts of %s every %s, for %s (seed %d)",
		c.Base, c.BurstFactor, c.BurstLen, c.BurstEvery, c.Duration, c.Seed)
}

// inBurst says whether offset t falls in a burst.
func (c TraceConfig) inBurst(t time.Duration) bool {
	phase := (t + c.BurstEvery/2) % c.BurstEvery
	return phase < c.BurstLen
}

// Arrivals returns the arrival offsets from the trace's start, in order:
// the same for the same config. The rate changes at burst edges; the
// exponential gaps are drawn at the rate in force where each gap starts,
// clipped to the next edge so a burst is never stepped over.
func (c TraceConfig) Arrivals() []time.Duration {
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	var out []time.Duration
	for t := time.Duration(0); ; {
		r := c.Base
		if c.inBurst(t) {
			r *= c.BurstFactor
		}
		gap := time.Duration(rng.ExpFloat64() / r * float64(time.Second))
		if edge := c.nextEdge(t); t+gap >= edge {
			// Memoryless: restart the draw at the edge with the new rate.
			t = edge
			continue
		}
		t += gap
		if t >= c.Duration {
			return out
		}
		out = append(out, t)
	}
}

// nextEdge is the first burst start or end after t.
func (c TraceConfig) nextEdge(t time.Duration) time.Duration {
	cycle := (t + c.BurstEvery/2) / c.BurstEvery * c.BurstEvery // start of the burst at or before t+E/2, shifted
	start := cycle - c.BurstEvery/2
	for _, e := range []time.Duration{start, start + c.BurstLen, start + c.BurstEvery, start + c.BurstEvery + c.BurstLen} {
		if e > t {
			return e
		}
	}
	return start + 2*c.BurstEvery
}
