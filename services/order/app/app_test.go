package app_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/errcode"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order/app"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
	"github.com/flashsale/flashsale/services/order/postgres"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func place(ctx context.Context, p *platform, user, activity int64, key string) (int64, error) {
	resp, err := p.order.PlaceSeckillOrder(ctx, &orderv1.PlaceSeckillOrderRequest{
		UserId: user, ActivityId: activity, Quantity: 1, IdempotencyKey: key})
	return resp.GetOrderId(), err
}

// MustPlace places one unit for user and fails the test on an error.
func MustPlace(tb testing.TB, p *platform, user, activity int64, key string) int64 {
	tb.Helper()
	id, err := place(context.Background(), p, user, activity, key)
	if err != nil {
		tb.Fatalf("place (user %d, key %s): %v", user, key, err)
	}
	return id
}

// MustStatus returns the status GetOrder answers for the owner.
func MustStatus(tb testing.TB, p *platform, orderID, user int64) orderv1.OrderStatus {
	tb.Helper()
	o, err := p.order.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: orderID, UserId: user})
	if err != nil {
		tb.Fatalf("get order %d: %v", orderID, err)
	}
	return o.GetStatus()
}

// MustStock returns the activity's remaining stock in the inventory.
func MustStock(tb testing.TB, p *platform, activity int64) int64 {
	tb.Helper()
	s, err := p.inventory.GetStock(context.Background(), &inventoryv1.GetStockRequest{ActivityId: activity})
	if err != nil {
		tb.Fatal(err)
	}
	return s.GetRemaining()
}

func TestPlacedOrderIsProcessingThenPendingPayment(t *testing.T) {
	p := MustPlatform(t, nil)
	ctx := context.Background()
	a := p.MustActivity(t, 10, 2, -time.Minute)
	user := newUsers(1)

	// Holding a lock that conflicts with INSERT (not with SELECT) keeps
	// the consumer from storing the order while we look at it in flight.
	tx, err := p.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // released below; a no-op then
	if _, err := tx.Exec(ctx, "LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	id := MustPlace(t, p, user, a.GetActivityId(), "happy-1")
	got, err := p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id, UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	line := got.GetLines()[0]
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PROCESSING || got.GetKind() != orderv1.OrderKind_ORDER_KIND_SECKILL ||
		line.GetSkuId() != a.GetSkuId() || line.GetUnitPrice() != 99_00 || got.GetPayable() != 99_00 ||
		!got.GetExpiresAt().AsTime().Equal(p.clock.Now().Add(app.DefaultPaymentWindow)) {
		t.Fatalf("in flight: got %v, want PROCESSING, one unit of sku %d at 9900, expiring in 15m", got, a.GetSkuId())
	}
	list, err := p.order.ListOrders(ctx, &orderv1.ListOrdersRequest{UserId: user})
	if err != nil || len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != id {
		t.Fatalf("list in flight: got %v (%v), want order %d", list, err, id)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	MustDrain(t)
	if got := MustStatus(t, p, id, user); got != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT {
		t.Fatalf("after the consumer: got %s, want PENDING_PAYMENT", got)
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 9 {
		t.Fatalf("stock: got %d, want 9", got)
	}
	list, err = p.order.ListOrders(ctx, &orderv1.ListOrdersRequest{UserId: user})
	if err != nil || len(list.GetOrders()) != 1 || list.GetOrders()[0].GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT {
		t.Fatalf("list when stored: got %v (%v), want order %d PENDING_PAYMENT once", list, err, id)
	}
}

func TestReplayAnswersTheFirstOrderAndPublishesOnce(t *testing.T) {
	p := MustPlatform(t, nil)
	watch := MustWatchProduce(t)
	a := p.MustActivity(t, 10, 1, -time.Minute)
	user := newUsers(1)
	first := MustPlace(t, p, user, a.GetActivityId(), "replay-1")
	for range 3 {
		if again := MustPlace(t, p, user, a.GetActivityId(), "replay-1"); again != first {
			t.Fatalf("replay: got order %d, want %d", again, first)
		}
	}
	MustDrain(t)
	if got := watch.Count(first); got != 1 {
		t.Fatalf("OrderPlaced records for order %d: got %d, want 1", first, got)
	}
	var n int
	if err := p.db.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE user_id = $1 AND activity_id = $2`,
		user, a.GetActivityId()).Scan(&n); err != nil || n != 1 {
		t.Fatalf("stored orders: got %d (%v), want 1", n, err)
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 9 {
		t.Fatalf("stock: got %d, want 9 (one reservation)", got)
	}
}

func TestFailedPublishReleasesTheReservation(t *testing.T) {
	p := MustPlatform(t, nil)
	watch := MustWatchProduce(t)
	a := p.MustActivity(t, 5, 1, -time.Minute)
	ctx := context.Background()
	user := newUsers(1)

	watch.failing.Store(true)
	_, err := place(ctx, p, user, a.GetActivityId(), "broker-down")
	watch.failing.Store(false)
	if got := errcode.Of(err); got != errcode.Unavailable {
		t.Fatalf("place while the broker fails: got %v (%s), want UNAVAILABLE", err, got)
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 5 {
		t.Fatalf("stock after the failed publish: got %d, want 5 (released)", got)
	}
	ids := watch.IDs()
	if len(ids) == 0 {
		t.Fatal("the broker saw no OrderPlaced attempt")
	}
	for _, id := range ids {
		_, err := p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id, UserId: user})
		if got := errcode.Of(err); got != errcode.NotFound {
			t.Fatalf("order %d of the failed publish: got %v, want NOT_FOUND", id, err)
		}
	}
	list, err := p.order.ListOrders(ctx, &orderv1.ListOrdersRequest{UserId: user})
	if err != nil || len(list.GetOrders()) != 0 {
		t.Fatalf("the buyer's orders: got %v (%v), want none", list, err)
	}

	// The key is free again: the retry reserves and goes through.
	id := MustPlace(t, p, user, a.GetActivityId(), "broker-down")
	for _, failed := range ids {
		if id == failed {
			t.Fatalf("the retry answered the failed order id %d", id)
		}
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 4 {
		t.Fatalf("stock after the retry: got %d, want 4", got)
	}
}

func TestSomeoneElsesOrderIsForbidden(t *testing.T) {
	p := MustPlatform(t, nil)
	a := p.MustActivity(t, 5, 1, -time.Minute)
	owner, other := newUsers(1), newUsers(1)
	id := MustPlace(t, p, owner, a.GetActivityId(), "mine")
	tests := []struct {
		name  string
		order int64
		user  int64
		want  errcode.Code
	}{
		{"another user", id, other, errcode.Forbidden},
		{"unknown order", id + 1, owner, errcode.NotFound},
		{"no order id", 0, owner, errcode.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.order.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: tt.order, UserId: tt.user})
			if got := errcode.Of(err); got != tt.want {
				t.Fatalf("got %v (%s), want %s", err, got, tt.want)
			}
		})
	}
	MustDrain(t)
	_, err := p.order.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: id, UserId: other})
	if got := errcode.Of(err); got != errcode.Forbidden {
		t.Fatalf("stored order of another user: got %v, want FORBIDDEN", err)
	}
}

func TestActivityWindowFollowsTheClock(t *testing.T) {
	p := MustPlatform(t, nil)
	a := p.MustActivity(t, 5, 1, 10*time.Minute)
	ctx := context.Background()
	tests := []struct {
		name    string
		advance time.Duration
		want    errcode.Code
	}{
		{"before the start", 0, errcode.ActivityNotActive},
		{"at the start", 10 * time.Minute, ""},
		// A key with no order may have one on its way for a placement's
		// longest publish after the end: UNAVAILABLE, to come back.
		{"at the end", time.Hour, errcode.Unavailable},
		{"past a placement's publish after the end", 15 * time.Second, errcode.ActivityNotActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.clock.Advance(tt.advance)
			_, err := place(ctx, p, newUsers(1), a.GetActivityId(), "window")
			if got := errcode.Of(err); err != nil && got != tt.want || err == nil && tt.want != "" {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPlaceRejectsAsTheInventoryDecides(t *testing.T) {
	p := MustPlatform(t, nil)
	a := p.MustActivity(t, 1, 1, -time.Minute)
	ctx := context.Background()
	first, second := newUsers(1), newUsers(1)
	MustPlace(t, p, first, a.GetActivityId(), "first")
	tests := []struct {
		name     string
		user     int64
		activity int64
		qty      int64
		want     errcode.Code
	}{
		{"the same user again", first, a.GetActivityId(), 1, errcode.LimitExceeded},
		{"another user, no stock left", second, a.GetActivityId(), 1, errcode.SoldOut},
		{"more than the limit at once", second, a.GetActivityId(), 2, errcode.LimitExceeded},
		{"unknown activity", second, a.GetActivityId() + 1, 1, errcode.NotFound},
		{"no quantity", second, a.GetActivityId(), 0, errcode.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.order.PlaceSeckillOrder(ctx, &orderv1.PlaceSeckillOrderRequest{
				UserId: tt.user, ActivityId: tt.activity, Quantity: tt.qty, IdempotencyKey: "k-" + tt.name})
			if got := errcode.Of(err); got != tt.want {
				t.Fatalf("got %v (%s), want %s", err, got, tt.want)
			}
		})
	}
}

// A batch places each of its orders as the order's own call would: the
// same answers and codes, in the requests' order, each order within its
// own deadline (one already past is answered UNAVAILABLE and reserves
// nothing) while the others are placed.
func TestBatchAnswersEachOrderAsItsOwnCallWould(t *testing.T) {
	p := MustPlatform(t, nil)
	a := p.MustActivity(t, 3, 1, -time.Minute)
	act := a.GetActivityId()
	first, second, late := newUsers(1), newUsers(1), newUsers(1)
	MustPlace(t, p, first, act, "first")
	orders := []struct {
		user, activity, qty int64
		deadline            time.Time
		want                errcode.Code // "" for a placed order
	}{
		{second, act, 1, time.Time{}, ""},
		{first, act, 1, time.Time{}, errcode.LimitExceeded},
		{late, act, 1, time.Now().Add(-time.Second), errcode.Unavailable},
		{second, act + 1, 1, time.Time{}, errcode.NotFound},
		{second, act, 0, time.Time{}, errcode.InvalidArgument},
	}
	req := &orderv1.PlaceSeckillOrderBatchRequest{}
	for i, o := range orders {
		b := &orderv1.BatchedSeckillOrder{Request: &orderv1.PlaceSeckillOrderRequest{
			UserId: o.user, ActivityId: o.activity, Quantity: o.qty, IdempotencyKey: fmt.Sprintf("batch-%d", i)}}
		if !o.deadline.IsZero() {
			b.Deadline = timestamppb.New(o.deadline)
		}
		req.Orders = append(req.Orders, b)
	}
	resp, err := p.order.PlaceSeckillOrderBatch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetAnswers()) != len(orders) {
		t.Fatalf("%d answers to %d orders", len(resp.GetAnswers()), len(orders))
	}
	for i, o := range orders {
		a := resp.GetAnswers()[i]
		if o.want == "" {
			if a.GetPlaced().GetOrderId() == 0 || MustStatus(t, p, a.GetPlaced().GetOrderId(), o.user) == orderv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
				t.Errorf("order %d: %v, want it placed", i, a)
			}
			continue
		}
		e := a.GetError()
		if got := errcode.Of(errcode.Join(codes.Code(e.GetGrpcCode()), errcode.Code(e.GetCode()), e.GetMessage())); got != o.want {
			t.Errorf("order %d: %v (%s), want %s", i, a, got, o.want)
		}
	}
	if left := MustStock(t, p, act); left != 1 {
		t.Errorf("stock left %d, want 1 of 3: the first order and the batch's one placed order took a unit each, the late one none", left)
	}
}

func TestThousandsOfBuyersNeverOversell(t *testing.T) {
	const (
		buyers = 3000
		users  = 2000
		stock  = 500
	)
	// The test is about correctness under contention, not latency: on two
	// cores under the race detector a burst like this one takes seconds.
	p := MustPlatform(t, func(c *app.Config) { c.RPCTimeout = time.Minute })
	a := p.MustActivity(t, stock, 1, -time.Minute)
	ctx := context.Background()

	base := newUsers(users)
	var (
		mu       sync.Mutex
		accepted = map[int64]int64{} // order id → user
		rejected = map[errcode.Code]int{}
		wg       sync.WaitGroup
	)
	for i := range buyers {
		wg.Go(func() {
			user := base + int64(i%users)
			id, err := place(ctx, p, user, a.GetActivityId(), fmt.Sprintf("burst-%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				code := errcode.Of(err)
				if rejected[code]++; code != errcode.SoldOut && code != errcode.LimitExceeded && rejected[code] <= 3 {
					t.Logf("unexpected rejection: %v", err)
				}
				return
			}
			accepted[id] = user
		})
	}
	wg.Wait()
	if len(accepted) != stock {
		t.Fatalf("accepted: got %d, want exactly %d (rejections %v)", len(accepted), stock, rejected)
	}
	if rejected[errcode.SoldOut]+rejected[errcode.LimitExceeded] != buyers-stock {
		t.Fatalf("rejections: got %v, want %d SOLD_OUT or LIMIT_EXCEEDED and nothing else", rejected, buyers-stock)
	}
	perUser := map[int64]int{}
	for _, u := range accepted {
		if perUser[u]++; perUser[u] > 1 {
			t.Fatalf("user %d got %d orders over a limit of 1", u, perUser[u])
		}
	}

	MustDrain(t)
	rows, err := p.db.Query(ctx, `SELECT order_id, user_id FROM orders WHERE activity_id = $1`, a.GetActivityId())
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]int64{}
	for rows.Next() {
		var id, user int64
		if err := rows.Scan(&id, &user); err != nil {
			t.Fatal(err)
		}
		if _, dup := stored[id]; dup {
			t.Fatalf("order %d stored twice", id)
		}
		stored[id] = user
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(accepted) {
		t.Fatalf("stored orders: got %d, want the %d accepted", len(stored), len(accepted))
	}
	for id, user := range accepted {
		if stored[id] != user {
			t.Fatalf("accepted order %d of user %d: stored as user %d", id, user, stored[id])
		}
	}
	st, err := postgres.NewStore(p.db).ActivityStats(ctx, a.GetActivityId())
	if err != nil {
		t.Fatal(err)
	}
	if want := (postgres.ActivityStats{Orders: stock, Units: stock, MaxUserUnits: 1}); st != want {
		t.Fatalf("activity stats: got %+v, want %+v", st, want)
	}
	if got := MustStock(t, p, a.GetActivityId()); got != 0 {
		t.Fatalf("stock left: got %d, want 0", got)
	}
}

// Order creates its topics with the durability it is configured with, the
// production one unless told otherwise: on the stack's single broker it
// refuses to start rather than run on topics with fewer copies than that.
func TestRunRefusesTopicsLessDurableThanConfigured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := app.Run(ctx, app.Config{
		GRPCListener: servicetest.MustListen(t), AdminListener: servicetest.MustListen(t),
		PostgresURL: stack.PostgresURL("orders"), RedisAddr: stack.RedisAddr, KafkaBrokers: stack.KafkaBrokers,
	})
	// Whichever of its topics the cluster does not have yet is refused
	// first: orders.events when the test runs alone, orders.placed after
	// the package's other tests made orders.events.
	if err == nil || !strings.Contains(err.Error(), "FLASHSALE_KAFKA_REPLICATION") ||
		!strings.Contains(err.Error(), orderkafka.TopicPlaced) && !strings.Contains(err.Error(), orderkafka.TopicEvents) {
		t.Fatalf("got %v, want %s or %s refused for want of replicas, naming FLASHSALE_KAFKA_REPLICATION", err, orderkafka.TopicPlaced, orderkafka.TopicEvents)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
		check   func(app.Config) bool
	}{
		{"defaults", nil, false, func(c app.Config) bool {
			return c.PaymentWindow == 15*time.Minute && c.GRPCAddr == ":9103" && c.AdminAddr == ":9203" &&
				c.InventoryAddr == "127.0.0.1:9102" && c.ProductAddr == "127.0.0.1:9101" &&
				len(c.KafkaBrokers) == 1 && c.KafkaBrokers[0] == "127.0.0.1:9092" &&
				c.ConsumerBatchSize == 500 && c.ConsumerBatchWait == 20*time.Millisecond &&
				c.ExpiryPoll == time.Second && c.ExpiryBatch == 500 && c.ExpiryLease == 30*time.Second && c.ExpiryWorkers == 2 &&
				c.KafkaDurability == pkafka.Durability{Replication: 3, MinInsync: 2}
		}},
		{"one kafka broker", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "1", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "1"}, false,
			func(c app.Config) bool { return c.KafkaDurability == pkafka.OneBroker }},
		{"more kafka replicas in sync than copies", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "2", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "3"}, true, nil},
		{"expiry set", map[string]string{"FLASHSALE_EXPIRY_POLL_INTERVAL": "50ms", "FLASHSALE_EXPIRY_BATCH": "1000",
			"FLASHSALE_EXPIRY_LEASE": "1m", "FLASHSALE_EXPIRY_WORKERS": "4"}, false, func(c app.Config) bool {
			return c.ExpiryPoll == 50*time.Millisecond && c.ExpiryBatch == 1000 && c.ExpiryLease == time.Minute && c.ExpiryWorkers == 4
		}},
		{"expiry batch above the claim limit", map[string]string{"FLASHSALE_EXPIRY_BATCH": "1001"}, true, nil},
		{"expiry lease under a second", map[string]string{"FLASHSALE_EXPIRY_LEASE": "500ms"}, true, nil},
		{"no expiry worker", map[string]string{"FLASHSALE_EXPIRY_WORKERS": "0"}, true, nil},
		{"set", map[string]string{"FLASHSALE_PAYMENT_WINDOW": "2m", "FLASHSALE_KAFKA_BROKERS": "a:1, b:2", "FLASHSALE_NODE_ID": "7"}, false,
			func(c app.Config) bool {
				return c.PaymentWindow == 2*time.Minute && len(c.KafkaBrokers) == 2 && c.KafkaBrokers[1] == "b:2" && c.NodeID == 7
			}},
		{"bad window", map[string]string{"FLASHSALE_PAYMENT_WINDOW": "soon"}, true, nil},
		{"negative window", map[string]string{"FLASHSALE_PAYMENT_WINDOW": "-1m"}, true, nil},
		{"node out of range", map[string]string{"FLASHSALE_NODE_ID": "128"}, true, nil},
		{"redis without port", map[string]string{"FLASHSALE_REDIS_ADDR": "localhost"}, true, nil},
		{"redis cluster", map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379", "FLASHSALE_REDIS_CLUSTER": "true"}, false,
			func(c app.Config) bool { return c.RedisAddr == "r1:6379,r2:6379" && c.RedisCluster }},
		{"redis list without the cluster flag", map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379"}, true, nil},
		{"zero batch", map[string]string{"FLASHSALE_CONSUMER_BATCH_SIZE": "0"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"FLASHSALE_POSTGRES_URL": app.DefaultPostgresURL} // required outside development
			maps.Copy(vars, tt.env)
			env := config.FromMap(vars)
			cfg := app.ConfigFromEnv(env)
			if got := env.Err() != nil; got != tt.wantErr {
				t.Fatalf("error: got %v, want error %v", env.Err(), tt.wantErr)
			}
			if tt.check != nil && !tt.check(cfg) {
				t.Fatalf("got %+v", cfg)
			}
		})
	}
}
