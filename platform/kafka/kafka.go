// Package kafka holds the platform's kafka-go conventions: producers that
// wait for every in-sync replica (acks=all), W3C trace context carried in
// message headers, topic creation, and consumer-group lag.
package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Order says how a writer spreads a topic's messages over its partitions.
type Order int

const (
	// ByKey puts every message of a key on one partition (the key's
	// hash), so a key's messages are read in the order they were
	// written (orders.events: an order's events, in the order each relay
	// published them).
	ByKey Order = iota
	// Unordered is for a topic whose messages need no order among
	// themselves (orders.placed: one event per order). Runs of a batch's
	// size go to one partition, then the next, so messages written at
	// once share one produce request instead of one per partition: at a
	// spike's rates that halved the produce path's CPU (docs/performance.md).
	Unordered
)

// writerBatch caps a produce request, and is the run of messages an
// Unordered writer sends to one partition.
const writerBatch = 100

// NewWriter returns a synchronous producer for topic: acks=all, messages
// spread over the partitions as order says, and a short batch window, so
// concurrent requests share a produce request without any one of them
// waiting long.
//
// The batch size is a cap, not a target: within the 2 ms window a
// partition gathers a few dozen messages even at 10,000 orders a second,
// and kafka-go allocates room for a full batch each time it opens one,
// so a cap of 1,000 cost a quarter of a megabyte per produce request
// and showed up in the spike's profile (docs/performance.md).
func NewWriter(brokers []string, topic string, order Order) *kafka.Writer {
	var b kafka.Balancer = &kafka.Hash{}
	if order == Unordered {
		b = &kafka.RoundRobin{ChunkSize: writerBatch}
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     b,
		RequiredAcks: kafka.RequireAll,
		BatchSize:    writerBatch,
		BatchTimeout: 2 * time.Millisecond,
		MaxAttempts:  3,
		WriteTimeout: 5 * time.Second,
		ReadTimeout:  5 * time.Second,
	}
}

// headerCarrier adapts kafka headers to OpenTelemetry's propagation.
type headerCarrier struct{ headers *[]kafka.Header }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for i, h := range *c.headers {
		if h.Key == key {
			(*c.headers)[i].Value = []byte(value)
			return
		}
	}
	*c.headers = append(*c.headers, kafka.Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.headers))
	for i, h := range *c.headers {
		keys[i] = h.Key
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier{}

// InjectTrace writes the trace context of ctx into msg's headers.
func InjectTrace(ctx context.Context, msg *kafka.Message) {
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier{&msg.Headers})
}

// ExtractTrace returns ctx carrying the trace context found in msg's headers.
func ExtractTrace(ctx context.Context, msg *kafka.Message) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, headerCarrier{&msg.Headers})
}

// Lag returns how many messages of topic the consumer group has not
// committed yet, summed over partitions. A partition the group never
// committed counts from its first offset.
func Lag(ctx context.Context, brokers []string, group, topic string) (int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("kafka: metadata: %w", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return 0, fmt.Errorf("kafka: topic %s not found", topic)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return 0, fmt.Errorf("kafka: list offsets: %w", err)
	}
	committed, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return 0, fmt.Errorf("kafka: offset fetch: %w", err)
	}
	if committed.Error != nil {
		return 0, fmt.Errorf("kafka: offset fetch: %w", committed.Error)
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		done[p.Partition] = p.CommittedOffset
	}
	var lag int64
	for _, p := range offs.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("kafka: offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		from := done[p.Partition]
		if from < p.FirstOffset {
			from = p.FirstOffset
		}
		lag += p.LastOffset - from
	}
	return lag, nil
}
