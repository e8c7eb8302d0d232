// Package budget shares out the time a caller gave a request. A request
// arrives with a deadline (the gateway's call budget, carried by gRPC);
// the work inside it that may be abandoned (a payment channel that is
// slow, a step a sweep finishes later) gets a share of what is left, so
// the answer still reaches the caller in time instead of the whole
// request ending DEADLINE_EXCEEDED.
package budget

import (
	"context"
	"time"
)

// Share returns a context that ends once num/den of the time left to
// ctx's deadline has passed, or when ctx ends. Without a deadline there is
// nothing to share: it returns ctx as it is.
func Share(ctx context.Context, num, den int64) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || num >= den {
		return context.WithCancel(ctx)
	}
	left := time.Until(deadline)
	return context.WithTimeout(ctx, time.Duration(int64(left)/den*num))
}
