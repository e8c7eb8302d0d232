package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// buy places one unit for each of users concurrently, with key, and
// returns the order ids by user; every buy must be accepted.
func buy(t *testing.T, p *platform, act int64, users []int64, key string) map[int64]int64 {
	t.Helper()
	var mu sync.Mutex
	ids := map[int64]int64{}
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			id, err := place(context.Background(), p, u, act, key)
			if err != nil {
				t.Errorf("user %d buying (%s): %v", u, key, err)
				return
			}
			mu.Lock()
			ids[u] = id
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// drained waits until the order-writer group of s has stored every
// published order.
func drained(t *testing.T, s *localstack.Stack) {
	t.Helper()
	MustEventually(t, time.Minute, func() (bool, string) {
		lag, err := pkafka.Lag(context.Background(), s.KafkaBrokers, orderkafka.GroupWriter, orderkafka.TopicPlaced)
		return err == nil && lag == 0, fmt.Sprintf("lag %d (%v)", lag, err)
	})
}

// incrAOF is the path of the redis-server's AOF incremental file, which
// every write since its last rewrite is appended to.
func incrAOF(t *testing.T, s *localstack.Stack) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.Dir(), "redis-aof", "*.incr.aof"))
	if err != nil || len(files) != 1 {
		t.Fatalf("incremental AOF files: %v (%v), want one", files, err)
	}
	return files[0]
}

// heldUnits sums the units of the activity's orders waiting for payment
// or paid, from Postgres, and the most units one buyer holds.
func heldUnits(t *testing.T, p *platform, act int64) (held, mostPerUser int64) {
	t.Helper()
	err := p.db.QueryRow(context.Background(), `
		SELECT coalesce(sum(units), 0), coalesce(max(units), 0) FROM (
			SELECT o.user_id, sum(l.quantity) AS units FROM orders o JOIN order_lines l ON l.order_id = o.order_id
			WHERE o.activity_id = $1 AND o.status IN ('PENDING_PAYMENT', 'PAID')
			GROUP BY o.user_id) u`, act).Scan(&held, &mostPerUser)
	if err != nil {
		t.Fatal(err)
	}
	return held, mostPerUser
}

// logLines keeps what a JSON slog handler writes, one record a line.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logLines) Write(b []byte) (int, error) {
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, rec)
	return len(b), nil
}

// with returns the records whose message is msg.
func (l *logLines) with(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.lines {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// A burst of buys is stored in Postgres, then Redis dies having lost
// those buys' writes (the AOF tail a crash with everysec loses: here cut
// off exactly, so the loss is certain) and restarts. The sale is fenced
// until the reconciler rebuilds it from the orders; then no unit is sold
// twice, limits hold, a lost reservation is back and pays, and every
// waiting order expires, through the rebuilt queue or, for an entry the
// rebuild could not restore, the Postgres backstop.
func TestRedisLossIsRepairedFromTheOrders(t *testing.T) {
	ctx := context.Background()
	s, err := localstack.Start(ctx, localstack.Config{
		Databases:  []string{"orders", "products", "marketing"},
		Topics:     []string{orderkafka.TopicPlaced, orderkafka.TopicPlacedDLQ},
		Partitions: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() }) // after the services' own cleanups
	const settle = 5 * time.Second
	logs := &logLines{}
	p := MustPlatformOn(t, s, func(c *app.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c.ReconcileEvery, c.ReconcileSettle = 20*time.Millisecond, settle
		c.ExpiryPoll = 20 * time.Millisecond
	})
	const total, limit = 30, 2
	act := p.MustActivity(t, total, limit, -time.Minute).GetActivityId()
	first := newUsers(20)
	var early, late []int64
	for i := range int64(10) {
		early, late = append(early, first+i), append(late, first+10+i)
	}

	buy(t, p, act, early, "one")
	drained(t, s)
	aof := incrAOF(t, s)
	st, err := os.Stat(aof)
	if err != nil {
		t.Fatal(err)
	}
	durable := st.Size() // everything up to here survives the crash
	// The last second: each early buyer takes a second unit, ten more
	// buyers one each, and the sale is sold out. All are stored.
	seconds := buy(t, p, act, early, "two")
	lates := buy(t, p, act, late, "one")
	drained(t, s)
	if got := MustStock(t, p, act); got != 0 {
		t.Fatalf("stock before the crash: %d, want 0", got)
	}

	if err := s.KillRedis(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(aof, durable); err != nil {
		t.Fatal(err)
	}
	if err := s.RestartRedis(ctx); err != nil {
		t.Fatal(err)
	}
	// Redis lost 20 decrements: sold from, it would sell them again.
	MustEventually(t, 30*time.Second, func() (bool, string) {
		st, err := p.inventory.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: act})
		return err == nil && st.GetRemaining() == 20, fmt.Sprintf("stock %v (%v), want the 20 Redis lost", st, err)
	})
	lost := lates[late[0]]
	if _, err := p.inventory.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: lost}); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("reservation of order %d after the crash: %v, want it lost", lost, err)
	}
	// Fenced: nothing is sold until the rebuild (the reconciler has seen
	// the sale fenced, and waits Settle on its clock).
	reconcile := func() []int64 {
		resp, err := http.Post(p.orderAdmin+"/reconcile-stock", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Rebuilt []int64 }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("reconcile: %d, %v", resp.StatusCode, err)
		}
		return body.Rebuilt
	}
	if got := reconcile(); len(got) != 0 {
		t.Fatalf("rebuilt %v before the sale was fenced for %s", got, settle)
	}
	fresh := newUsers(1)
	if _, err := place(ctx, p, fresh, act, "fenced"); errcode.Of(err) != errcode.Unavailable {
		t.Fatalf("buying from the fenced sale: %v, want UNAVAILABLE", err)
	}
	p.clock.Advance(settle)
	const rebuiltMsg = "rebuilt a fenced flash sale from its stored orders"
	MustEventually(t, 30*time.Second, func() (bool, string) {
		return len(logs.with(rebuiltMsg)) > 0, "no rebuild logged"
	})
	if f, err := p.inventory.FencedStock(ctx, &inventoryv1.FencedStockRequest{}); err != nil || slices.Contains(f.GetActivityIds(), act) {
		t.Fatalf("fenced after the rebuild: %v (%v)", f, err)
	}

	// One rebuild, of everything the lost second took: 20 reservations,
	// expiry entries and per-user counts (ten buyers back from 1 unit to
	// 2, ten from none to 1), and the stock from 20 to 0.
	rebuilds := logs.with(rebuiltMsg)
	if len(rebuilds) != 1 {
		t.Fatalf("%d rebuild log lines, want 1: %v", len(rebuilds), rebuilds)
	}
	want := map[string]float64{"activity_id": float64(act), "orders": 30, "stock_before": 20, "stock": 0,
		"reservations_repaired": 20, "user_counts_repaired": 20, "expiry_entries_repaired": 20, "overheld": 0}
	for k, v := range want {
		if rebuilds[0][k] != v {
			t.Errorf("rebuild %s = %v, want %v (%v)", k, rebuilds[0][k], v, rebuilds[0])
		}
	}
	held, most := heldUnits(t, p, act)
	if held != total || most > limit {
		t.Fatalf("orders hold %d units (most per buyer %d), want %d (at most %d)", held, most, total, limit)
	}
	if got := MustStock(t, p, act); got != total-held {
		t.Fatalf("stock after the rebuild: %d, want total %d - held %d", got, total, held)
	}
	if _, err := place(ctx, p, fresh, act, "after"); errcode.Of(err) != errcode.SoldOut {
		t.Fatalf("buying after the rebuild: %v, want SOLD_OUT", err)
	}
	if _, err := place(ctx, p, early[0], act, "three"); errcode.Of(err) != errcode.LimitExceeded {
		t.Fatalf("a buyer holding %d buying again: %v, want LIMIT_EXCEEDED", limit, err)
	}
	r, err := p.inventory.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: lost})
	if err != nil || r.GetStatus() != inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED {
		t.Fatalf("reservation of order %d after the rebuild: %v, %v; want RESERVED", lost, r, err)
	}
	o, err := p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: lost, UserId: late[0]})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := p.order.MarkPaid(ctx, &orderv1.MarkPaidRequest{OrderId: lost, PaymentId: 1, Channel: "alipay",
		Amount: o.GetPayable(), PaidAt: timestamppb.New(p.clock.Now())})
	if err != nil || !paid.GetAccepted() {
		t.Fatalf("paying order %d: %v, %v; want accepted", lost, paid, err)
	}
	MustEventually(t, 30*time.Second, func() (bool, string) {
		r, err := p.inventory.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: lost})
		return err == nil && r.GetStatus() == inventoryv1.ReservationStatus_RESERVATION_STATUS_CONFIRMED,
			fmt.Sprintf("reservation %v (%v), want CONFIRMED", r, err)
	})

	// An entry the rebuild could not restore (its sale's rebuild never
	// ran): the backstop expires its order from Postgres.
	orphan := seconds[early[1]]
	rdb := MustRedisOn(t, s)
	if n, err := rdb.ZRem(ctx, "{act:"+fmt.Sprint(act)+"}:expiry", fmt.Sprint(orphan)).Result(); err != nil || n != 1 {
		t.Fatalf("remove order %d's entry: %d, %v", orphan, n, err)
	}
	p.clock.Advance(app.DefaultPaymentWindow + order.DefaultOverdueGrace + time.Second)
	MustEventually(t, time.Minute, func() (bool, string) {
		var pending int
		if err := p.db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE activity_id = $1 AND status = 'PENDING_PAYMENT'`, act).Scan(&pending); err != nil {
			return false, err.Error()
		}
		stock := MustStock(t, p, act)
		return pending == 0 && stock == total-1, fmt.Sprintf("%d orders still pending, stock %d, want none and %d", pending, stock, total-1)
	})
	if got := MustStatus(t, p, orphan, early[1]); got != orderv1.OrderStatus_ORDER_STATUS_EXPIRED {
		t.Fatalf("order %d without an entry: %s, want EXPIRED", orphan, got)
	}
	if held, _ := heldUnits(t, p, act); held != 1 {
		t.Fatalf("held after expiry: %d units, want the paid one", held)
	}
}
