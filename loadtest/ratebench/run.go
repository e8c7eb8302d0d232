package ratebench

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/flashsale/flashsale/gateway"
)

// Config is one run: the trace, the nominal limit every rate limiter is
// given, the simulated service behind the adaptive limit, and where the
// Redis-backed limiter keeps its state.
type Config struct {
	Trace TraceConfig
	// Rate per second and Burst: the token bucket, GCRA and the leaky
	// bucket's queue take them as they are; the window limiters admit
	// Burst per Burst/Rate (20 per 200 ms for 100/s, burst 20), the same
	// average rate and the same most-at-once.
	Rate, Burst int
	// Keys is how many keys' state the memory figure creates.
	Keys int
	// Redis is the server GCRA runs against.
	RedisAddr string
	// Service is the simulated service behind the adaptive limit: Workers
	// requests run in parallel in Latency each; past that, every request
	// in flight takes proportionally longer (latency × in-flight/Workers).
	Service Service
}

// Service is the simulated downstream of the adaptive concurrency limit.
type Service struct {
	Workers int
	Latency time.Duration
}

// DefaultConfig is `make bench`'s: 100/s, burst 20, 100,000 keys for
// memory, a service of 4 workers at 10 ms (400 requests/s at most).
func DefaultConfig(redisAddr string) Config {
	return Config{Trace: DefaultTrace, Rate: 100, Burst: 20, Keys: 100_000, RedisAddr: redisAddr,
		Service: Service{Workers: 4, Latency: 10 * time.Millisecond}}
}

// window is the window limiters' window: Burst/Rate.
func (c Config) window() time.Duration {
	return time.Duration(c.Burst) * time.Second / time.Duration(c.Rate)
}

// Bucket is the width of the per-interval counts.
const Bucket = 100 * time.Millisecond

// Result is one limiter's replay of the trace.
type Result struct {
	Name string
	// Clock is "virtual" (decisions at the trace's own times) or
	// "real time" (the trace replayed at its pace on the wall clock).
	Clock string
	// Admitted and Refused per Bucket of the trace.
	Admitted, Refused []int
	// BurstTolerance is the most admitted in any Bucket-long span
	// (sliding, not only the aligned buckets); MostInWindow the most in
	// any span of the window limiters' window (Burst/Rate), where a
	// limit that held exactly would admit at most Burst.
	BurstTolerance, MostInWindow int
	// BytesPerKey is the memory one key's state costs (Go heap, or
	// Redis MEMORY USAGE); MemoryNote says which.
	BytesPerKey float64
	MemoryNote  string
	// Concurrency marks the adaptive limit, which bounds requests in
	// flight rather than a rate.
	Concurrency bool
	// Limit is the adaptive limit's in-flight bound at the end of each
	// Bucket (nil for the rate limiters).
	Limit []int
	// RoundTrips is Redis round trips per decision (0: in process).
	RoundTrips float64
	// AdmittedAt are the trace offsets of the admitted arrivals.
	AdmittedAt []time.Duration
}

// TotalAdmitted and TotalRefused sum the buckets.
func (r Result) TotalAdmitted() int { return sum(r.Admitted) }

// TotalRefused is the number of arrivals refused.
func (r Result) TotalRefused() int { return sum(r.Refused) }

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// Report is a whole run: the trace as offered and every limiter's result.
type Report struct {
	Config   Config
	Offered  []int
	Arrivals int
	Results  []Result
}

// epoch is the virtual clock's start: a whole second, so the window
// limiters' windows start with the trace.
var epoch = time.Unix(1_800_000_000, 0)

// Run replays the trace through every limiter, the virtual-clock ones
// first, then the real-time ones one after another.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	arrivals := cfg.Trace.Arrivals()
	rep := &Report{Config: cfg, Arrivals: len(arrivals), Offered: make([]int, buckets(cfg.Trace.Duration))}
	for _, a := range arrivals {
		rep.Offered[a/Bucket]++
	}
	window := cfg.window()
	for _, v := range []struct {
		name string
		make func() interface{ Allow(time.Time) bool }
	}{
		{fmt.Sprintf("fixed window (%d per %s)", cfg.Burst, window), func() interface{ Allow(time.Time) bool } {
			return &FixedWindow{Limit: cfg.Burst, Window: window}
		}},
		{fmt.Sprintf("sliding log (window, %d per %s)", cfg.Burst, window), func() interface{ Allow(time.Time) bool } {
			return &SlidingLog{Limit: cfg.Burst, Window: window}
		}},
		{fmt.Sprintf("sliding counter (window, %d per %s)", cfg.Burst, window), func() interface{ Allow(time.Time) bool } {
			return &SlidingCounter{Limit: cfg.Burst, Window: window}
		}},
		{"token bucket (x/time/rate)", func() interface{ Allow(time.Time) bool } {
			return tokenBucket{rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)}
		}},
	} {
		lim := v.make()
		res := newResult(v.name, "virtual", cfg.Trace.Duration)
		for _, a := range arrivals {
			res.record(a, lim.Allow(epoch.Add(a)))
		}
		// A key's state once it has admitted a full burst (the sliding
		// log's is largest then).
		res.BytesPerKey = heapPerKey(cfg.Keys, func() any {
			l := v.make()
			for range cfg.Burst {
				l.Allow(epoch)
			}
			return l
		})
		res.MemoryNote = "Go heap"
		rep.Results = append(rep.Results, res.finish(cfg.window()))
	}

	leaky, err := replayLeaky(ctx, cfg, arrivals)
	if err != nil {
		return nil, err
	}
	gcra, err := replayGCRA(ctx, cfg, arrivals)
	if err != nil {
		return nil, err
	}
	adaptive, err := replayAdaptive(ctx, cfg, arrivals)
	if err != nil {
		return nil, err
	}
	rep.Results = append(rep.Results, leaky, gcra, adaptive)
	return rep, nil
}

// tokenBucket decides on the virtual clock through AllowN(t).
type tokenBucket struct{ *rate.Limiter }

func (t tokenBucket) Allow(now time.Time) bool { return t.AllowN(now, 1) }

func buckets(d time.Duration) int { return int((d + Bucket - 1) / Bucket) }

func newResult(name, clock string, d time.Duration) *Result {
	return &Result{Name: name, Clock: clock, Admitted: make([]int, buckets(d)), Refused: make([]int, buckets(d))}
}

func (r *Result) record(at time.Duration, ok bool) {
	if ok {
		r.Admitted[at/Bucket]++
		r.AdmittedAt = append(r.AdmittedAt, at)
	} else {
		r.Refused[at/Bucket]++
	}
}

func (r *Result) finish(window time.Duration) Result {
	r.BurstTolerance = MaxInSpan(r.AdmittedAt, Bucket)
	r.MostInWindow = MaxInSpan(r.AdmittedAt, window)
	return *r
}

// MaxInSpan is the most of the sorted times ts that fall in any span
// [t, t+d).
func MaxInSpan(ts []time.Duration, d time.Duration) int {
	best, lo := 0, 0
	for hi, t := range ts {
		for ts[lo] <= t-d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// heapPerKey is the Go heap that n keys' states made by mk hold, per key.
func heapPerKey(n int, mk func() any) float64 {
	keep := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // the second collects what the first's finalizers freed
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = mk()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// realTime replays arrivals at their pace from now: decide is called,
// with the arrival's offset, at (or just after) that offset, and its
// answer is recorded at the offset.
func realTime(ctx context.Context, res *Result, arrivals []time.Duration, decide func(at time.Duration) (bool, error)) error {
	t0 := time.Now()
	for _, a := range arrivals {
		if wait := a - time.Since(t0); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		ok, err := decide(a)
		if err != nil {
			return err
		}
		res.record(a, ok)
	}
	return nil
}

// replayLeaky runs the leaky bucket (漏桶) as a queue drained by
// go.uber.org/ratelimit, which paces callers of Take one slot every
// 1/Rate. It only blocks, so admission is modelled on it: an arrival
// joins the queue (and waits in Take for its slot) when fewer than
// Burst are waiting, so its slot is at most Burst/Rate away (the wait
// budget), and is refused otherwise. Real time: Take reads time.Now.
func replayLeaky(ctx context.Context, cfg Config, arrivals []time.Duration) (Result, error) {
	res := newResult("leaky bucket (go.uber.org/ratelimit, queue of burst)", "real time", cfg.Trace.Duration)
	pacer := ratelimit.New(cfg.Rate, ratelimit.WithoutSlack)
	var waiting atomic.Int64
	var wg sync.WaitGroup
	err := realTime(ctx, res, arrivals, func(time.Duration) (bool, error) {
		if waiting.Load() >= int64(cfg.Burst) {
			return false, nil
		}
		waiting.Add(1)
		wg.Go(func() { pacer.Take(); waiting.Add(-1) })
		return true, nil
	})
	wg.Wait()
	if err != nil {
		return Result{}, err
	}
	res.BytesPerKey = heapPerKey(cfg.Keys, func() any { return ratelimit.New(cfg.Rate, ratelimit.WithoutSlack) })
	res.MemoryNote = "Go heap, the pacer"
	return res.finish(cfg.window()), nil
}

// roundTrips counts the commands and pipelines a client sends: each is
// one round trip.
type roundTrips struct{ n atomic.Int64 }

func (*roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}

func (c *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// replayGCRA runs the per-user limit's library, go-redis/redis_rate (GCRA
// in one Lua script), against real Redis, counting round trips with a
// client hook. Real time: the script reads Redis's clock.
func replayGCRA(ctx context.Context, cfg Config, arrivals []time.Duration) (Result, error) {
	res := newResult("GCRA (go-redis/redis_rate, Redis)", "real time", cfg.Trace.Duration)
	rdb := goredis.NewClient(&goredis.Options{Addr: cfg.RedisAddr})
	defer rdb.Close()
	counter := &roundTrips{}
	rdb.AddHook(counter)
	lim := redis_rate.NewLimiter(rdb)
	limit := redis_rate.Limit{Rate: cfg.Rate, Burst: cfg.Burst, Period: time.Second}
	key := fmt.Sprintf("ratebench:%d", time.Now().UnixNano())
	// Load the script first, as a running gateway has, so the first
	// decision's NOSCRIPT retry is not counted.
	if _, err := lim.Allow(ctx, key+":warm", limit); err != nil {
		return Result{}, fmt.Errorf("ratebench: gcra: %w", err)
	}
	before := counter.n.Load()
	err := realTime(ctx, res, arrivals, func(time.Duration) (bool, error) {
		r, err := lim.Allow(ctx, key, limit)
		if err != nil {
			return false, fmt.Errorf("ratebench: gcra: %w", err)
		}
		return r.Allowed > 0, nil
	})
	if err != nil {
		return Result{}, err
	}
	res.RoundTrips = float64(counter.n.Load()-before) / float64(len(arrivals))
	if res.BytesPerKey, err = gcraBytesPerKey(ctx, rdb, lim, limit, key, cfg.Keys); err != nil {
		return Result{}, err
	}
	res.MemoryNote = "Redis MEMORY USAGE"
	return res.finish(cfg.window()), nil
}

// gcraBytesPerKey is the mean MEMORY USAGE of keys, each right after its
// first request: the script sets a key's expiry to when its bucket is
// full again (Burst/Rate), so the keys do not stay to be counted
// together. A sample of at most 1,000 keys.
func gcraBytesPerKey(ctx context.Context, rdb *goredis.Client, lim *redis_rate.Limiter, limit redis_rate.Limit, prefix string, n int) (float64, error) {
	n = min(n, 1000)
	var total int64
	for i := range n {
		k := prefix + ":mem:" + strconv.Itoa(i)
		if _, err := lim.Allow(ctx, k, limit); err != nil {
			return 0, fmt.Errorf("ratebench: gcra: %w", err)
		}
		b, err := rdb.MemoryUsage(ctx, "rate:"+k).Result()
		if err != nil {
			return 0, fmt.Errorf("ratebench: memory usage: %w", err)
		}
		total += b
	}
	return float64(total) / float64(n), nil
}

// replayAdaptive runs failsafe-go's adaptive limiter, built as the
// gateway builds its flash-sale admission (gateway.DefaultSeckillAdmission
// and the window of gateway/admission.go), in front of the simulated
// Service. It bounds requests in flight, not requests per second: a
// request takes a permit or is refused at once, and gives it back with
// its latency, from which the limiter moves the bound. Real time: the
// limiter and the service read time.Now.
func replayAdaptive(ctx context.Context, cfg Config, arrivals []time.Duration) (Result, error) {
	res := newResult("adaptive concurrency (failsafe-go adaptivelimiter)", "real time", cfg.Trace.Duration)
	res.Concurrency = true
	l := gateway.DefaultSeckillAdmission
	build := func() adaptivelimiter.AdaptiveLimiter[any] {
		return adaptivelimiter.NewBuilder[any]().
			WithLimits(uint(l.Min), uint(l.Max), uint(l.Initial)).
			WithRecentWindow(250*time.Millisecond, 2500*time.Millisecond, 50).
			Build()
	}
	lim := build()
	svc := cfg.Service
	var inflight atomic.Int64
	var wg sync.WaitGroup
	res.Limit = make([]int, len(res.Admitted))
	err := realTime(ctx, res, arrivals, func(at time.Duration) (bool, error) {
		// The bound as the bucket's last decision found it.
		res.Limit[at/Bucket] = lim.Limit()
		p, ok := lim.TryAcquirePermit()
		if !ok {
			return false, nil
		}
		n := inflight.Add(1)
		wg.Go(func() {
			time.Sleep(svc.Latency * time.Duration(max(n, int64(svc.Workers))) / time.Duration(svc.Workers))
			inflight.Add(-1)
			p.Record()
		})
		return true, nil
	})
	wg.Wait()
	if err != nil {
		return Result{}, err
	}
	res.BytesPerKey = heapPerKey(min(cfg.Keys, 10_000), func() any { return build() })
	res.MemoryNote = "Go heap, one per route group"
	return res.finish(cfg.window()), nil
}
