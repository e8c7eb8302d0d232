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

// BatchStorer is the domain step the consumer runs for each batch
// (order.Storing): it stores the batch's orders and answers the events it
// refused, which the consumer dead-letters.
type BatchStorer interface {
	StoreBatch(ctx context.Context, placed []order.Placed) (order.StoredBatch, error)
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
	// ReasonReleasedUnpublished (order.RefusedReleasedUnpublished):
	// placing could not publish the event, released its stock and told
	// the buyer the order failed; the event arrived anyway.
	ReasonReleasedUnpublished = "reservation released as unpublished"
	// ReasonNoReservation (order.RefusedNoReservation): no reservation
	// backs the event.
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
	// Orders stores each batch (order.Storing).
	Orders BatchStorer
	// Observer hears of the events dead-lettered, once they are written
	// (nil: nobody).
	Observer order.Observer
	Logger   *slog.Logger
	// A batch closes at BatchSize messages (default 500) or BatchWait
	// after its first message (default 20ms), whichever comes first.
	BatchSize int
	BatchWait time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of a
	// failed dead-letter write (defaults 50ms and 5s).
	RetryMin, RetryMax time.Duration
	// AfterWrite, when set, runs after a batch is stored and before its
	// offsets are committed. An error stops the consumer there, without
	// committing, as a crash would (the kill test uses it).
	AfterWrite func(ctx context.Context, stored int) error
}

// Consumer reads OrderPlaced events in batches and hands each batch to
// the domain (BatchStorer), then dead-letters what the batch could not
// store and commits its offsets.
type Consumer struct {
	cfg    ConsumerConfig
	retry  order.Backoff
	tracer trace.Tracer
}

// commitTimeout bounds an offset commit, which runs detached from the
// consumer's context so that a stop commits the batch in hand.
const commitTimeout = 30 * time.Second

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
	return &Consumer{cfg: cfg, retry: order.Backoff{Min: cfg.RetryMin, Max: cfg.RetryMax, Logger: cfg.Logger},
		tracer: otel.Tracer("github.com/flashsale/flashsale/services/order/kafka")}
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
	dlq := pkafka.NewWriter(c.cfg.Brokers, shadow.Topic(ctx, c.cfg.DLQTopic), pkafka.ByKey)
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

// decoded is a batch as the domain sees it: its distinct events, the
// message each came from, and the messages that cannot be read (poison),
// already made dead letters.
type decoded struct {
	placed []order.Placed
	source map[int64]kafkago.Message // by order id
	dead   []kafkago.Message
	why    map[string]int    // dead letters by DeadLetter… label
	links  []trace.Link      // each traced message's span context
	traced []context.Context // each traced message's trace context
}

// decode reads a batch's events; an event delivered twice in it counts
// once.
func (c *Consumer) decode(ctx context.Context, batch []kafkago.Message) decoded {
	d := decoded{source: make(map[int64]kafkago.Message, len(batch)), why: map[string]int{}}
	for i := range batch {
		m := &batch[i]
		// A message whose pressure-test mark is not its topic's class
		// (a producer's bug) is set aside, never stored in the other
		// class's tables.
		err := pkafka.CheckClass(ctx, m)
		var p order.Placed
		if err == nil {
			p, err = event.Unmarshal(m.Value)
		}
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			c.cfg.Logger.Warn("poison message to the dead-letter topic", "topic", m.Topic,
				"partition", m.Partition, "offset", m.Offset, "err", err)
			d.dead = append(d.dead, c.deadLetter(*m, err))
			d.why[DeadLetterPoison]++
			continue
		}
		if mctx := pkafka.ExtractTrace(ctx, m); trace.SpanContextFromContext(mctx).IsValid() {
			d.links = append(d.links, trace.Link{SpanContext: trace.SpanContextFromContext(mctx)})
			d.traced = append(d.traced, mctx)
		}
		if _, seen := d.source[p.OrderID]; seen {
			continue
		}
		d.source[p.OrderID] = *m
		d.placed = append(d.placed, p)
	}
	return d
}

// process decodes a batch, has the domain store it, dead-letters what
// cannot be stored (poison, and the events the domain refused) and
// commits the offsets.
func (c *Consumer) process(ctx context.Context, r *kafkago.Reader, dlq *kafkago.Writer, batch []kafkago.Message) error {
	d := c.decode(ctx, batch)
	// The span links every request whose order is in the batch.
	sctx, span := c.tracer.Start(ctx, "order-writer batch", trace.WithLinks(d.links...),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int("messages", len(batch)), attribute.Int("poison", len(d.dead))))
	defer span.End()
	// Each message also gets a span in its own request's trace, so one
	// trace follows an order from the gateway through Kafka into the
	// batch that stored it; it links to the batch span and ends with it.
	for _, mctx := range d.traced {
		_, ms := c.tracer.Start(mctx, c.cfg.Topic+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.LinkFromContext(sctx)))
		defer ms.End()
	}

	res, err := c.cfg.Orders.StoreBatch(sctx, d.placed)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("order consumer: %w", err)
	}
	for _, rf := range res.Refused {
		why, label := refusal(rf)
		d.dead = append(d.dead, c.deadLetter(d.source[rf.Placed.OrderID], why))
		d.why[label]++
	}
	span.SetAttributes(attribute.Int("stored", res.Stored), attribute.Int("dead", len(d.dead)))
	if len(d.dead) > 0 {
		if err := c.retry.Do(sctx, "dead-letter", func(actx context.Context) error {
			return dlq.WriteMessages(actx, d.dead...)
		}); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return fmt.Errorf("order consumer: %w", err)
		}
		for label, n := range d.why {
			c.cfg.Observer.DeadLettered(ctx, label, n)
		}
	}
	if c.cfg.AfterWrite != nil {
		if err := c.cfg.AfterWrite(sctx, res.Stored); err != nil {
			return fmt.Errorf("order consumer: after write: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(sctx), commitTimeout)
	defer cancel()
	if err := r.CommitMessages(cctx, batch...); err != nil {
		// The batch is stored: if the offsets are lost (a rebalance
		// moved the partition), the next owner redelivers it and the
		// insert skips what is there.
		c.cfg.Logger.WarnContext(sctx, "commit failed; the batch will be redelivered", "messages", len(batch), "err", err)
	}
	return nil
}

// refusal says why the domain refused an event, for its dead letter's
// header, and the Observer's label for it.
func refusal(rf order.Refused) (why error, label string) {
	switch rf.Why {
	case order.RefusedReleasedUnpublished:
		return errors.New(ReasonReleasedUnpublished), DeadLetterReleasedUnpublished
	case order.RefusedKeyConflict:
		return fmt.Errorf("%w: idempotency key %q of user %d is another order's",
			order.ErrInvalid, rf.Placed.IdempotencyKey, rf.Placed.UserID), DeadLetterKeyConflict
	case order.RefusedUnstorable:
		return rf.Err, DeadLetterPoison
	}
	return errors.New(ReasonNoReservation), DeadLetterNoReservation
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
