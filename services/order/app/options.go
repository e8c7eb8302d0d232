package app

import (
	"context"

	"github.com/flashsale/flashsale/services/order"
)

// Option changes how Run wires the service for a test or the fault demo:
// a hook into its work, never a setting of a deployment (those are
// Config, read from the environment).
type Option func(*hooks)

type hooks struct {
	afterWrite       func(ctx context.Context, stored int) error
	noExpiry         bool
	expiryActivities []int64
	wrapPublisher    func(order.Publisher) order.Publisher
	wrapPending      func(order.Pending) order.Pending
}

// AfterConsumerWrite runs f between a consumer batch's write and its
// commit (orderkafka.ConsumerConfig.AfterWrite): the fault demo kills the
// service there, tests hold a batch there.
func AfterConsumerWrite(f func(ctx context.Context, stored int) error) Option {
	return func(h *hooks) { h.afterWrite = f }
}

// WithoutExpiry runs no expiry worker (tests that drive their own).
func WithoutExpiry() Option { return func(h *hooks) { h.noExpiry = true } }

// ExpiryOf limits the expiry worker to these activities' queues, and
// leaves out the Postgres backstop, which sweeps every activity's orders
// (tests that share one Redis and Postgres with others).
func ExpiryOf(activities ...int64) Option {
	return func(h *hooks) { h.expiryActivities = activities }
}

// WrapPublisher wraps the Kafka publisher the service places orders with
// (tests make a publish that lands fail anyway, as a timeout after the
// broker's append would).
func WrapPublisher(f func(order.Publisher) order.Publisher) Option {
	return func(h *hooks) { h.wrapPublisher = f }
}

// WrapPending wraps the Redis store of in-flight orders the service
// places and serves orders with (tests watch a replay wait for the first
// request's order).
func WrapPending(f func(order.Pending) order.Pending) Option {
	return func(h *hooks) { h.wrapPending = f }
}
