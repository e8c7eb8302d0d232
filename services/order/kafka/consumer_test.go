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
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/event"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	"github.com/flashsale/flashsale/services/order/postgres"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"orders"}, Partitions: 4}, func(s *localstack.Stack) { stack = s })
}

// world is what one consumer test runs against: topics and a group of its
// own, the real store and pending records, and the real inventory service
// with an activity of its own.
type world struct {
	topic, dlq, group string
	pool              *pgxpool.Pool
	store             *postgres.Store
	pending           *orderredis.Pending
	inventory         inventoryv1.InventoryServiceClient
	marker            *ordergrpc.Inventory
	activity          int64
}

// MustWorld creates the test's topics (4 partitions, the dead-letter topic
// 1), starts an inventory service with a preheated activity and returns
// the world.
func MustWorld(tb testing.TB) *world {
	tb.Helper()
	ctx := context.Background()
	// Names of their own keep repeated runs (-count) apart too.
	name := tb.Name() + "-" + strconv.FormatInt(nextID.Add(2), 36)
	w := &world{topic: "placed-" + name, dlq: "dlq-" + name, group: "writer-" + name}
	if err := pkafka.EnsureTopics(ctx, stack.KafkaBrokers, 4, stack.KafkaDurability, w.topic); err != nil {
		tb.Fatal(err)
	}
	if err := pkafka.EnsureTopics(ctx, stack.KafkaBrokers, 1, stack.KafkaDurability, w.dlq); err != nil {
		tb.Fatal(err)
	}
	pool := stack.MustPool(tb, "orders", 8, postgres.Migrations)
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	w.pool, w.store, w.pending = pool, postgres.NewStore(pool), orderredis.NewPending(rdb, name+":", time.Hour)
	cc := localstack.MustDial(tb, servicetest.MustInventory(tb, stack.RedisAddr))
	w.inventory, w.marker, w.activity = inventoryv1.NewInventoryServiceClient(cc), ordergrpc.NewInventory(cc), nextID.Add(2)
	if _, err := w.inventory.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: w.activity, Stock: 1_000_000, PerUserLimit: 1_000_000}); err != nil {
		tb.Fatal(err)
	}
	return w
}

// consumer returns a consumer of w's topics writing through store, marking
// with w's inventory.
func (w *world) consumer(store order.OrderWriter, afterWrite func(context.Context, int) error) *orderkafka.Consumer {
	return w.consumerMarking(w.marker, store, afterWrite)
}

// consumerMarking returns a consumer of w's topics marking with marker.
func (w *world) consumerMarking(marker order.OrderMarker, store order.OrderWriter, afterWrite func(context.Context, int) error) *orderkafka.Consumer {
	retry := order.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	return orderkafka.NewConsumer(orderkafka.ConsumerConfig{
		Brokers: stack.KafkaBrokers, Topic: w.topic, DLQTopic: w.dlq, Group: w.group,
		Orders:    order.NewStoring(order.StoringConfig{Inventory: marker, Orders: store, Pending: w.pending, Retry: retry}),
		BatchSize: 20, BatchWait: 20 * time.Millisecond,
		RetryMin: retry.Min, RetryMax: retry.Max, AfterWrite: afterWrite,
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

// unreserved returns a new order of user in w's activity, with no
// reservation behind it.
func (w *world) unreserved(user int64) order.Placed {
	id := nextID.Add(2)
	return order.Placed{OrderID: id, LineID: id + 1, UserID: user, ActivityID: w.activity, SKUID: 9, Quantity: 1,
		UnitPrice: 990, IdempotencyKey: "k" + strconv.FormatInt(id, 10), CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
}

// placed returns a new order of user in w's activity, reserved in the
// inventory as the order service does before it publishes.
func (w *world) placed(tb testing.TB, user int64) order.Placed {
	tb.Helper()
	p := w.unreserved(user)
	_, err := w.inventory.Reserve(context.Background(), &inventoryv1.ReserveRequest{
		ActivityId: p.ActivityID, UserId: p.UserID, Quantity: p.Quantity, OrderId: p.OrderID,
		IdempotencyKey: p.IdempotencyKey, ExpiresAt: timestamppb.New(p.ExpiresAt),
	})
	if err != nil {
		tb.Fatalf("reserve order %d: %v", p.OrderID, err)
	}
	return p
}

// MustProduce writes raw values keyed by key to topic.
func MustProduce(tb testing.TB, topic string, msgs ...kafkago.Message) {
	tb.Helper()
	w := pkafka.NewWriter(stack.KafkaBrokers, topic, pkafka.ByKey)
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

// MustReadDeadLetters reads the first n messages of w's dead-letter topic.
func MustReadDeadLetters(tb testing.TB, w *world, n int) []kafkago.Message {
	tb.Helper()
	return servicetest.MustReadDeadLetters(tb, stack.KafkaBrokers, w.dlq, w.group+"-dlq", n, func(kafkago.Message) bool { return true })
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
	p := w.placed(t, 1)
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
		p := w.placed(t, int64(i%7+1))
		msgs = append(msgs, message(t, p))
		ids = append(ids, p.OrderID)
	}
	MustProduce(t, w.topic, msgs...)

	// The first consumer stores one batch and dies before committing it.
	var firstStored atomic.Int64
	crash := errors.New("killed between write and commit")
	first := w.consumer(w.store, func(_ context.Context, stored int) error {
		firstStored.Store(int64(stored))
		return crash
	})
	// It ends on the crash by itself: stopping it once the batch is
	// stored would race the crash with the cancel.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := first.Run(ctx); !errors.Is(err, crash) {
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
	before, after := w.placed(t, 2), w.placed(t, 2)
	invalid := w.placed(t, 2)
	invalid.Quantity = 0
	// A second order for the request of the first: valid alone, refused
	// by the store.
	second := w.placed(t, 2)
	second.IdempotencyKey = before.IdempotencyKey
	// A payment window Postgres's microseconds close: its CHECK would
	// refuse it for good (a review found it stopped the consumer).
	shut := w.placed(t, 2)
	shut.CreatedAt = shut.CreatedAt.Truncate(time.Microsecond)
	shut.ExpiresAt = shut.CreatedAt.Add(500 * time.Nanosecond)
	// A pressure-test event on the real topic (a producer's bug): valid,
	// but never stored in the real tables.
	marked := message(t, w.placed(t, 2))
	marked.Headers = append(marked.Headers, kafkago.Header{Key: shadow.KafkaHeader, Value: []byte("1")})
	poison := []kafkago.Message{
		{Key: []byte("garbage"), Value: []byte{0xff, 0xff, 0xff}},
		message(t, invalid),
		message(t, shut),
		marked,
		message(t, second),
	}
	// One key puts every message on one partition, in this order.
	msgs := []kafkago.Message{message(t, before), poison[0], poison[1], poison[2], poison[3], message(t, after), poison[4]}
	for i := range msgs {
		msgs[i].Key = []byte("same-partition")
	}
	MustProduce(t, w.topic, msgs...)
	start(t, w.consumer(w.store, nil))
	waitDrained(t, w)
	if o, _ := rows(t, w, []int64{before.OrderID, after.OrderID, invalid.OrderID, shut.OrderID, second.OrderID}); o != 2 {
		t.Fatalf("got %d orders, want the 2 valid ones", o)
	}

	offsets := []int64{1, 2, 3, 4, 6}
	for i, m := range MustReadDeadLetters(t, w, len(poison)) {
		h := servicetest.Headers(m)
		if string(m.Value) != string(poison[i].Value) || h[orderkafka.HeaderDLQTopic] != w.topic ||
			h[orderkafka.HeaderDLQReason] == "" || h[orderkafka.HeaderDLQGroup] != w.group ||
			h[orderkafka.HeaderDLQOffset] != fmt.Sprint(offsets[i]) {
			t.Fatalf("dead letter %d: got value %x headers %v, want the poison message from %s offset %d", i, m.Value, h, w.topic, offsets[i])
		}
	}
}

func TestConsumerStoresOnlyWhatTheInventoryMarks(t *testing.T) {
	w := MustWorld(t)
	ctx := context.Background()
	release := func(p order.Placed, unpublished bool) {
		t.Helper()
		if _, err := w.inventory.Release(ctx, &inventoryv1.ReleaseRequest{
			ActivityId: p.ActivityID, OrderId: p.OrderID, Unpublished: unpublished}); err != nil {
			t.Fatal(err)
		}
	}
	reserved := w.placed(t, 4)
	// Expiry released it after its event was sent: the order stands.
	expired := w.placed(t, 4)
	release(expired, false)
	// The order service could not publish it and told the buyer so.
	unpublished := w.placed(t, 4)
	release(unpublished, true)
	unknown := w.unreserved(4)
	all := []order.Placed{reserved, expired, unpublished, unknown}
	var msgs []kafkago.Message
	for _, p := range all {
		if err := w.pending.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
		m := message(t, p)
		m.Key = []byte("same-partition") // keeps the dead letters in order
		msgs = append(msgs, m)
	}
	stock := MustStock(t, w)
	MustProduce(t, w.topic, msgs...)
	start(t, w.consumer(w.store, nil))
	waitDrained(t, w)

	for _, tt := range []struct {
		p      order.Placed
		stored bool
	}{{reserved, true}, {expired, true}, {unpublished, false}, {unknown, false}} {
		if o, l := rows(t, w, []int64{tt.p.OrderID}); o != l || (o == 1) != tt.stored {
			t.Errorf("order %d: got %d orders and %d lines, want stored %v", tt.p.OrderID, o, l, tt.stored)
		}
		if _, err := w.pending.Get(ctx, tt.p.OrderID); !errors.Is(err, order.ErrNotFound) {
			t.Errorf("pending record of order %d: got %v, want ErrNotFound", tt.p.OrderID, err)
		}
	}
	wantReasons := []string{orderkafka.ReasonReleasedUnpublished, orderkafka.ReasonNoReservation}
	for i, m := range MustReadDeadLetters(t, w, 2) {
		if h := servicetest.Headers(m); string(m.Value) != string(msgs[2+i].Value) || h[orderkafka.HeaderDLQReason] != wantReasons[i] ||
			h[orderkafka.HeaderDLQOffset] != fmt.Sprint(2+i) {
			t.Errorf("dead letter %d: got headers %v, want the event at offset %d with reason %q", i, h, 2+i, wantReasons[i])
		}
	}
	// The stored order is marked: its stock can no longer be released as
	// unpublished.
	_, err := w.inventory.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: reserved.ActivityID, OrderId: reserved.OrderID, Unpublished: true})
	if got := errcode.Of(err); got != errcode.Conflict {
		t.Errorf("unpublished release of the stored order: got %v, want CONFLICT", err)
	}
	if got := MustStock(t, w); got != stock {
		t.Errorf("stock: got %d, want %d (the consumer never moves stock)", got, stock)
	}
}

// MustStock returns the remaining stock of w's activity.
func MustStock(tb testing.TB, w *world) int64 {
	tb.Helper()
	st, err := w.inventory.GetStock(context.Background(), &inventoryv1.GetStockRequest{ActivityId: w.activity})
	if err != nil {
		tb.Fatal(err)
	}
	return st.GetRemaining()
}

// failures makes a dependency fail its first calls.
type failures struct {
	left  atomic.Int64 // calls still to fail
	calls atomic.Int64
}

// fail counts a call and reports whether it must fail.
func (f *failures) fail() bool {
	f.calls.Add(1)
	return f.left.Add(-1) >= 0
}

// flakyMarker fails its first calls, as an unreachable inventory would.
type flakyMarker struct {
	order.OrderMarker
	failures
}

func (m *flakyMarker) MarkOrdered(ctx context.Context, ps []order.Placed) ([]order.MarkOutcome, error) {
	if m.fail() {
		return nil, errors.New("inventory unreachable")
	}
	return m.OrderMarker.MarkOrdered(ctx, ps)
}

// flakyStore fails its first writes, as a Postgres failover would.
type flakyStore struct {
	order.OrderWriter
	failures
}

func (s *flakyStore) Insert(ctx context.Context, orders []order.Order) (int, []order.Order, error) {
	if s.fail() {
		return 0, nil, errors.New("connection refused")
	}
	return s.OrderWriter.Insert(ctx, orders)
}

func TestConsumerRetriesFailuresBeforeCommitting(t *testing.T) {
	tests := []struct {
		name                     string
		markFailures, writeFails int64
		wantMarks, wantWrites    int64 // attempts when the write succeeds
	}{
		{"a failed write", 0, 3, 1, 4},
		{"an unreachable inventory, before any write", 3, 0, 4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := MustWorld(t)
			p := w.placed(t, 3)
			marker := &flakyMarker{OrderMarker: w.marker}
			marker.left.Store(tt.markFailures)
			store := &flakyStore{OrderWriter: w.store}
			store.left.Store(tt.writeFails)
			var marks, writes, lag atomic.Int64
			lag.Store(-1)
			MustProduce(t, w.topic, message(t, p))
			start(t, w.consumerMarking(marker, store, func(ctx context.Context, _ int) error {
				marks.Store(marker.calls.Load())
				writes.Store(store.calls.Load())
				n, err := pkafka.Lag(ctx, stack.KafkaBrokers, w.group, w.topic)
				lag.Store(n)
				return err
			}))
			waitDrained(t, w)
			if m, wr := marks.Load(), writes.Load(); m != tt.wantMarks || wr != tt.wantWrites {
				t.Fatalf("attempts when stored: got %d marks and %d writes, want %d and %d", m, wr, tt.wantMarks, tt.wantWrites)
			}
			if got := lag.Load(); got != 1 {
				t.Fatalf("lag when the write succeeded: got %d, want 1 (nothing committed before)", got)
			}
			if o, _ := rows(t, w, []int64{p.OrderID}); o != 1 {
				t.Fatalf("got %d orders, want 1", o)
			}
		})
	}
}

// A stop in the middle of a batch finishes it: the batch in hand is
// stored and committed, Run returns nil, and the rest waits for the next
// consumer.
func TestConsumerStopFinishesTheBatchInHand(t *testing.T) {
	w := MustWorld(t)
	const n = 60
	var msgs []kafkago.Message
	for i := range n {
		msgs = append(msgs, message(t, w.placed(t, int64(i%5+1))))
	}
	MustProduce(t, w.topic, msgs...)
	var stored atomic.Int64
	inBatch := make(chan struct{})
	var once sync.Once
	stop := start(t, w.consumer(w.store, func(ctx context.Context, n int) error {
		once.Do(func() {
			stored.Store(int64(n))
			close(inBatch)
			<-ctx.Done() // the stop arrives while the batch is in hand
		})
		return nil
	}))
	<-inBatch
	if err := stop(); err != nil {
		t.Fatalf("Run after a stop = %v, want nil", err)
	}
	lag, err := pkafka.Lag(context.Background(), stack.KafkaBrokers, w.group, w.topic)
	if got, want := lag, n-stored.Load(); err != nil || got != want {
		t.Fatalf("lag after the stop = %d (%v), want %d: the batch in hand (%d) committed, nothing more", got, err, want, stored.Load())
	}
}
