// Package shadow carries the pressure-test mark (全链路压测): a request the
// gateway accepted as load-test traffic is marked in its context, and the
// mark travels with it through every hop (gRPC metadata, Kafka headers,
// the channel wire), so that the storage adapters route marked work to
// shadow storage: a shadow Postgres schema, a shadow Redis key prefix and
// shadow Kafka topics. Domain code does not test the mark; the platform's
// adapters (rpc, kafka, redisclient, postgres) do, from the context.
//
// Work that starts without a request (the expiry queue, sweeps,
// reconcilers, relays, consumers) has no mark to inherit: it must run
// once per traffic class, which Each does.
package shadow

import (
	"context"
	"strings"

	"golang.org/x/sync/errgroup"
)

// The names the mark goes by on each wire.
const (
	// Header is the HTTP request header that asks for marked handling.
	// The gateway accepts it only with a valid load-test token as its value.
	Header = "X-Pressure-Test"
	// Metadata is the gRPC metadata key of a marked call.
	Metadata = "x-flashsale-pressure-test"
	// KafkaHeader is the header of a marked Kafka message.
	KafkaHeader = "flashsale-pressure-test"
	// TopicSuffix names a topic's shadow: orders.placed.shadow.
	TopicSuffix = ".shadow"
	// KeyPrefix is put in front of every Redis key of marked work. It has
	// no braces, so a key's hash tag, and so its cluster slot, is
	// unchanged: "shadow:{act:1}:stock" lives in the slot of "{act:1}:stock".
	KeyPrefix = "shadow:"
	// MetricPrefix is put in front of the name of a business metric
	// counting marked work (shadow_order_gmv_cents_total), so marked work
	// never moves the series dashboards and alerts sum.
	MetricPrefix = "shadow_"
	// Schema is the Postgres schema, in each service's database, holding
	// the shadow copies of the service's tables.
	Schema = "shadow"
	// LabelReal and LabelShadow are the values of a metric's "traffic" label.
	LabelReal   = "real"
	LabelShadow = "shadow"
)

type markKey struct{}

// With returns ctx marked as pressure-test traffic.
func With(ctx context.Context) context.Context {
	if Is(ctx) {
		return ctx
	}
	return context.WithValue(ctx, markKey{}, true)
}

// Is reports whether ctx carries the pressure-test mark.
func Is(ctx context.Context) bool {
	v, _ := ctx.Value(markKey{}).(bool)
	return v
}

// Label is the value of the "traffic" metric label for ctx: marked
// traffic is never counted among real sales.
func Label(ctx context.Context) string {
	if Is(ctx) {
		return LabelShadow
	}
	return LabelReal
}

// Topic is the topic that work in ctx publishes to: topic itself, or its
// shadow for marked work.
func Topic(ctx context.Context, topic string) string {
	if Is(ctx) {
		return topic + TopicSuffix
	}
	return topic
}

// IsTopic reports whether topic is a shadow topic.
func IsTopic(topic string) bool { return strings.HasSuffix(topic, TopicSuffix) }

// Key is the Redis key that work in ctx uses for key.
func Key(ctx context.Context, key string) string {
	if Is(ctx) && !strings.HasPrefix(key, KeyPrefix) {
		return KeyPrefix + key
	}
	return key
}

// Contexts returns ctx unmarked and marked: the two traffic classes.
func Contexts(ctx context.Context) [2]context.Context {
	return [2]context.Context{context.WithValue(ctx, markKey{}, false), With(ctx)}
}

// Each runs work once per traffic class, concurrently, the second time
// with ctx marked, and returns when both have returned: the first error
// ends the other's context. A background worker that reads storage
// without a request runs under Each so that marked orders expire, are
// swept and reconciled as real ones are, each in its own storage.
func Each(ctx context.Context, work func(ctx context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range Contexts(gctx) {
		g.Go(func() error { return work(c) })
	}
	return g.Wait()
}

// EachOf wraps every worker in Each: the workers of a process that read
// storage without a request, each then serving both traffic classes.
func EachOf(workers ...func(context.Context) error) []func(context.Context) error {
	out := make([]func(context.Context) error, len(workers))
	for i, w := range workers {
		out[i] = func(ctx context.Context) error { return Each(ctx, w) }
	}
	return out
}

// Pick is real or marked by ctx's traffic class: a worker whose state is
// its own (a reconciler's memory of what it saw) keeps one instance per
// class.
func Pick[T any](ctx context.Context, real, marked T) T {
	if Is(ctx) {
		return marked
	}
	return real
}
