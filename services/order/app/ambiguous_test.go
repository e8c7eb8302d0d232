package app_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/errcode"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
	"github.com/flashsale/flashsale/services/order/event"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// errAmbiguous is what the ambiguous publisher answers: the error of a
// produce that timed out, whether or not the broker appended the event.
var errAmbiguous = errors.New("publish timed out")

// ambiguousPublisher fails every publish. When land is set it first
// publishes for real and waits until the consumer has stored the order,
// so the error comes after the event landed and was consumed.
type ambiguousPublisher struct {
	order.Publisher
	land bool
	db   func() *pgxpool.Pool

	mu     sync.Mutex
	placed []order.Placed
}

func (a *ambiguousPublisher) Publish(ctx context.Context, p order.Placed) error {
	a.mu.Lock()
	a.placed = append(a.placed, p)
	a.mu.Unlock()
	if !a.land {
		return errAmbiguous
	}
	if err := a.Publisher.Publish(ctx, p); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n, err := storedOrders(ctx, a.db(), p.OrderID); err != nil || n > 0 {
			return errors.Join(errAmbiguous, err)
		}
	}
	return errors.Join(errAmbiguous, errors.New("the consumer never stored the order"))
}

// Placed returns the orders it was asked to publish.
func (a *ambiguousPublisher) Placed() []order.Placed {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]order.Placed(nil), a.placed...)
}

// MustAmbiguousPlatform starts the platform with its publisher wrapped in
// an ambiguousPublisher.
func MustAmbiguousPlatform(tb testing.TB, land bool) (*platform, *ambiguousPublisher) {
	tb.Helper()
	var (
		mu sync.Mutex
		p  *platform
	)
	pub := &ambiguousPublisher{land: land, db: func() *pgxpool.Pool {
		mu.Lock()
		defer mu.Unlock()
		return p.db
	}}
	started := MustPlatform(tb, nil, app.WrapPublisher(func(real order.Publisher) order.Publisher {
		pub.Publisher = real
		return pub
	}))
	mu.Lock()
	p = started
	mu.Unlock()
	return p, pub
}

func storedOrders(ctx context.Context, db *pgxpool.Pool, orderID int64) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE order_id = $1`, orderID).Scan(&n)
	return n, err
}

// MustReservation returns the inventory's reservation of an order.
func MustReservation(tb testing.TB, p *platform, activity, orderID int64) *inventoryv1.Reservation {
	tb.Helper()
	r, err := p.inventory.GetReservation(context.Background(), &inventoryv1.GetReservationRequest{ActivityId: activity, OrderId: orderID})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestAmbiguousPublishThatLandedKeepsTheOrder(t *testing.T) {
	p, pub := MustAmbiguousPlatform(t, true)
	watch := MustWatchProduce(t)
	a := p.MustActivity(t, 5, 1, -time.Minute)
	ctx := context.Background()
	user := newUsers(1)

	// The event lands and the consumer marks and stores the order before
	// the publisher reports its error: the unpublished release is refused
	// and the buyer gets the order.
	id, err := place(ctx, p, user, a.GetActivityId(), "landed")
	if err != nil {
		t.Fatalf("place: got %v, want the order id (the order was stored)", err)
	}
	placed := pub.Placed()
	if len(placed) != 1 || placed[0].OrderID != id {
		t.Fatalf("order id: got %d, want the published order's (%v)", id, placed)
	}
	MustDrain(t)
	if n, err := storedOrders(ctx, p.db, id); err != nil || n != 1 {
		t.Fatalf("stored orders %d: got %d (%v), want 1", id, n, err)
	}
	if got := watch.Count(id); got != 1 {
		t.Fatalf("OrderPlaced records for order %d: got %d, want 1", id, got)
	}
	if got := MustStatus(t, p, id, user); got != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT {
		t.Fatalf("status: got %s, want PENDING_PAYMENT", got)
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 4 {
		t.Fatalf("stock: got %d, want 4 (the stored order keeps its unit)", got)
	}
	if r := MustReservation(t, p, a.GetActivityId(), id); r.GetStatus() != inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED {
		t.Fatalf("reservation: got %s, want RESERVED", r.GetStatus())
	}
	// The buyer's retry answers the same order.
	if again := MustPlace(t, p, user, a.GetActivityId(), "landed"); again != id {
		t.Fatalf("retry: got order %d, want %d", again, id)
	}
}

func TestAmbiguousPublishReleasedFirstDropsTheLateEvent(t *testing.T) {
	p, pub := MustAmbiguousPlatform(t, false)
	a := p.MustActivity(t, 5, 1, -time.Minute)
	ctx := context.Background()
	user := newUsers(1)

	// The publish fails and the unpublished release wins: the buyer is
	// told to retry and the unit is back.
	_, err := place(ctx, p, user, a.GetActivityId(), "late")
	if got := errcode.Of(err); got != errcode.Unavailable {
		t.Fatalf("place: got %v (%s), want UNAVAILABLE", err, got)
	}
	placed := pub.Placed()
	if len(placed) != 1 {
		t.Fatalf("publishes: got %d, want 1", len(placed))
	}
	lost := placed[0]
	if got := MustStock(t, p, a.GetActivityId()); got != 5 {
		t.Fatalf("stock after the release: got %d, want 5", got)
	}

	// The event arrives anyway, and once more later (a producer retry):
	// the consumer drops it to the dead-letter topic each time.
	b, err := event.Marshal(lost)
	if err != nil {
		t.Fatal(err)
	}
	w := pkafka.NewWriter(stack.KafkaBrokers, orderkafka.TopicPlaced, pkafka.ByKey)
	defer w.Close()
	for range 2 {
		if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte(strconv.FormatInt(lost.OrderID, 10)), Value: b}); err != nil {
			t.Fatal(err)
		}
		MustDrain(t)
	}

	if n, err := storedOrders(ctx, p.db, lost.OrderID); err != nil || n != 0 {
		t.Fatalf("stored orders %d: got %d (%v), want none", lost.OrderID, n, err)
	}
	key := strconv.FormatInt(lost.OrderID, 10)
	dead := servicetest.MustReadDeadLetters(t, stack.KafkaBrokers, orderkafka.TopicPlacedDLQ, "dlq-reader-"+key, 2,
		func(m kafkago.Message) bool { return string(m.Key) == key })
	for i, m := range dead {
		if got := servicetest.Headers(m)[orderkafka.HeaderDLQReason]; got != orderkafka.ReasonReleasedUnpublished {
			t.Fatalf("dead letter %d: reason %q, want %q", i, got, orderkafka.ReasonReleasedUnpublished)
		}
	}
	_, err = p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: lost.OrderID, UserId: user})
	if got := errcode.Of(err); got != errcode.NotFound {
		t.Fatalf("the dropped order: got %v, want NOT_FOUND", err)
	}
	r := MustReservation(t, p, a.GetActivityId(), lost.OrderID)
	if r.GetStatus() != inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED {
		t.Fatalf("reservation: got %s, want RELEASED", r.GetStatus())
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 5 {
		t.Fatalf("stock after the late event: got %d, want 5 (restored exactly once)", got)
	}
}
