package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// SignIn gets dev tokens for n users with ids from firstID on, 32 requests
// at a time. Like any polite client it waits out a 429's Retry-After
// (the gateway rate-limits the token route too) and tries again.
func SignIn(ctx context.Context, cl *Client, firstID int64, n int) ([]User, error) {
	users := make([]User, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id := firstID + int64(i)
			tok, err := withRetryAfter(ctx, func() (string, error) { return cl.DevToken(ctx, id, "user") })
			if err != nil {
				errs <- fmt.Errorf("token for user %d: %w", id, err)
				return
			}
			users[i] = User{ID: id, Token: tok}
		})
	}
	wg.Wait()
	close(errs)
	return users, <-errs
}

// withRetryAfter calls fn again after each RATE_LIMITED answer, waiting as
// the answer's Retry-After header says, up to ten times.
func withRetryAfter[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := fn()
		var api *APIError
		if attempt == 10 || !errors.As(err, &api) || api.Code != "RATE_LIMITED" {
			return v, err
		}
		wait, convErr := strconv.Atoi(api.RetryAfter)
		if convErr != nil || wait < 1 {
			wait = 1
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(time.Duration(wait) * time.Second):
		}
	}
}
