package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/event"
)

// OrderWriter stores orders in one transaction (the Postgres store). It
// skips those already stored and returns how many were new, and the
// conflicts: orders it refused because another order id holds their
// idempotency key.
type OrderWriter interface {
	Insert(ctx context.Context, orders []order.Order) (stored int, conflicts []order.Order, err error)
}

// Marker is the inventory as the consumer needs it: before a batch is
// stored, MarkOrdered marks every event's reservation as backing a stored
// order and answers, in the order of ps, whether the event may be stored.
// The mark is what makes the placing service's release of an order whose
// publish failed (ambiguously) lose the race instead of overselling.
type Marker interface {
	MarkOrdered(ctx context.Context, ps []order.Placed) ([]order.MarkOutcome, error)
}

// PendingDeleter drops in-flight records once their orders are stored.
type PendingDeleter interface {
	Delete(ctx context.Context, ps ...order.Placed) error
}

// Headers the consumer adds to a dead-lettered message, beside the
// original ones.
const (
	HeaderDLQReason    = "dlq-reason"
	HeaderDLQTopic     = "dlq-source-topic"
	HeaderDLQPartition = "dlq-source-partition"
	HeaderDLQOffset    = "dlq-source-offset"
	HeaderDLQGroup     = "dlq-source-group"
)

// Reasons (HeaderDLQReason) of the events the inventory says not to store.
const (
	// ReasonReleasedUnpublished: the placing service could not publish the
	// event, released its stock and told the buyer the order failed; the
	// event arrived anyway.
	ReasonReleasedUnpublished = "reservation released as unpublished"
	// ReasonNoReservation: no reservation backs the event.
	ReasonNoReservation = "no reservation"
)

// Why an event was dead-lettered, as the Observer hears it: a short,
// fixed label for each reason (the message's HeaderDLQReason has the
// details).
const (
	DeadLetterPoison              = "poison"               // unreadable or invalid
	DeadLetterReleasedUnpublished = "released_unpublished" // ReasonReleasedUnpublished
	DeadLetterNoReservation       = "no_reservation"       // ReasonNoReservation
	DeadLetterKeyConflict         = "key_conflict"         // another order holds its idempotency key
)

// DeadLetterReasons lists the labels above.
var DeadLetterReasons = []string{DeadLetterPoison, DeadLetterReleasedUnpublished, DeadLetterNoReservation, DeadLetterKeyConflict}

// ConsumerConfig configures a Consumer. Zero values take the defaults.
type ConsumerConfig struct {
	Brokers []string
	// Topic (default orders.placed), DLQTopic (orders.placed.dlq) and
	// Group (order-writer).
	Topic, DLQTopic, Group string
	Store                  OrderWriter
	Pending                PendingDeleter
	// Inventory marks each batch's reservations before the batch is
	// stored.
	Inventory Marker
	// Observer hears of the orders stored and the events dead-lettered,
	// once each is written (nil: nobody).
	Observer order.Observer
	Logger   *slog.Logger
	// A batch closes at BatchSize messages (default 500) or BatchWait
	// after its first message (default 20ms), whichever comes first.
	BatchSize int
	BatchWait time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of a
	// failed write or mark (defaults 50ms and 5s).
	RetryMin, RetryMax time.Duration
	// AfterWrite, when set, runs after a batch is stored and before its
	// offsets are committed. An error stops the consumer there, without
	// committing, as a crash would (the kill test uses it).
	AfterWrite func(ctx context.Context, stored int) error
}

// Consumer turns OrderPlaced events into PENDING_PAYMENT orders, each
// only once the inventory has marked its reservation ordered.
type Consumer struct {
	cfg    ConsumerConfig
	tracer trace.Tracer
}

// attemptTimeout bounds one write attempt, which runs detached from the
// consumer's context so that a stop finishes the batch in hand.
const attemptTimeout = 30 * time.Second

// NewConsumer returns a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig) *Consumer {
	if cfg.Topic == "" {
		cfg.Topic = TopicPlaced
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = TopicPlacedDLQ
	}
	if cfg.Group == "" {
		cfg.Group = GroupWriter
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 50 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = order.NopObserver{}
	}
	return &Consumer{cfg: cfg, tracer: otel.Tracer("github.com/flashsale/flashsale/services/order/kafka")}
}

// Run consumes until ctx ends, then finishes the batch in hand (stores and
// commits it) and returns nil. Offsets are committed only after their
// messages are stored or dead-lettered, so a crash at any point loses
// nothing; what it repeats, the idempotent insert absorbs.
func (c *Consumer) Run(ctx context.Context) error {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.cfg.Brokers,
		// A consumer run with a marked context (shadow.Each) reads the
		// shadow topic in its own group, so its ctx, and so its stores,
		// are those of pressure-test traffic.
		GroupID:  pkafka.Group(ctx, c.cfg.Group),
		Topic:    shadow.Topic(ctx, c.cfg.Topic),
		MinBytes: 1,
		MaxBytes: 10 << 20,
		// MaxWait only bounds an idle fetch (one returns as soon as a
		// message arrives); too short, and a busy machine turns idle
		// fetches into client-side i/o timeouts and reconnects.
		MaxWait:           time.Second,
		QueueCapacity:     c.cfg.BatchSize,
		CommitInterval:    0, // commits are synchronous and explicit
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    20 * time.Millisecond,
		ReadBackoffMax:    500 * time.Millisecond,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) {
			c.cfg.Logger.Warn("kafka reader: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	dlq := pkafka.NewWriter(c.cfg.Brokers, shadow.Topic(ctx, c.cfg.DLQTopic))
	defer dlq.Close()
	for {
		batch, err := c.fetch(ctx, r)
		if len(batch) > 0 {
			if perr := c.process(ctx, r, dlq, batch); perr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return perr
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("order consumer: fetch: %w", err)
		}
	}
}

// fetch blocks for a first message, then gathers more until the batch is
// full or BatchWait has passed. A stop while gathering closes the batch.
func (c *Consumer) fetch(ctx context.Context, r *kafkago.Reader) ([]kafkago.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := append(make([]kafkago.Message, 0, c.cfg.BatchSize), first)
	wctx, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		m, err := r.FetchMessage(wctx)
		if err != nil {
			// The deadline (or the stop) ends the batch; a message
			// not yet handed out stays in the reader's queue.
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process stores a batch and commits it: the inventory's marks first,
// then dead letters (poison, and events the inventory says not to store),
// then the orders in one transaction, then the pending records, then the
// offsets.
func (c *Consumer) process(ctx context.Context, r *kafkago.Reader, dlq *kafkago.Writer, batch []kafkago.Message) error {
	var (
		placed []order.Placed
		orders []order.Order
		dead   []kafkago.Message
		why    = map[string]int{} // dead letters by DeadLetter… label
		links  []trace.Link
		traced []context.Context                             // each message's trace context
		source = make(map[int64]kafkago.Message, len(batch)) // by order id
	)
	for i := range batch {
		m := &batch[i]
		p, err := event.Unmarshal(m.Value)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			c.cfg.Logger.Warn("poison message to the dead-letter topic", "topic", m.Topic,
				"partition", m.Partition, "offset", m.Offset, "err", err)
			dead = append(dead, c.deadLetter(*m, err))
			why[DeadLetterPoison]++
			continue
		}
		if mctx := pkafka.ExtractTrace(ctx, m); trace.SpanContextFromContext(mctx).IsValid() {
			links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(mctx)})
			traced = append(traced, mctx)
		}
		if _, seen := source[p.OrderID]; seen {
			continue
		}
		source[p.OrderID] = *m
		placed = append(placed, p)
	}

	// The span links every request whose order is in the batch.
	sctx, span := c.tracer.Start(ctx, "order-writer batch", trace.WithLinks(links...),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int("messages", len(batch)), attribute.Int("poison", len(dead))))
	defer span.End()
	// Each message also gets a span in its own request's trace, so one
	// trace follows an order from the gateway through Kafka into the
	// batch that stored it; it links to the batch span and ends with it.
	for _, mctx := range traced {
		_, ms := c.tracer.Start(mctx, c.cfg.Topic+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.LinkFromContext(sctx)))
		defer ms.End()
	}

	// Marking first means an order is stored only once its reservation
	// can no longer be released as unpublished; a redelivered batch is
	// marked again, which changes nothing.
	var outcomes []order.MarkOutcome
	if len(placed) > 0 {
		if err := c.retry(sctx, "mark ordered", func(actx context.Context) error {
			var err error
			outcomes, err = c.cfg.Inventory.MarkOrdered(actx, placed)
			if err == nil && len(outcomes) != len(placed) {
				err = fmt.Errorf("inventory answered %d outcomes for %d orders", len(outcomes), len(placed))
			}
			return err
		}); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return err
		}
	}
	for i, p := range placed {
		var reason, label string
		switch outcomes[i] {
		case order.MarkStore:
			orders = append(orders, p.Order(order.StatusPendingPayment))
			continue
		case order.MarkReleasedUnpublished:
			reason, label = ReasonReleasedUnpublished, DeadLetterReleasedUnpublished
		default: // order.MarkNoReservation
			reason, label = ReasonNoReservation, DeadLetterNoReservation
		}
		why[label]++
		c.cfg.Logger.WarnContext(sctx, "order not stored: "+reason, "order_id", p.OrderID, "activity_id", p.ActivityID)
		dead = append(dead, c.deadLetter(source[p.OrderID], errors.New(reason)))
	}
	span.SetAttributes(attribute.Int("dead", len(dead)))

	if len(dead) > 0 {
		if err := c.retry(sctx, "dead-letter", func(actx context.Context) error {
			return dlq.WriteMessages(actx, dead...)
		}); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return err
		}
		for label, n := range why {
			c.cfg.Observer.DeadLettered(label, n)
		}
	}
	var (
		stored    int
		conflicts []order.Order
	)
	if err := c.retry(sctx, "store orders", func(actx context.Context) error {
		var err error
		stored, conflicts, err = c.cfg.Store.Insert(actx, orders)
		return err
	}); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	span.SetAttributes(attribute.Int("stored", stored), attribute.Int("conflicts", len(conflicts)))
	c.cfg.Observer.Stored(order.KindSeckill, stored)
	if len(conflicts) > 0 {
		// A second order for one buyer's request: its stock is reserved
		// under an id no order has, so it must stay visible to operators.
		var msgs []kafkago.Message
		for _, o := range conflicts {
			c.cfg.Logger.ErrorContext(sctx, "order refused: its idempotency key belongs to another order",
				"order_id", o.ID, "user_id", o.UserID, "activity_id", o.ActivityID)
			msgs = append(msgs, c.deadLetter(source[o.ID], fmt.Errorf("%w: idempotency key %q of user %d is another order's",
				order.ErrInvalid, o.IdempotencyKey, o.UserID)))
		}
		if err := c.retry(sctx, "dead-letter conflicts", func(actx context.Context) error {
			return dlq.WriteMessages(actx, msgs...)
		}); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return err
		}
		c.cfg.Observer.DeadLettered(DeadLetterKeyConflict, len(msgs))
	}
	// A record left behind only shows a stored order as PROCESSING until
	// it expires, and readers look at Postgres first. The records of
	// dropped events go too: those orders will never exist.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(sctx), attemptTimeout)
	if err := c.cfg.Pending.Delete(dctx, placed...); err != nil {
		c.cfg.Logger.WarnContext(sctx, "pending records not deleted", "orders", len(placed), "err", err)
	}
	cancel()
	if c.cfg.AfterWrite != nil {
		if err := c.cfg.AfterWrite(sctx, stored); err != nil {
			return fmt.Errorf("order consumer: after write: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(sctx), attemptTimeout)
	defer cancel()
	if err := r.CommitMessages(cctx, batch...); err != nil {
		// The batch is stored: if the offsets are lost (a rebalance
		// moved the partition), the next owner redelivers it and the
		// insert skips what is there.
		c.cfg.Logger.WarnContext(sctx, "commit failed; the batch will be redelivered", "messages", len(batch), "err", err)
	}
	return nil
}

// deadLetter returns m for the dead-letter topic, with headers saying why
// and where it came from.
func (c *Consumer) deadLetter(m kafkago.Message, why error) kafkago.Message {
	headers := append(append([]kafkago.Header(nil), m.Headers...),
		kafkago.Header{Key: HeaderDLQReason, Value: []byte(why.Error())},
		kafkago.Header{Key: HeaderDLQTopic, Value: []byte(m.Topic)},
		kafkago.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafkago.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		kafkago.Header{Key: HeaderDLQGroup, Value: []byte(c.cfg.Group)},
	)
	return kafkago.Message{Key: m.Key, Value: m.Value, Headers: headers}
}

// retry runs op until it succeeds, with exponential backoff, until ctx
// ends. Each attempt runs detached from ctx (bounded by attemptTimeout) so
// that a stop does not cut a write short; a stop only ends the retries.
func (c *Consumer) retry(ctx context.Context, what string, op func(context.Context) error) error {
	wait := c.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		c.cfg.Logger.WarnContext(ctx, "order consumer: retrying", "step", what, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("order consumer: %s: %w", what, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.RetryMax)
	}
}
