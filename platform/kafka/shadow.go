package kafka

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/shadow"
)

// Marked (pressure-test) work publishes to the shadow twin of each topic
// (shadow.Topic: orders.placed.shadow) with the shadow.KafkaHeader
// header, and is consumed by a consumer of its own, in a group of its
// own, whose context is marked (ConsumeEach): real consumers never see a
// marked message, and whatever reads a real topic (the big screen reads
// orders.events) sees real sales only.

// WithShadows returns topics followed by their shadow twins: what
// EnsureTopics is given, so that marked traffic has its topics.
func WithShadows(topics ...string) []string {
	out := append([]string(nil), topics...)
	for _, t := range topics {
		out = append(out, t+shadow.TopicSuffix)
	}
	return out
}

// Group is the consumer group of ctx's traffic class: group, or its
// shadow twin, so the two classes' consumers never share a rebalance or
// an offset, and real lag stays real.
func Group(ctx context.Context, group string) string {
	if shadow.Is(ctx) {
		return group + shadow.TopicSuffix
	}
	return group
}

// Mark adds the pressure-test header to msg when ctx is marked.
func Mark(ctx context.Context, msg *kafka.Message) {
	if shadow.Is(ctx) {
		headerCarrier{&msg.Headers}.Set(shadow.KafkaHeader, "1")
	}
}

// Marked reports whether msg carries the pressure-test header.
func Marked(msg *kafka.Message) bool {
	return headerCarrier{&msg.Headers}.Get(shadow.KafkaHeader) != ""
}

// ErrClassMismatch is a message whose mark disagrees with its topic: a
// marked message on a real topic or the reverse. A consumer dead-letters
// it rather than store it in the other class's storage.
var ErrClassMismatch = errors.New("kafka: the message's pressure-test mark does not match its topic")

// CheckClass returns ErrClassMismatch when msg's mark is not that of
// ctx's traffic class.
func CheckClass(ctx context.Context, msg *kafka.Message) error {
	if Marked(msg) != shadow.Is(ctx) {
		return ErrClassMismatch
	}
	return nil
}

// ClassWriter is a producer for a topic and its shadow twin: a write with
// a marked context goes to the shadow topic, each message with the header.
type ClassWriter struct {
	real, shadow *kafka.Writer
}

// NewClassWriter returns NewWriter's producer for topic and one for its
// shadow twin, both spreading messages as order says. Kafka-go's writers
// connect lazily, so an idle shadow writer costs nothing.
func NewClassWriter(brokers []string, topic string, order Order) *ClassWriter {
	return &ClassWriter{real: NewWriter(brokers, topic, order), shadow: NewWriter(brokers, topic+shadow.TopicSuffix, order)}
}

// For is the writer of ctx's class.
func (w *ClassWriter) For(ctx context.Context) *kafka.Writer {
	if shadow.Is(ctx) {
		return w.shadow
	}
	return w.real
}

// WriteMessages writes msgs to the topic of ctx's class.
func (w *ClassWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if shadow.Is(ctx) {
		for i := range msgs {
			Mark(ctx, &msgs[i])
		}
	}
	return w.For(ctx).WriteMessages(ctx, msgs...)
}

// Stats are the real writer's: the shadow class has its own metrics.
func (w *ClassWriter) Stats() kafka.WriterStats { return w.real.Stats() }

// Close flushes and closes both writers.
func (w *ClassWriter) Close() error { return errors.Join(w.real.Close(), w.shadow.Close()) }
