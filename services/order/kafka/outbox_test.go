package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// step is an event as a reader dedupes it: (order, type, ref).
type step struct {
	order int64
	typ   orderv1.OrderEvent_Type
	ref   int64
}

// MustEventsTopic creates a one-partition topic of the test's own.
func MustEventsTopic(tb testing.TB) string {
	tb.Helper()
	topic := fmt.Sprintf("events-%s-%d", tb.Name(), nextID.Add(2))
	if err := pkafka.EnsureTopics(context.Background(), stack.KafkaBrokers, 1, stack.KafkaDurability, topic); err != nil {
		tb.Fatal(err)
	}
	return topic
}

// readEvents reads every message of topic's one partition and returns
// the events of the orders in ids, in the topic's order.
func readEvents(tb testing.TB, topic string, ids ...int64) []*orderv1.OrderEvent {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", stack.KafkaBrokers[0], topic, 0)
	if err != nil {
		tb.Fatal(err)
	}
	last, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		tb.Fatal(err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: stack.KafkaBrokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []*orderv1.OrderEvent
	for range last {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		var e orderv1.OrderEvent
		if err := proto.Unmarshal(m.Value, &e); err != nil {
			tb.Fatal(err)
		}
		if string(m.Key) != fmt.Sprint(e.GetOrderId()) {
			tb.Errorf("event of order %d keyed %q", e.GetOrderId(), m.Key)
		}
		if slices.Contains(ids, e.GetOrderId()) {
			out = append(out, &e)
		}
	}
	return out
}

// relayAll runs claims until the outbox is empty.
func relayAll(tb testing.TB, w *world, publish func(context.Context, []order.Event) error) {
	tb.Helper()
	for {
		n, err := w.store.Relay(context.Background(), 100, publish)
		if err != nil {
			tb.Fatal(err)
		}
		if n < 100 {
			return
		}
	}
}

// Each step of an order's life, written by the store, reaches
// orders.events exactly once, with its amount in cents, its channel and
// its time; repeating a step (a redelivered event, a retried payment)
// writes no second event.
func TestOutboxPublishesEachStepOnce(t *testing.T) {
	w := MustWorld(t)
	ctx := context.Background()
	topic := MustEventsTopic(t)
	pub := orderkafka.NewEventPublisher(stack.KafkaBrokers, topic)
	defer pub.Close()

	paid, ended := w.placed(t, 1).Order(order.StatusPendingPayment), w.placed(t, 2).Order(order.StatusPendingPayment)
	for range 2 { // the second insert is a redelivery
		if _, _, err := w.store.Insert(ctx, []order.Order{paid, ended}); err != nil {
			t.Fatal(err)
		}
	}
	paidAt := created.Add(time.Minute)
	pay := order.Paid{OrderID: paid.ID, PaymentID: 7, Channel: "wechat", Amount: paid.Payable, PaidAt: paidAt}
	for range 2 {
		if _, _, err := w.store.MarkPaid(ctx, pay); err != nil {
			t.Fatal(err)
		}
	}
	refund := order.Refund{ID: nextID.Add(2), OrderID: paid.ID, UserID: paid.UserID, IdempotencyKey: "r",
		Lines: []order.RefundLine{{LineID: paid.Lines[0].ID, Quantity: 1}}, CreatedAt: paidAt.Add(time.Minute)}
	for range 2 {
		if _, _, _, err := w.store.RecordRefund(ctx, refund); err != nil {
			t.Fatal(err)
		}
	}
	endedAt := created.Add(2 * time.Minute)
	for range 2 {
		if _, err := w.store.EndUnpaid(ctx, []int64{ended.ID}, order.StatusCancelled, endedAt); err != nil {
			t.Fatal(err)
		}
	}
	relayAll(t, w, pub.PublishEvents)

	got := map[step]*orderv1.OrderEvent{}
	for _, e := range readEvents(t, topic, paid.ID, ended.ID) {
		s := step{e.GetOrderId(), e.GetType(), e.GetRef()}
		if got[s] != nil {
			t.Errorf("event %v published twice", s)
		}
		got[s] = e
	}
	want := []struct {
		step    step
		amount  int64
		channel string
		at      time.Time
	}{
		{step{paid.ID, orderv1.OrderEvent_TYPE_STORED, 0}, paid.Payable, "", paid.CreatedAt},
		{step{paid.ID, orderv1.OrderEvent_TYPE_PAID, 0}, paid.Payable, "wechat", paidAt},
		{step{paid.ID, orderv1.OrderEvent_TYPE_REFUNDED, refund.ID}, paid.Payable, "", refund.CreatedAt},
		{step{ended.ID, orderv1.OrderEvent_TYPE_STORED, 0}, ended.Payable, "", ended.CreatedAt},
		{step{ended.ID, orderv1.OrderEvent_TYPE_CANCELLED, 0}, 0, "", endedAt},
	}
	if len(got) != len(want) {
		t.Errorf("%d events, want %d: %v", len(got), len(want), got)
	}
	for _, tt := range want {
		e := got[tt.step]
		switch {
		case e == nil:
			t.Errorf("no event %v", tt.step)
		case e.GetAmount() != tt.amount || e.GetChannel() != tt.channel || !e.GetAt().AsTime().Equal(tt.at) ||
			e.GetKind() != "SECKILL" || e.GetActivityId() != w.activity:
			t.Errorf("event %v = %v, want amount %d, channel %q, at %s, SECKILL of activity %d", tt.step, e, tt.amount, tt.channel, tt.at, w.activity)
		}
	}
}

// A relay that dies after the broker has its events but before the
// outbox rows are deleted (here: publish succeeds, then the claim fails
// and rolls back) leaves them for the next claim, which publishes them
// again: the reader sees each event twice, with the same (order, type,
// ref), and none is lost.
func TestOutboxRelayCrashAfterPublishRepeatsEvents(t *testing.T) {
	w := MustWorld(t)
	ctx := context.Background()
	topic := MustEventsTopic(t)
	pub := orderkafka.NewEventPublisher(stack.KafkaBrokers, topic)
	defer pub.Close()
	o := w.placed(t, 1).Order(order.StatusPendingPayment)
	if _, _, err := w.store.Insert(ctx, []order.Order{o}); err != nil {
		t.Fatal(err)
	}

	crash := errors.New("relay died before deleting")
	if _, err := w.store.Relay(ctx, 1000, func(ctx context.Context, es []order.Event) error {
		if err := pub.PublishEvents(ctx, es); err != nil {
			return err
		}
		return crash
	}); !errors.Is(err, crash) {
		t.Fatalf("relay = %v, want the crash", err)
	}
	relayAll(t, w, pub.PublishEvents)

	got := readEvents(t, topic, o.ID)
	if len(got) != 2 || !proto.Equal(got[0], got[1]) || got[0].GetType() != orderv1.OrderEvent_TYPE_STORED {
		t.Fatalf("events of the order = %v, want its STORED event twice, alike", got)
	}
	// The outbox is empty of it now: a further claim publishes nothing more.
	relayAll(t, w, pub.PublishEvents)
	if n := len(readEvents(t, topic, o.ID)); n != 2 {
		t.Errorf("%d events after another claim, want still 2", n)
	}
}
