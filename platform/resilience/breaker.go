// Package resilience holds the gRPC client's defences against a failing
// downstream: a circuit breaker per downstream (sony/gobreaker) as a unary
// client interceptor, so a dead or overloaded service is answered
// UNAVAILABLE at once instead of tying up every caller for a full timeout,
// and is probed again after a pause.
package resilience

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
)

// BreakerConfig tunes a breaker. Zero values take the defaults.
type BreakerConfig struct {
	// Name names the downstream in errors and state changes.
	Name string
	// The breaker opens once, within one Window (default 10s), at least
	// MinRequests calls were made (default 20) and at least
	// FailurePercent of them failed (default 50). A rate rather than a
	// run of failures: under a flash-sale spike a handful of calls in a
	// row may time out while the downstream is fine, and cutting it off
	// then would turn a few slow answers into seconds of refusals.
	MinRequests    uint32
	FailurePercent uint32
	Window         time.Duration
	// OpenFor is how long an open breaker refuses calls before letting
	// probes through (half-open; default 5s).
	OpenFor time.Duration
	// Probes is how many calls a half-open breaker lets through; that
	// many successes close it, one failure opens it again (default 1).
	Probes uint32
	// OnStateChange, when set, is told every transition (metrics, logs).
	OnStateChange func(name string, from, to gobreaker.State)
}

// Defaults of BreakerConfig.
const (
	DefaultMinRequests    = 20
	DefaultFailurePercent = 50
	DefaultWindow         = 10 * time.Second
	DefaultOpenFor        = 5 * time.Second
	DefaultProbes         = 1
)

// Breaker returns a unary client interceptor that runs every call through
// one circuit breaker. Only failures that say the downstream is in trouble
// count: DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, and
// UNAVAILABLE when the downstream did not answer it itself (a refused
// connection, a transport failure). Domain answers (NOT_FOUND, a sold-out
// FAILED_PRECONDITION...) are successes, and so is an UNAVAILABLE the
// downstream answered with the platform's error code (errcode.Answered):
// a service that says "this sale is closed while its stock is rebuilt"
// or "my broker is down" is up and answering, and cutting every call to
// it off (payments, the other sales) would spread one part's outage to
// the rest. A caller's own cancellation is not counted at all. While the
// breaker is open, calls fail at once with UNAVAILABLE.
func Breaker(cfg BreakerConfig) grpc.UnaryClientInterceptor {
	cfg.MinRequests = cmp.Or(cfg.MinRequests, DefaultMinRequests)
	if cfg.FailurePercent == 0 || cfg.FailurePercent > 100 {
		cfg.FailurePercent = DefaultFailurePercent
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = DefaultOpenFor
	}
	cfg.Probes = cmp.Or(cfg.Probes, DefaultProbes)
	minRequests, percent := cfg.MinRequests, cfg.FailurePercent
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: cfg.Probes,
		Interval:    cfg.Window,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= minRequests && uint64(c.TotalFailures)*100 >= uint64(c.Requests)*uint64(percent)
		},
		OnStateChange: cfg.OnStateChange,
		IsSuccessful:  func(err error) bool { return !troubled(err) },
		IsExcluded:    func(err error) bool { return status.Code(err) == codes.Canceled },
	})
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		_, err := cb.Execute(func() (struct{}, error) {
			return struct{}{}, invoker(ctx, method, req, reply, cc, opts...)
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return status.Errorf(codes.Unavailable, "%s: circuit breaker %s", cfg.Name, err)
		}
		return err
	}
}

// troubled reports whether err says the downstream itself is failing.
func troubled(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return !errcode.Answered(err)
	case codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.ResourceExhausted:
		return true
	}
	return false
}
