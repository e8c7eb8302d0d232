package order

import (
	"context"
	"log/slog"
	"time"
)

// EventType is the step of an order's life an Event reports.
type EventType string

// The steps orders.events carries. EventExpired and EventCancelled are
// the statuses the order ends in.
const (
	EventStored    EventType = "STORED"
	EventPaid      EventType = "PAID"
	EventRefunded  EventType = "REFUNDED"
	EventExpired   EventType = EventType(StatusExpired)
	EventCancelled EventType = EventType(StatusCancelled)
)

// Event is one step of a stored order's life, as the topic orders.events
// carries it (orderv1.OrderEvent). The store writes it to its outbox in
// the statement or transaction that makes the step, so a step is
// committed exactly when its event is; the Relay publishes it at least
// once, and readers drop repeats by (OrderID, Type, Ref).
type Event struct {
	// ID is the outbox row's, ascending in commit order within a
	// replica's claims; it is not carried on the topic.
	ID         int64
	OrderID    int64
	Type       EventType
	Kind       Kind
	ActivityID int64 // 0 for regular orders
	// Amount is in cents: the payable of a STORED or PAID order, what a
	// refund returns for REFUNDED, 0 for an order ended unpaid.
	Amount  int64
	Channel string // the paying channel of PAID
	Ref     int64  // the refund id of REFUNDED
	// At is when the step happened, by the clock of the service that
	// made it: the order's creation for STORED (the consumer stores what
	// the placing replica created), the payment's time for PAID, the
	// refund's for REFUNDED, the expiring or cancelling replica's for the
	// ends.
	At time.Time
}

// Outbox is the store's table of events not yet published.
type Outbox interface {
	// Relay claims up to limit of the oldest unpublished events that no
	// other relay holds, hands them to publish and, when it returns nil,
	// deletes them; it returns how many it claimed. An error (or a
	// crash) anywhere leaves the events to be claimed again.
	Relay(ctx context.Context, limit int, publish func(context.Context, []Event) error) (int, error)
}

// EventPublisher puts events on orders.events and returns once the log
// has every one of them.
type EventPublisher interface {
	PublishEvents(ctx context.Context, events []Event) error
}

// RelayConfig configures a Relay. Zero values take the defaults.
type RelayConfig struct {
	Outbox    Outbox
	Publisher EventPublisher
	// Batch is the most events one claim takes (default 500); Poll is
	// how long the relay waits after a claim that found fewer (default
	// 100ms); Retry how long after a failure (default 1s), so a broker
	// that is down costs a claim and a warning a second, not ten.
	Batch       int
	Poll, Retry time.Duration
	Logger      *slog.Logger
}

// Defaults of RelayConfig.
const (
	DefaultRelayBatch = 500
	DefaultRelayPoll  = 100 * time.Millisecond
	DefaultRelayRetry = time.Second
)

// Relay moves the outbox's events to orders.events. Every replica runs
// one; their claims skip each other's rows, so they share the work.
type Relay struct{ cfg RelayConfig }

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultRelayBatch
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultRelayPoll
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRelayRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg}
}

// Run relays until ctx ends: a full claim is followed at once by the
// next, anything less by a pause of Poll, a failure by one of Retry.
func (r *Relay) Run(ctx context.Context) error {
	for {
		n, err := r.cfg.Outbox.Relay(ctx, r.cfg.Batch, r.cfg.Publisher.PublishEvents)
		pause := r.cfg.Poll
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.WarnContext(ctx, "order events not relayed, will retry", "err", err)
			pause = r.cfg.Retry
		case err == nil && n == r.cfg.Batch:
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}
