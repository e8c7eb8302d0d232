package app_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{
		Databases:  []string{"orders", "products", "marketing"},
		Topics:     []string{orderkafka.TopicPlaced, orderkafka.TopicPlacedDLQ},
		Partitions: 4,
	}, func(s *localstack.Stack) { stack = s })
}

// userIDs hands out user ids no earlier run against the same database
// used (-count=N reuses one stack).
var userIDs atomic.Int64

func init() { userIDs.Store(time.Now().UnixMicro()) }

// newUsers returns the first of n fresh user ids.
func newUsers(n int64) int64 { return userIDs.Add(n) - n + 1 }

// platform is the three services of one test, each on its own ports: the
// real inventory and product services and the order service under test.
type platform struct {
	clock     *clock.Manual
	order     orderv1.OrderServiceClient
	product   productv1.ProductServiceClient
	inventory inventoryv1.InventoryServiceClient
	// invConn and prodConn are the connections behind inventory and
	// product, for the order service's own clients in tests that run
	// them in process.
	invConn, prodConn *grpc.ClientConn
	db                *pgxpool.Pool
	// marks are the order service's published marks (its pending store).
	marks order.PublishedMarks
	// orderAdmin is the order service's admin URL.
	orderAdmin string
}

// MustPlatform starts inventory, product and order (order and product on
// a manual clock at the current time) and waits until they are ready.
func MustPlatform(tb testing.TB, configure func(*app.Config), opts ...app.Option) *platform {
	tb.Helper()
	return MustPlatformOn(tb, stack, configure, opts...)
}

// MustPlatformOn is MustPlatform on the dependencies of s (a test that
// kills one of them runs on a stack of its own).
func MustPlatformOn(tb testing.TB, stack *localstack.Stack, configure func(*app.Config), opts ...app.Option) *platform {
	tb.Helper()
	p := &platform{clock: clock.NewManual(time.Now().UTC().Truncate(time.Millisecond))}
	p.marks = orderredis.NewPending(MustRedisOn(tb, stack), "", 0)

	invAddr := servicetest.MustInventory(tb, stack.RedisAddr)
	prodGRPC, prodAdmin := servicetest.MustListen(tb), servicetest.MustListen(tb)
	servicetest.MustRun(tb, prodAdmin, func(ctx context.Context) error {
		return productapp.Run(ctx, productapp.Config{GRPCListener: prodGRPC, AdminListener: prodAdmin, Clock: p.clock,
			PostgresURL: stack.PostgresURL("products"), InventoryAddr: invAddr, NodeID: localstack.NodeID()})
	})
	ordGRPC, ordAdmin := servicetest.MustListen(tb), servicetest.MustListen(tb)
	cfg := app.Config{
		GRPCListener: ordGRPC, AdminListener: ordAdmin, Clock: p.clock,
		PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr,
		KafkaBrokers: stack.KafkaBrokers, KafkaDurability: stack.KafkaDurability,
		InventoryAddr: invAddr, ProductAddr: prodGRPC.Addr().String(), NodeID: localstack.NodeID(),
	}
	if configure != nil {
		configure(&cfg)
	}
	servicetest.MustRun(tb, ordAdmin, func(ctx context.Context) error { return app.Run(ctx, cfg, opts...) })
	p.orderAdmin = "http://" + ordAdmin.Addr().String()

	p.order = orderv1.NewOrderServiceClient(localstack.MustDial(tb, ordGRPC.Addr().String()))
	p.prodConn = localstack.MustDial(tb, prodGRPC.Addr().String())
	p.product = productv1.NewProductServiceClient(p.prodConn)
	p.invConn = localstack.MustDial(tb, invAddr)
	p.inventory = inventoryv1.NewInventoryServiceClient(p.invConn)
	pool, err := pgplatform.Dial(context.Background(), stack.PostgresURL("orders"), 4)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	p.db = pool
	return p
}

// MustActivity creates a product and an activity of stock units at 99.00
// with the per-user limit, running from startsIn to an hour later.
func (p *platform) MustActivity(tb testing.TB, stock, limit int64, startsIn time.Duration) *productv1.Activity {
	tb.Helper()
	ctx := context.Background()
	prod, err := p.product.CreateProduct(ctx, &productv1.CreateProductRequest{Title: "Phone", Price: 199_00, Stock: stock})
	if err != nil {
		tb.Fatal(err)
	}
	starts := p.clock.Now().Add(startsIn)
	a, err := p.product.CreateActivity(ctx, &productv1.CreateActivityRequest{
		SkuId: prod.GetSkuId(), Price: 99_00, Stock: stock, PerUserLimit: limit,
		StartsAt: timestamppb.New(starts), EndsAt: timestamppb.New(starts.Add(time.Hour)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// MustDrain waits until the order-writer group has committed everything
// on orders.placed.
func MustDrain(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lag, err := pkafka.Lag(context.Background(), stack.KafkaBrokers, orderkafka.GroupWriter, orderkafka.TopicPlaced)
		if err == nil && lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("order-writer never caught up: lag %d (%v)", lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produced watches the broker's produce requests to orders.placed: it
// counts the records per key (order id), and while failing is set it
// answers them with an error instead of storing them.
type produced struct {
	mu      sync.Mutex
	keys    map[int64]int
	failing atomic.Bool
	stopped atomic.Bool
}

// MustWatchProduce installs the watch on the test's broker until the test
// ends.
func MustWatchProduce(tb testing.TB) *produced {
	tb.Helper()
	w := &produced{keys: map[int64]int{}}
	c := stack.Kafka()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if w.stopped.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		w.count(pr)
		if !w.failing.Load() {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, part := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = part.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	tb.Cleanup(func() { w.stopped.Store(true) })
	return w
}

func (w *produced) count(pr *kmsg.ProduceRequest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range pr.Topics {
		if t.Topic != orderkafka.TopicPlaced {
			continue
		}
		for _, part := range t.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(part.Records); err != nil {
				continue
			}
			recs, err := kfake.BatchRecords(b)
			if err != nil {
				continue
			}
			for _, r := range recs {
				if id, err := strconv.ParseInt(string(r.Key), 10, 64); err == nil {
					w.keys[id]++
				}
			}
		}
	}
}

// Count returns how many records with key orderID were produced.
func (w *produced) Count(orderID int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[orderID]
}

// IDs returns every order id produced so far.
func (w *produced) IDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []int64
	for id := range w.keys {
		ids = append(ids, id)
	}
	return ids
}
