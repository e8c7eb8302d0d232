package order

import (
	"log/slog"
	"time"
)

// What the use cases share is handed to each explicitly: the clock, the
// id generator (NextID), the logger and the Observer come in each one's
// config, and cancelling and refunding find orders through the one
// Lookup. The defaults below fill a nil logger or observer.

// releaseTimeout bounds a compensating release, which must run even when
// the caller has gone.
const releaseTimeout = 5 * time.Second

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
