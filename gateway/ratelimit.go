package gateway

import (
	"context"
	"fmt"
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

// bucket is a local token bucket for one route. Each gateway replica has
// its own, so it protects this process (and what is behind it) from more
// than it can take, without a network hop.
type bucket struct {
	lim   *rate.Limiter
	clock clock.Clock
}

func newBucket(l Limit, c clock.Clock) *bucket {
	if l.RPS <= 0 {
		return nil
	}
	return &bucket{lim: rate.NewLimiter(rate.Limit(l.RPS), max(l.Burst, 1)), clock: c}
}

// take spends a token, or says how long until one is there.
func (b *bucket) take() error {
	if b == nil {
		return nil
	}
	now := b.clock.Now()
	res := b.lim.ReserveN(now, 1)
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
type userLimiter struct {
	lim    *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
}

func newUserLimiter(rdb redis.UniversalClient, l Limit, prefix string) *userLimiter {
	if rdb == nil || l.RPS <= 0 {
		return nil
	}
	return &userLimiter{
		lim:    redis_rate.NewLimiter(rdb),
		limit:  redis_rate.Limit{Rate: l.RPS, Burst: max(l.Burst, 1), Period: time.Second},
		prefix: prefix,
	}
}

// allow spends one of the user's tokens.
func (u *userLimiter) allow(ctx context.Context, userID int64) error {
	if u == nil {
		return nil
	}
	res, err := u.lim.Allow(ctx, u.prefix+formatID(userID), u.limit)
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
