package app_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order/app"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// lagLine matches the consumer-lag gauge of the order-writer group.
var lagLine = regexp.MustCompile(`(?m)^order_consumer_lag_messages\{group="order-writer",topic="orders.placed"\} (\d+)$`)

// MustLag scrapes the order service's admin port for the consumer lag.
func MustLag(tb testing.TB, admin string) int64 {
	tb.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := lagLine.FindSubmatch(body)
	if m == nil {
		tb.Fatalf("no consumer lag in the metrics:\n%s", body)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// The lag gauge counts a stored but uncommitted batch, and drops to zero
// once the batch is committed.
func TestMetricsReportConsumerLag(t *testing.T) {
	// The first batch that stores an order announces itself on held and
	// waits for release; later ones find held full and go on.
	held, release := make(chan struct{}, 1), make(chan struct{})
	var admin string
	p := MustPlatform(t, func(c *app.Config) { admin = c.AdminListener.Addr().String() },
		app.AfterConsumerWrite(func(ctx context.Context, stored int) error {
			if stored > 0 {
				select {
				case held <- struct{}{}:
					<-release
				default:
				}
			}
			return nil
		}))
	MustDrain(t)
	a := p.MustActivity(t, 10, 2, -time.Minute)
	MustPlace(t, p, newUsers(1), a.GetActivityId(), "lag-1")
	<-held
	if got := MustLag(t, admin); got < 1 {
		t.Errorf("lag while a batch is held = %d, want at least 1", got)
	}
	close(release)
	MustDrain(t)
	if got := MustLag(t, admin); got != 0 {
		t.Errorf("lag after the commit = %d, want 0", got)
	}
}

// counter reads the counter name with exactly labels from the order
// service's admin port, as Prometheus parses it; -1 when there is none.
func counter(tb testing.TB, admin, name string, labels map[string]string) float64 {
	tb.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	for _, m := range families[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if maps.Equal(got, labels) {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// The business counters move once per fact, where it became true: an
// order accepted (202), stored by the consumer, paid (a retried payment
// counts nothing more), cancelled, expired; a poison event dead-lettered;
// and a paid order whose reservation was already released counts as an
// invariant violation.
func TestMetricsCountEachOrderFactOnce(t *testing.T) {
	// The expiry worker is limited to this test's activity (other tests
	// leave due orders in the shared Redis and Postgres): the activity
	// is made by a platform that stops before the one under test starts.
	var act int64
	t.Run("activity", func(t *testing.T) {
		act = MustPlatform(t, nil, app.WithoutExpiry()).MustActivity(t, 10, 1, -time.Minute).GetActivityId()
	})
	var admin string
	p := MustPlatform(t, func(c *app.Config) {
		admin = c.AdminListener.Addr().String()
		c.ExpiryPoll = 20 * time.Millisecond
	}, app.ExpiryOf(act))
	ctx := context.Background()
	seckill := map[string]string{"kind": "seckill"}
	read := func(name string, labels map[string]string) float64 { return counter(t, admin, name, labels) }
	for _, name := range []string{"order_orders_placed_total", "order_orders_stored_total", "order_orders_expired_total",
		"order_orders_cancelled_total", "order_refunded_units_total", "order_refunded_cents_total"} {
		if got := read(name, seckill); got != 0 {
			t.Errorf("%s{kind=seckill} before any order = %v, want a series at 0", name, got)
		}
	}
	if got := read("order_invariant_violations_total", map[string]string{"invariant": "paid_reservation_unconfirmed"}); got != 0 {
		t.Errorf("violations before any = %v, want a series at 0", got)
	}

	users := newUsers(5)
	ids := make([]int64, 5)
	for i := range ids {
		ids[i] = MustPlace(t, p, users+int64(i), act, "facts")
	}
	// A retried request answers the first order and places nothing.
	if again := MustPlace(t, p, users, act, "facts"); again != ids[0] {
		t.Fatalf("retry answered order %d, want %d", again, ids[0])
	}
	// A poison event reaches the dead-letter topic.
	w := pkafka.NewWriter(stack.KafkaBrokers, orderkafka.TopicPlaced, pkafka.ByKey)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("poison"), Value: []byte("not an order")}); err != nil {
		t.Fatal(err)
	}
	MustDrain(t)
	if got := read("order_orders_placed_total", seckill); got != 5 {
		t.Errorf("placed = %v, want 5", got)
	}
	if got := read("order_orders_stored_total", seckill); got != 5 {
		t.Errorf("stored = %v, want 5", got)
	}
	if got := read("order_dead_letters_total", map[string]string{"reason": "poison"}); got != 1 {
		t.Errorf("poison dead letters = %v, want 1", got)
	}

	// ids[0] is cancelled; ids[1] is paid, and its payment retried.
	if _, err := cancelOrder(p, ids[0], users); err != nil {
		t.Fatal(err)
	}
	pay := &orderv1.MarkPaidRequest{OrderId: ids[1], PaymentId: 1, Channel: "alipay", Amount: 99_00, PaidAt: timestamppb.New(p.clock.Now())}
	for range 2 {
		if resp, err := p.order.MarkPaid(ctx, pay); err != nil || !resp.GetAccepted() {
			t.Fatalf("mark paid: %v, %v", resp, err)
		}
	}
	paid := map[string]string{"kind": "seckill", "channel": "alipay"}
	if got := read("order_orders_paid_total", paid); got != 1 {
		t.Errorf("paid = %v, want 1", got)
	}
	if got := read("order_gmv_cents_total", paid); got != 99_00 {
		t.Errorf("GMV = %v cents, want 9900", got)
	}
	if got := read("order_orders_cancelled_total", seckill); got != 1 {
		t.Errorf("cancelled = %v, want 1", got)
	}

	// ids[2]'s stock is given back behind the books' back, then it is
	// paid: the payment stands, but the books disagree.
	if _, err := p.inventory.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: ids[2]}); err != nil {
		t.Fatal(err)
	}
	pay = &orderv1.MarkPaidRequest{OrderId: ids[2], PaymentId: 2, Channel: "wechat", Amount: 99_00, PaidAt: timestamppb.New(p.clock.Now())}
	if _, err := p.order.MarkPaid(ctx, pay); err != nil {
		t.Fatal(err)
	}
	if got := read("order_invariant_violations_total", map[string]string{"invariant": "paid_reservation_unconfirmed"}); got != 1 {
		t.Errorf("paid orders without a confirmed reservation = %v, want 1", got)
	}

	// The two unpaid orders expire.
	p.clock.Advance(app.DefaultPaymentWindow + time.Second)
	MustEventually(t, 30*time.Second, func() (bool, string) {
		got := read("order_orders_expired_total", seckill)
		return got >= 2, fmt.Sprintf("expired = %v, want 2", got)
	})
	for i := 3; i < len(ids); i++ {
		if got := MustStatus(t, p, ids[i], users+int64(i)); got != orderv1.OrderStatus_ORDER_STATUS_EXPIRED {
			t.Errorf("order %d: %s, want EXPIRED", ids[i], got)
		}
	}
	if got := read("order_orders_expired_total", seckill); got != 2 {
		t.Errorf("expired = %v, want 2", got)
	}
}
