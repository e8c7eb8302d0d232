package order

import (
	"context"
	"log/slog"
	"time"

	"github.com/flashsale/flashsale/platform/budget"
)

// What the use cases share is handed to each explicitly: the clock, the
// id generator (NextID), the logger and the Observer come in each one's
// config, and cancelling and refunding find orders through the one
// Lookup. The defaults below fill a nil logger or observer.

// releaseTimeout bounds a compensating release, which must run even when
// the caller has gone.
const releaseTimeout = 5 * time.Second

// afterCommit bounds the steps that follow a request's commit point (a
// refund's money going back, a cancelled order's stock going back) to
// three quarters of the time its caller has left. Each is idempotent and
// a sweep finishes what it leaves, so a slow channel or peer costs the
// request an answer that says so (a PENDING refund), never the answer:
// the last quarter carries it back before the caller's budget ends.
func afterCommit(ctx context.Context) (context.Context, context.CancelFunc) {
	return budget.Share(ctx, 3, 4)
}

// orDiscard returns l, or a logger that discards when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// orNop returns o, or an observer that hears nothing when o is nil.
func orNop(o Observer) Observer {
	if o == nil {
		return NopObserver{}
	}
	return o
}
