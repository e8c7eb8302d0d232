package client

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// User is a signed-in account: its user id and the dev token it sends.
type User struct {
	ID    int64
	Token string
}

// WithRetryAfter calls fn again after each RATE_LIMITED answer, waiting as
// the answer's Retry-After header says, up to ten times.
func WithRetryAfter[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := fn()
		var answer *APIError
		if attempt == 10 || !errors.As(err, &answer) || answer.Code != "RATE_LIMITED" {
			return v, err
		}
		wait, convErr := strconv.Atoi(answer.RetryAfter)
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
