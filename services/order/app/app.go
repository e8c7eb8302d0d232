// Package app wires the order service: Postgres, Redis, Kafka, the
// inventory and product clients, the domain's use cases, their gRPC
// server, the order-writer consumer and the admin HTTP server. main, the
// demo launcher and tests all start the service through Run.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/ids"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/serve"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	"github.com/flashsale/flashsale/services/order/postgres"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

// Config is the order service's configuration. Zero values take the
// defaults below (a nil Logger discards, a nil Clock is the wall clock).
type Config struct {
	// GRPCAddr and AdminAddr are where to listen unless GRPCListener and
	// AdminListener are given (tests and the demo hand in listeners).
	GRPCAddr, AdminAddr         string
	GRPCListener, AdminListener net.Listener
	Logger                      *slog.Logger
	// Clock decides activity windows, creation times and payment
	// deadlines.
	Clock clock.Clock

	// PostgresURL is the orders database; PostgresMaxConns bounds its pool.
	PostgresURL      string
	PostgresMaxConns int32
	// RedisAddr holds the pending (in-flight) order records: host:port,
	// or with RedisCluster a comma-separated list of Redis Cluster nodes
	// (redisclient.Config).
	RedisAddr    string
	RedisCluster bool
	// KafkaBrokers carry orders.placed, orders.placed.dlq and
	// orders.events, created at
	// start with KafkaPartitions partitions and KafkaDurability's
	// replication and min.insync.replicas when missing (and checked to
	// be at least that durable when present).
	KafkaBrokers    []string
	KafkaPartitions int
	KafkaDurability pkafka.Durability
	// InventoryAddr and ProductAddr are gRPC targets; RPCTimeout bounds
	// each call to them.
	InventoryAddr, ProductAddr string
	// MarketingAddr is the marketing service's gRPC target, which prices
	// regular orders and holds their coupons.
	MarketingAddr string
	// PaymentAddr is the payment service's gRPC target, which returns
	// refunded money through the channel that took it.
	PaymentAddr string
	RPCTimeout  time.Duration
	// RefundSweepEvery paces the refund sweep; RefundRetryAfter is how
	// long a refund stays PENDING before the sweep takes it up.
	RefundSweepEvery, RefundRetryAfter time.Duration
	// PaymentWindow is how long a buyer has to pay an order.
	PaymentWindow time.Duration
	// ReplayWait bounds how long a replayed flash-sale request waits for
	// its first request's order to be on its way; it should match the
	// gateway's call timeout (FLASHSALE_CALL_TIMEOUT), past which the
	// buyer has left.
	ReplayWait time.Duration
	// ActivityTTL is how long an activity read from product is cached.
	ActivityTTL time.Duration
	// NodeID is this replica's replica number for ids (0..127), distinct per
	// replica so that order ids never collide.
	NodeID int64
	// ConsumerBatchSize and ConsumerBatchWait bound a consumer batch: it
	// is written at that many messages or that long after its first.
	ConsumerBatchSize int
	ConsumerBatchWait time.Duration
	// ExpiryPoll, ExpiryBatch and ExpiryLease tune the expiry worker (see
	// order.ExpirerConfig); ExpiryWorkers is how many run in this process.
	ExpiryPoll    time.Duration
	ExpiryBatch   int
	ExpiryLease   time.Duration
	ExpiryWorkers int
	// OverdueGrace is how long after its deadline a flash-sale order still
	// waiting for payment is expired by the Postgres backstop (its Redis
	// expiry entry was lost).
	OverdueGrace time.Duration
	// StrayAfter is how old regular stock held for an order that was
	// never stored (a checkout that died between its reservation and its
	// insert) must be before the expiry worker gives it back.
	StrayAfter time.Duration
	// ReconcileEvery paces the stock reconciler's check for fenced sales
	// (Redis restarted or failed over); ReconcileSettle is how long a sale
	// stays fenced before it is rebuilt (order.ReconcilerConfig).
	ReconcileEvery, ReconcileSettle time.Duration
	// Discovery says where Consul is (FLASHSALE_CONSUL_ADDR); empty
	// means static addresses and no registration.
	Discovery discovery.Config
}

// Defaults of the settings.
const (
	DefaultGRPCAddr          = ":9103"
	DefaultAdminAddr         = ":9203"
	DefaultPostgresURL       = "postgres://flashsale@127.0.0.1:5432/orders?sslmode=disable"
	DefaultPostgresMaxConns  = 20
	DefaultKafkaBroker       = "127.0.0.1:9092"
	DefaultKafkaPartitions   = 4
	DefaultInventoryAddr     = "127.0.0.1:9102"
	DefaultProductAddr       = "127.0.0.1:9101"
	DefaultMarketingAddr     = "127.0.0.1:9105"
	DefaultPaymentAddr       = "127.0.0.1:9104"
	DefaultRefundSweepEvery  = 5 * time.Second
	DefaultRPCTimeout        = 2 * time.Second
	DefaultPaymentWindow     = 15 * time.Minute
	DefaultActivityTTL       = time.Second
	DefaultConsumerBatchSize = 500
	DefaultConsumerBatchWait = 20 * time.Millisecond
	// DefaultExpiryWorkers is two: a worker waits on Postgres, then on the
	// inventory, for each batch, and one alone fell up to 15.5 s behind
	// the deadlines of a sustained stampede of abandoned orders
	// (overload.yaml, about 2,400 due a second on two full cores) where
	// two kept within 4-9 s (docs/order-expiry.md, "Lateness").
	DefaultExpiryWorkers = 2
)

// ConfigFromEnv reads the FLASHSALE_* variables; problems are collected in
// env (check env.Err()).
func ConfigFromEnv(env *config.Env) Config {
	redisCfg := redisclient.ConfigFromEnv(env)
	cfg := Config{
		GRPCAddr:          env.String("FLASHSALE_GRPC_ADDR", DefaultGRPCAddr),
		AdminAddr:         env.String("FLASHSALE_ADMIN_ADDR", DefaultAdminAddr),
		Clock:             clock.Real{},
		PostgresURL:       env.DatabaseURL("FLASHSALE_POSTGRES_URL", DefaultPostgresURL),
		PostgresMaxConns:  pgplatform.PoolSize(env, DefaultPostgresMaxConns),
		RedisAddr:         redisCfg.Addr,
		RedisCluster:      redisCfg.Cluster,
		KafkaBrokers:      env.List("FLASHSALE_KAFKA_BROKERS", []string{DefaultKafkaBroker}),
		KafkaPartitions:   int(env.Int("FLASHSALE_KAFKA_PARTITIONS", DefaultKafkaPartitions)),
		KafkaDurability:   pkafka.DurabilityFromEnv(env),
		InventoryAddr:     env.String("FLASHSALE_INVENTORY_ADDR", DefaultInventoryAddr),
		ProductAddr:       env.String("FLASHSALE_PRODUCT_ADDR", DefaultProductAddr),
		MarketingAddr:     env.String("FLASHSALE_MARKETING_ADDR", DefaultMarketingAddr),
		PaymentAddr:       env.String("FLASHSALE_PAYMENT_ADDR", DefaultPaymentAddr),
		RefundSweepEvery:  env.Positive("FLASHSALE_REFUND_SWEEP_EVERY", DefaultRefundSweepEvery),
		RefundRetryAfter:  env.Positive("FLASHSALE_REFUND_RETRY_AFTER", order.DefaultRefundRetryAfter),
		RPCTimeout:        env.Positive("FLASHSALE_RPC_TIMEOUT", DefaultRPCTimeout),
		PaymentWindow:     env.Positive("FLASHSALE_PAYMENT_WINDOW", DefaultPaymentWindow),
		ReplayWait:        env.Positive("FLASHSALE_REPLAY_WAIT", order.DefaultReplayWait),
		ActivityTTL:       env.Positive("FLASHSALE_ACTIVITY_CACHE_TTL", DefaultActivityTTL),
		NodeID:            env.IntIn("FLASHSALE_NODE_ID", 0, 0, ids.MaxReplica),
		ConsumerBatchSize: int(env.IntIn("FLASHSALE_CONSUMER_BATCH_SIZE", DefaultConsumerBatchSize, 1, 10000)),
		ConsumerBatchWait: env.Positive("FLASHSALE_CONSUMER_BATCH_WAIT", DefaultConsumerBatchWait),
		ExpiryPoll:        env.Positive("FLASHSALE_EXPIRY_POLL_INTERVAL", order.DefaultExpiryPoll),
		ExpiryBatch:       int(env.IntIn("FLASHSALE_EXPIRY_BATCH", order.DefaultExpiryBatch, 1, 1000)),
		ExpiryLease:       env.Duration("FLASHSALE_EXPIRY_LEASE", order.DefaultExpiryLease),
		ExpiryWorkers:     int(env.IntIn("FLASHSALE_EXPIRY_WORKERS", DefaultExpiryWorkers, 1, 64)),
		Discovery:         discovery.ConfigFromEnv(env),
		OverdueGrace:      env.Positive("FLASHSALE_EXPIRY_OVERDUE_GRACE", order.DefaultOverdueGrace),
		StrayAfter:        env.Duration("FLASHSALE_EXPIRY_STRAY_AFTER", order.DefaultStrayAfter),
		ReconcileEvery:    env.Positive("FLASHSALE_RECONCILE_EVERY", order.DefaultReconcileEvery),
		ReconcileSettle:   env.Positive("FLASHSALE_RECONCILE_SETTLE", order.DefaultReconcileSettle),
	}
	env.Check(len(cfg.KafkaBrokers) > 0, "FLASHSALE_KAFKA_BROKERS: at least one broker is needed")
	env.Check(cfg.KafkaPartitions >= 1, "FLASHSALE_KAFKA_PARTITIONS=%d: must be at least 1", cfg.KafkaPartitions)
	env.Check(cfg.ExpiryLease >= time.Second, "FLASHSALE_EXPIRY_LEASE=%s: must be at least 1s", cfg.ExpiryLease)
	env.Check(cfg.StrayAfter >= 2*order.MaxCheckout, "FLASHSALE_EXPIRY_STRAY_AFTER=%s: must be at least %s, twice the longest a checkout may run", cfg.StrayAfter, 2*order.MaxCheckout)
	return cfg
}

// withDefaults fills the zero settings.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	c.PostgresMaxConns = cmp.Or(c.PostgresMaxConns, DefaultPostgresMaxConns)
	c.KafkaPartitions = cmp.Or(c.KafkaPartitions, DefaultKafkaPartitions)
	if c.KafkaDurability == (pkafka.Durability{}) {
		c.KafkaDurability = pkafka.DefaultDurability
	}
	c.MarketingAddr = cmp.Or(c.MarketingAddr, DefaultMarketingAddr)
	c.PaymentAddr = cmp.Or(c.PaymentAddr, DefaultPaymentAddr)
	c.RPCTimeout = cmp.Or(c.RPCTimeout, DefaultRPCTimeout)
	c.RefundSweepEvery = cmp.Or(c.RefundSweepEvery, DefaultRefundSweepEvery)
	c.PaymentWindow = cmp.Or(c.PaymentWindow, DefaultPaymentWindow)
	c.ReplayWait = cmp.Or(c.ReplayWait, order.DefaultReplayWait)
	c.ActivityTTL = cmp.Or(c.ActivityTTL, DefaultActivityTTL)
	c.ConsumerBatchSize = cmp.Or(c.ConsumerBatchSize, DefaultConsumerBatchSize)
	c.ConsumerBatchWait = cmp.Or(c.ConsumerBatchWait, DefaultConsumerBatchWait)
	c.ExpiryWorkers = cmp.Or(c.ExpiryWorkers, DefaultExpiryWorkers)
	return c
}

// Run applies the schema, creates the topics and serves gRPC while the
// consumer writes orders, the expiry workers expire unpaid ones and the
// relay publishes the outbox's order events, until ctx ends.
func Run(ctx context.Context, cfg Config, opts ...Option) error {
	var h hooks
	for _, o := range opts {
		o(&h)
	}
	cfg = cfg.withDefaults()
	p, err := serve.New(serve.Spec{
		Name: "order", GRPCAddr: cfg.GRPCAddr, GRPCListener: cfg.GRPCListener, Errors: ordergrpc.Errors,
		HTTPAddr: cfg.AdminAddr, HTTPListener: cfg.AdminListener, Discovery: cfg.Discovery, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	log, consul, reg := p.Log, p.Consul, p.Registry

	gen, err := ids.NewGenerator(ids.SpaceOrder, cfg.NodeID, cfg.Clock)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	pool, err := pgplatform.DialRouted(ctx, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	defer pool.Close()
	if err := pgplatform.MigrateRouted(ctx, pool, postgres.Migrations); err != nil {
		return fmt.Errorf("order: %w", err)
	}
	rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: cfg.RedisAddr, Cluster: cfg.RedisCluster}, 0)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	defer rdb.Close()
	if err := pkafka.EnsureTopics(ctx, cfg.KafkaBrokers, cfg.KafkaPartitions, cfg.KafkaDurability,
		pkafka.WithShadows(orderkafka.TopicPlaced, orderkafka.TopicPlacedDLQ, orderkafka.TopicEvents)...); err != nil {
		return fmt.Errorf("order: %w", err)
	}
	conns, err := dialPeers(consul, cfg)
	if err != nil {
		return err
	}
	defer conns.close()

	d := domain{
		cfg:         cfg,
		h:           h,
		log:         log,
		next:        gen.Next,
		observer:    newBusinessMetrics(reg),
		store:       postgres.NewStore(pool),
		pending:     orderredis.NewPending(redisclient.Coalesced(rdb), "", orderredis.DefaultTTL),
		inv:         ordergrpc.NewInventory(conns.inventory),
		due:         ordergrpc.NewDueQueue(conns.inventory),
		activities:  ordergrpc.NewActivities(conns.product),
		catalog:     ordergrpc.NewCatalog(conns.product),
		heldStock:   ordergrpc.NewHeldStock(conns.product),
		pricing:     ordergrpc.NewPricing(conns.marketing),
		usedCoupons: ordergrpc.NewUsedCoupons(conns.marketing),
		payments:    ordergrpc.NewPayments(conns.payment),
	}
	pub := orderkafka.NewPublisher(cfg.KafkaBrokers, orderkafka.TopicPlaced)
	defer pub.Close()
	events := orderkafka.NewEventPublisher(cfg.KafkaBrokers, orderkafka.TopicEvents)
	defer events.Close()
	useCases := d.useCases(pub)
	reg.MustRegister(cache.Collector(useCases.Placing.Caches()))
	workers, reconciler := d.workers(useCases, order.NewRelay(order.RelayConfig{Outbox: d.store, Publisher: events, Logger: log}))

	reg.MustRegister(newLagCollector(cfg.KafkaBrokers, orderkafka.GroupWriter, orderkafka.TopicPlaced))
	orderv1.RegisterOrderServiceServer(p.GRPC, ordergrpc.NewServer(useCases, log))
	p.AddCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	p.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	p.Handle("POST /reconcile-stock", reconcileHandler(reconciler, log))
	for _, w := range workers {
		p.AddWorker(w)
	}
	return p.Run(ctx, "inventory", cfg.InventoryAddr, "product", cfg.ProductAddr, "marketing", cfg.MarketingAddr, "payment", cfg.PaymentAddr)
}
