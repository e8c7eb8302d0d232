package sweep

import (
	"context"
	"time"
)

// Every calls round every interval until ctx ends, and then returns nil:
// the loop of the platform's periodic workers (the refund sweep, the
// catalogue's filter rebuild, the degrade controller's tick). A round that
// overruns the interval delays the next one; the ticks it missed are
// dropped, not queued.
func Every(ctx context.Context, interval time.Duration, round func(context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			round(ctx)
		}
	}
}
