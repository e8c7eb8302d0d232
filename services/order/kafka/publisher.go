// Package kafka moves orders through the event log: the Publisher puts
// OrderPlaced on orders.placed, the EventPublisher the outbox's
// OrderEvents on orders.events, and the Consumer (group order-writer)
// has the inventory mark each batch's reservations ordered, writes the
// marked events to Postgres in batches and sends to orders.placed.dlq what
// it cannot read and what the inventory says not to store (a late event
// whose stock was released as unpublished, or one without a reservation).
package kafka

import (
	"context"
	"fmt"
	"strconv"

	kafkago "github.com/segmentio/kafka-go"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/event"
)

// The topics and the consumer group of the order path.
const (
	TopicPlaced    = "orders.placed"
	TopicPlacedDLQ = "orders.placed.dlq"
	// TopicEvents carries every step of a stored order's life
	// (orderv1.OrderEvent, key = order id), published from the outbox.
	TopicEvents = "orders.events"
	GroupWriter = "order-writer"
)

// Publisher implements order.Publisher with a synchronous acks=all
// producer; a marked (pressure-test) publish goes to the topic's shadow.
type Publisher struct {
	w *pkafka.ClassWriter
}

// NewPublisher returns a publisher to topic. An order has one placed
// event, so the topic needs no order among its messages: the writer is
// Unordered, and buys placed at once share a produce request.
func NewPublisher(brokers []string, topic string) *Publisher {
	return &Publisher{w: pkafka.NewClassWriter(brokers, topic, pkafka.Unordered)}
}

// Publish writes p keyed by its order id (the key names the order; the
// writer does not partition by it), with the trace context of ctx in the
// headers, and returns once every in-sync replica has it.
func (p *Publisher) Publish(ctx context.Context, pl order.Placed) error {
	b, err := event.Marshal(pl)
	if err != nil {
		return fmt.Errorf("publish order %d: %w", pl.OrderID, err)
	}
	msg := kafkago.Message{Key: []byte(strconv.FormatInt(pl.OrderID, 10)), Value: b}
	pkafka.InjectTrace(ctx, &msg)
	if err := p.w.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("publish order %d: %w", pl.OrderID, err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *Publisher) Close() error { return p.w.Close() }

// EventPublisher implements order.EventPublisher with a synchronous
// acks=all producer; the marked relay's events go to the topic's shadow,
// so the big screen (which reads orders.events) shows real sales only.
type EventPublisher struct {
	w *pkafka.ClassWriter
}

// NewEventPublisher returns a publisher of order events to topic.
func NewEventPublisher(brokers []string, topic string) *EventPublisher {
	return &EventPublisher{w: pkafka.NewClassWriter(brokers, topic, pkafka.ByKey)}
}

// PublishEvents writes events keyed by their order ids (so one order's
// events share a partition) and returns once every in-sync replica has
// all of them.
func (p *EventPublisher) PublishEvents(ctx context.Context, events []order.Event) error {
	msgs := make([]kafkago.Message, len(events))
	for i, e := range events {
		b, err := event.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("publish order events: %w", err)
		}
		msgs[i] = kafkago.Message{Key: []byte(strconv.FormatInt(e.OrderID, 10)), Value: b}
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d order events: %w", len(events), err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *EventPublisher) Close() error { return p.w.Close() }
