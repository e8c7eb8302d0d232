package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Backoff retries a step that must not be given up while the process
// runs (a batch's mark, its insert, its dead letters), with exponential
// backoff from Min to Max (defaults 50ms and 5s).
type Backoff struct {
	Min, Max time.Duration
	Logger   *slog.Logger
}

// attemptTimeout bounds one attempt, which runs detached from the
// caller's context so that a stop finishes the batch in hand.
const attemptTimeout = 30 * time.Second

// Do runs op until it succeeds, until ctx ends. Each attempt runs
// detached from ctx (bounded by attemptTimeout) so that a stop does not
// cut a write short; a stop only ends the retries.
func (b Backoff) Do(ctx context.Context, what string, op func(context.Context) error) error {
	wait, most := b.Min, b.Max
	if wait <= 0 {
		wait = 50 * time.Millisecond
	}
	if most <= 0 {
		most = 5 * time.Second
	}
	log := orDiscard(b.Logger)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		log.WarnContext(ctx, "order consumer: retrying", "step", what, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
		wait = min(2*wait, most)
	}
}
