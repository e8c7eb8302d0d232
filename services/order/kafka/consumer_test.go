package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/localstack"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/event"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	"github.com/flashsale/flashsale/services/order/postgres"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"orders"}, Partitions: 4}, func(s *localstack.Stack) { stack = s })
}

// world is what one consumer test runs against: topics and a group of its
// own, the real store and pending records.
type world struct {
	topic, dlq, group string
	pool              *pgxpool.Pool
	store             *postgres.Store
	pending           *orderredis.Pending
}

// MustWorld creates the test's topics (4 partitions, the dead-letter topic
// 1) and returns its world.
func MustWorld(tb testing.TB) *world {
	tb.Helper()
	ctx := context.Background()
	// Names of their own keep repeated runs (-count) apart too.
	name := tb.Name() + "-" + strconv.FormatInt(nextID.Add(2), 36)
	w := &world{topic: "placed-" + name, dlq: "dlq-" + name, group: "writer-" + name}
	if err := pkafka.EnsureTopics(ctx, stack.KafkaBrokers, 4, w.topic); err != nil {
		tb.Fatal(err)
	}
	if err := pkafka.EnsureTopics(ctx, stack.KafkaBrokers, 1, w.dlq); err != nil {
		tb.Fatal(err)
	}
	pool, err := pgplatform.Dial(ctx, stack.PostgresURL("orders"), 8)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	w.pool, w.store, w.pending = pool, postgres.NewStore(pool), orderredis.NewPending(rdb, name+":", time.Hour)
	return w
}

// consumer returns a consumer of w's topics writing through store.
func (w *world) consumer(store orderkafka.OrderWriter, afterWrite func(context.Context, int) error) *orderkafka.Consumer {
	return orderkafka.NewConsumer(orderkafka.ConsumerConfig{
		Brokers: stack.KafkaBrokers, Topic: w.topic, DLQTopic: w.dlq, Group: w.group,
		Store: store, Pending: w.pending, BatchSize: 20, BatchWait: 20 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, AfterWrite: afterWrite,
	})
}

// start runs c until the test ends and returns a function that stops it
// and returns Run's error.
func start(tb testing.TB, c *orderkafka.Consumer) func() error {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	tb.Cleanup(func() { _ = stop() })
	return stop
}

var nextID atomic.Int64

func init() { nextID.Store(time.Now().UnixNano() / 1000) }

var created = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func placed(user int64) order.Placed {
	id := nextID.Add(2)
	return order.Placed{OrderID: id, LineID: id + 1, UserID: user, ActivityID: 500, SKUID: 9, Quantity: 1,
		UnitPrice: 990, IdempotencyKey: "k" + strconv.FormatInt(id, 10), CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
}

// MustProduce writes raw values keyed by key to topic.
func MustProduce(tb testing.TB, topic string, msgs ...kafkago.Message) {
	tb.Helper()
	w := pkafka.NewWriter(stack.KafkaBrokers, topic)
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		tb.Fatal(err)
	}
}

func message(tb testing.TB, p order.Placed) kafkago.Message {
	tb.Helper()
	b, err := event.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return kafkago.Message{Key: []byte(strconv.FormatInt(p.OrderID, 10)), Value: b}
}

// waitDrained waits until the group has committed everything in topic.
func waitDrained(tb testing.TB, w *world) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lag, err := pkafka.Lag(context.Background(), stack.KafkaBrokers, w.group, w.topic)
		if err == nil && lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("group %s never caught up: lag %d (%v)", w.group, lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rows returns how many orders and lines exist for ids.
func rows(tb testing.TB, w *world, ids []int64) (orders, lines int) {
	tb.Helper()
	err := w.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM orders WHERE order_id = ANY($1)),
		(SELECT count(*) FROM order_lines WHERE order_id = ANY($1))`, ids).Scan(&orders, &lines)
	if err != nil {
		tb.Fatal(err)
	}
	return orders, lines
}

func TestConsumerStoresAnEventDeliveredTwiceOnce(t *testing.T) {
	w := MustWorld(t)
	ctx := context.Background()
	p := placed(1)
	if err := w.pending.Put(ctx, p); err != nil {
		t.Fatal(err)
	}
	MustProduce(t, w.topic, message(t, p), message(t, p))
	start(t, w.consumer(w.store, nil))
	waitDrained(t, w)
	if o, l := rows(t, w, []int64{p.OrderID}); o != 1 || l != 1 {
		t.Fatalf("got %d orders and %d lines, want 1 and 1", o, l)
	}
	got, err := w.store.Order(ctx, p.OrderID)
	if err != nil || got.Status != order.StatusPendingPayment {
		t.Fatalf("stored order: got %v (%v), want PENDING_PAYMENT", got.Status, err)
	}
	if _, err := w.pending.Get(ctx, p.OrderID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("pending record after the write: got %v, want ErrNotFound", err)
	}
}

func TestConsumerKilledBetweenWriteAndCommitLosesAndDuplicatesNothing(t *testing.T) {
	w := MustWorld(t)
	const n = 100
	var msgs []kafkago.Message
	var ids []int64
	for i := range n {
		p := placed(int64(i%7 + 1))
		msgs = append(msgs, message(t, p))
		ids = append(ids, p.OrderID)
	}
	MustProduce(t, w.topic, msgs...)

	// The first consumer stores one batch and dies before committing it.
	var firstStored atomic.Int64
	crash := errors.New("killed between write and commit")
	stop := start(t, w.consumer(w.store, func(_ context.Context, stored int) error {
		firstStored.Store(int64(stored))
		return crash
	}))
	deadline := time.Now().Add(60 * time.Second)
	for firstStored.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); !errors.Is(err, crash) {
		t.Fatalf("first consumer: got %v, want the crash", err)
	}
	if firstStored.Load() == 0 {
		t.Fatal("the first consumer never stored a batch")
	}
	lag, err := pkafka.Lag(context.Background(), stack.KafkaBrokers, w.group, w.topic)
	if err != nil || lag != n {
		t.Fatalf("lag after the crash: got %d (%v), want %d (nothing committed)", lag, err, n)
	}

	// The next consumer redelivers the stored batch and adds the rest.
	var secondStored atomic.Int64
	start(t, w.consumer(w.store, func(_ context.Context, stored int) error {
		secondStored.Add(int64(stored))
		return nil
	}))
	waitDrained(t, w)
	if o, l := rows(t, w, ids); o != n || l != n {
		t.Fatalf("got %d orders and %d lines, want %d of each", o, l, n)
	}
	if got, want := secondStored.Load(), n-firstStored.Load(); got != want {
		t.Fatalf("second consumer stored %d new orders, want %d", got, want)
	}
}

func TestConsumerDeadLettersPoisonAndGoesOn(t *testing.T) {
	w := MustWorld(t)
	before, after := placed(2), placed(2)
	invalid := placed(2)
	invalid.Quantity = 0
	// A second order for the request of the first: valid alone, refused
	// by the store.
	second := placed(2)
	second.IdempotencyKey = before.IdempotencyKey
	poison := []kafkago.Message{
		{Key: []byte("garbage"), Value: []byte{0xff, 0xff, 0xff}},
		message(t, invalid),
		message(t, second),
	}
	// One key puts every message on one partition, in this order.
	msgs := []kafkago.Message{message(t, before), poison[0], poison[1], message(t, after), poison[2]}
	for i := range msgs {
		msgs[i].Key = []byte("same-partition")
	}
	MustProduce(t, w.topic, msgs...)
	start(t, w.consumer(w.store, nil))
	waitDrained(t, w)
	if o, _ := rows(t, w, []int64{before.OrderID, after.OrderID, invalid.OrderID, second.OrderID}); o != 2 {
		t.Fatalf("got %d orders, want the 2 valid ones", o)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: stack.KafkaBrokers, Topic: w.dlq, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets := []int64{1, 2, 4}
	for i, want := range poison {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(m.Value) != string(want.Value) || h[orderkafka.HeaderDLQTopic] != w.topic ||
			h[orderkafka.HeaderDLQReason] == "" || h[orderkafka.HeaderDLQGroup] != w.group ||
			h[orderkafka.HeaderDLQOffset] != fmt.Sprint(offsets[i]) {
			t.Fatalf("dead letter %d: got value %x headers %v, want the poison message from %s offset %d", i, m.Value, h, w.topic, offsets[i])
		}
	}
}

// flakyStore fails its first writes, as a Postgres failover would.
type flakyStore struct {
	orderkafka.OrderWriter
	failures atomic.Int64
	calls    atomic.Int64
}

func (s *flakyStore) Insert(ctx context.Context, orders []order.Order) (int, []order.Order, error) {
	s.calls.Add(1)
	if s.failures.Add(-1) >= 0 {
		return 0, nil, errors.New("connection refused")
	}
	return s.OrderWriter.Insert(ctx, orders)
}

func TestConsumerRetriesAFailedWriteBeforeCommitting(t *testing.T) {
	w := MustWorld(t)
	p := placed(3)
	store := &flakyStore{OrderWriter: w.store}
	store.failures.Store(3)
	var lagAtWrite atomic.Int64
	lagAtWrite.Store(-1)
	MustProduce(t, w.topic, message(t, p))
	start(t, w.consumer(store, func(ctx context.Context, _ int) error {
		lag, err := pkafka.Lag(ctx, stack.KafkaBrokers, w.group, w.topic)
		if err != nil {
			return err
		}
		lagAtWrite.Store(lag)
		return nil
	}))
	waitDrained(t, w)
	if got := store.calls.Load(); got != 4 {
		t.Fatalf("insert attempts: got %d, want 4 (3 failures, then success)", got)
	}
	if got := lagAtWrite.Load(); got != 1 {
		t.Fatalf("lag when the write succeeded: got %d, want 1 (nothing committed before)", got)
	}
	if o, _ := rows(t, w, []int64{p.OrderID}); o != 1 {
		t.Fatalf("got %d orders, want 1", o)
	}
}
