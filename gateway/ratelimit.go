package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
)

// Limit is a token bucket: RPS tokens a second, at most Burst at once.
// A zero RPS means no limit.
type Limit struct {
	RPS   int
	Burst int
}

// MaxRate bounds a Limit's RPS and Burst: far beyond what a replica
// serves, and low enough that a burst's length in time (a second over
// RPS, times Burst) cannot overflow and wrap to a limit that refuses
// everyone.
const MaxRate = 1_000_000

// Valid reports whether l's RPS and Burst are within 0..MaxRate.
func (l Limit) Valid() bool {
	return l.RPS >= 0 && l.Burst >= 0 && l.RPS <= MaxRate && l.Burst <= MaxRate
}

// bucket is a local token bucket for one route. Each gateway replica has
// its own, so it protects this process (and what is behind it) from more
// than it can take, without a network hop. Its limit can change at run
// time (Consul KV); a nil limiter means no limit.
type bucket struct {
	lim   atomic.Pointer[rate.Limiter]
	clock clock.Clock
}

func newBucket(l Limit, c clock.Clock) *bucket {
	b := &bucket{clock: c}
	b.set(l)
	return b
}

// set replaces the bucket's limit; a changed limit starts with a full
// bucket.
func (b *bucket) set(l Limit) {
	if l.RPS <= 0 {
		b.lim.Store(nil)
		return
	}
	if cur := b.lim.Load(); cur != nil && cur.Limit() == rate.Limit(l.RPS) && cur.Burst() == max(l.Burst, 1) {
		return
	}
	b.lim.Store(rate.NewLimiter(rate.Limit(l.RPS), max(l.Burst, 1)))
}

// take spends a token, or says how long until one is there.
func (b *bucket) take() error {
	lim := b.lim.Load()
	if lim == nil {
		return nil
	}
	now := b.clock.Now()
	res := lim.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		// The request is refused, not delayed: give the token back so
		// refused requests do not push the bucket further into debt.
		res.CancelAt(now)
		return rateLimited("too many requests on this route", delay)
	}
	return nil
}

// userLimiter limits each user across every gateway replica: the bucket
// lives in Redis (GCRA in one Lua script), so a user who spreads requests
// over replicas gets no more than one replica would give.
// Its limit can change at run time; a nil limit means no limit.
type userLimiter struct {
	lim    *redis_rate.Limiter
	limit  atomic.Pointer[redis_rate.Limit]
	prefix string
}

func newUserLimiter(rdb redis.Cmdable, l Limit, prefix string) *userLimiter {
	if rdb == nil {
		return nil
	}
	u := &userLimiter{lim: redis_rate.NewLimiter(rdb), prefix: prefix}
	u.set(l)
	return u
}

// set replaces the per-user limit.
func (u *userLimiter) set(l Limit) {
	if u == nil {
		return
	}
	if l.RPS <= 0 {
		u.limit.Store(nil)
		return
	}
	u.limit.Store(&redis_rate.Limit{Rate: l.RPS, Burst: max(l.Burst, 1), Period: time.Second})
}

// allow spends one of the user's tokens.
func (u *userLimiter) allow(ctx context.Context, userID int64) error {
	if u == nil {
		return nil
	}
	limit := u.limit.Load()
	if limit == nil {
		return nil
	}
	res, err := u.lim.Allow(ctx, u.prefix+formatID(userID), *limit)
	if err != nil {
		return fmt.Errorf("user rate limit: %w", err)
	}
	if res.Allowed == 0 {
		return rateLimited("too many requests from this user", res.RetryAfter)
	}
	return nil
}

func rateLimited(msg string, retryAfter time.Duration) error {
	return &Error{Code: errcode.RateLimited, Message: msg, RetryAfter: max(retryAfter, time.Second)}
}
