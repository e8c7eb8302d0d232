package app

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/order"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	"github.com/flashsale/flashsale/services/order/postgres"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

// peers are the connections to the services order calls.
type peers struct {
	inventory, product, marketing, payment *grpc.ClientConn
}

// dialPeers connects to the four services order calls, each call bounded
// by cfg.RPCTimeout.
func dialPeers(consul *discovery.Consul, cfg Config) (peers, error) {
	timeout := rpc.CallTimeout(cfg.RPCTimeout)
	var ps peers
	for _, peer := range []struct {
		name, addr string
		conn       **grpc.ClientConn
	}{
		{"inventory", cfg.InventoryAddr, &ps.inventory},
		{"product", cfg.ProductAddr, &ps.product},
		{"marketing", cfg.MarketingAddr, &ps.marketing},
		{"payment", cfg.PaymentAddr, &ps.payment},
	} {
		conn, err := consul.Dial(peer.addr, timeout)
		if err != nil {
			ps.close()
			return peers{}, fmt.Errorf("order: %s: %w", peer.name, err)
		}
		*peer.conn = conn
	}
	return ps, nil
}

func (ps peers) close() {
	for _, c := range []*grpc.ClientConn{ps.inventory, ps.product, ps.marketing, ps.payment} {
		if c != nil {
			c.Close()
		}
	}
}

// domain is what Run opened for the order domain (its stores, its clients
// of the other services, the ids, the logger and the counters), from which
// it builds the use cases and the workers.
type domain struct {
	cfg         Config
	h           hooks
	log         *slog.Logger
	next        func() int64
	observer    *businessMetrics
	store       *postgres.Store
	pending     *orderredis.Pending
	inv         *ordergrpc.Inventory
	due         *ordergrpc.DueQueue
	activities  *ordergrpc.Activities
	catalog     *ordergrpc.Catalog
	heldStock   *ordergrpc.HeldStock
	pricing     *ordergrpc.Pricing
	usedCoupons *ordergrpc.UsedCoupons
	payments    *ordergrpc.Payments
}

// useCases builds what the gRPC server serves, each use case with the
// ports it needs; a test's hooks may wrap the publisher and the pending
// records the buy path writes.
func (d domain) useCases(pub order.Publisher) ordergrpc.UseCases {
	cfg := d.cfg
	var publisher order.Publisher = pub
	if d.h.wrapPublisher != nil {
		publisher = d.h.wrapPublisher(pub)
	}
	var pending order.Pending = d.pending
	if d.h.wrapPending != nil {
		pending = d.h.wrapPending(d.pending)
	}
	lookup := order.NewLookup(d.store, d.pending)
	return ordergrpc.UseCases{
		Lookup: lookup,
		Placing: order.NewPlacing(order.PlacingConfig{
			Reservations: d.inv, Activities: d.activities, Publisher: publisher,
			Pending: pending, Orders: d.store, Clock: cfg.Clock, NextID: d.next,
			PaymentWindow: cfg.PaymentWindow, ActivityTTL: cfg.ActivityTTL, ReplayWait: cfg.ReplayWait, Observer: d.observer, Logger: d.log,
		}),
		Cancelling: order.NewCancelling(order.CancellingConfig{
			Lookup: lookup, Transitions: d.store, Releaser: d.inv, Catalog: d.catalog, Pricing: d.pricing, Regular: d.store,
			Clock: cfg.Clock, Observer: d.observer, Logger: d.log,
		}),
		Paying: order.NewPaying(order.PayingConfig{Orders: d.store, Inventory: d.inv, Observer: d.observer, Logger: d.log}),
		Refunding: order.NewRefunding(order.RefundingConfig{
			Lookup: lookup, Refunds: d.store, Payments: d.payments, Limits: d.inv, Coupons: d.pricing,
			RetryAfter: cfg.RefundRetryAfter, Clock: cfg.Clock, NextID: d.next, Observer: d.observer, Logger: d.log,
		}),
		Checkout: order.NewCheckout(order.CheckoutConfig{
			Catalog: d.catalog, Pricing: d.pricing, Regular: d.store, Clock: cfg.Clock, NextID: d.next,
			PaymentWindow: cfg.PaymentWindow, Observer: d.observer, Logger: d.log,
		}),
	}
}

// workers builds what runs beside the server: the consumer, the refund
// sweep, the stock reconciler, the outbox relay and the expiry workers,
// each once per traffic class (docs/pressure-test.md: none has a request
// to take the mark from). It returns the real traffic's reconciler too,
// for the admin route that runs a round of it.
func (d domain) workers(uc ordergrpc.UseCases, relay *order.Relay) ([]func(context.Context) error, *order.StockReconciler) {
	cfg := d.cfg
	consumer := orderkafka.NewConsumer(orderkafka.ConsumerConfig{
		Brokers: cfg.KafkaBrokers,
		Orders: order.NewStoring(order.StoringConfig{
			Inventory: d.inv, Orders: d.store, Pending: d.pending, Observer: d.observer, Logger: d.log,
		}),
		Observer:   d.observer,
		Logger:     d.log,
		BatchSize:  cfg.ConsumerBatchSize,
		BatchWait:  cfg.ConsumerBatchWait,
		AfterWrite: d.h.afterWrite,
	})
	reconcileCfg := order.ReconcilerConfig{
		Inventory: d.inv, Orders: d.store, Consumer: writerLag{cfg.KafkaBrokers}, Activities: d.activities,
		Clock: cfg.Clock, Settle: cfg.ReconcileSettle, Every: cfg.ReconcileEvery, Logger: d.log,
	}
	// The reconciler remembers when it first saw each sale fenced: one per
	// traffic class, or each class's rounds would forget the other's.
	reconciler, shadowReconciler := order.NewStockReconciler(reconcileCfg), order.NewStockReconciler(reconcileCfg)
	workers := []func(context.Context) error{consumer.Run, func(ctx context.Context) error {
		return uc.Refunding.RunRefundSweep(ctx, cfg.RefundSweepEvery)
	}, func(ctx context.Context) error {
		return shadow.Pick(ctx, reconciler, shadowReconciler).Run(ctx)
	}, relay.Run}
	if !d.h.noExpiry {
		// The Postgres backstop and the sweep of holds of orders never
		// stored look at every order, so a worker limited to some
		// activities (ExpiryOf) runs without them.
		var overdue order.OverdueOrders = d.store
		var heldStock, usedCoupons order.Holds = d.heldStock, d.usedCoupons
		if len(d.h.expiryActivities) > 0 {
			overdue, heldStock, usedCoupons = nil, nil, nil
		}
		expirer := order.NewExpirer(order.ExpirerConfig{
			Queue: d.due, Orders: d.store, Stock: d.inv, Marks: d.pending, Clock: cfg.Clock,
			Activities: d.h.expiryActivities,
			Batch:      cfg.ExpiryBatch, Lease: cfg.ExpiryLease, Poll: cfg.ExpiryPoll, Logger: d.log,
			Regular: d.store, Catalog: d.catalog, Pricing: d.pricing, Observer: d.observer,
			Overdue: overdue, OverdueGrace: cfg.OverdueGrace,
			HeldStock: heldStock, UsedCoupons: usedCoupons, StrayAfter: cfg.StrayAfter,
		})
		for range cfg.ExpiryWorkers {
			workers = append(workers, expirer.Run)
		}
	}
	return shadow.EachOf(workers...), reconciler
}
