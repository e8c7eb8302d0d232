package loadtest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/platform/localstack"
	"github.com/flashsale/flashsale/platform/postgres"
)

// The whole platform runs once for this package, on the shared harness,
// exactly as `make demo` runs it.
var (
	stack    *localstack.Stack
	platform *local.Platform
)

func TestMain(m *testing.M) {
	localstack.RunTests(m, local.StackConfig(nil), func(s *localstack.Stack) {
		stack = s
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := local.Up(ctx, s, local.Options{})
		if err != nil {
			panic(err)
		}
		platform = p
	})
}

func mustToken(tb testing.TB, cl *loadtest.Client, user int64, role string) string {
	tb.Helper()
	tok, err := cl.DevToken(context.Background(), user, role)
	if err != nil {
		tb.Fatalf("token for %d: %v", user, err)
	}
	return tok
}

// mustSale creates a product and a running flash sale and returns the
// activity id.
func mustSale(tb testing.TB, cl *loadtest.Client, stock, limit int64) string {
	tb.Helper()
	ctx := context.Background()
	admin := mustToken(tb, cl, 1, "admin")
	sku, err := cl.CreateProduct(ctx, admin, "phone", 5000, stock)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	id, err := cl.CreateActivity(ctx, admin, api.Activity{SKUID: sku, Price: 3000, Stock: stock, PerUserLimit: limit,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.Dial(context.Background(), stack.PostgresURL(local.DBOrders), 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func code(err error) string {
	var api *loadtest.APIError
	if errors.As(err, &api) {
		return api.Code
	}
	if err == nil {
		return "OK"
	}
	return err.Error()
}

func TestSeckillThroughHTTP(t *testing.T) {
	ctx := context.Background()
	cl := loadtest.NewClient(platform.GatewayURL, 8)
	act := mustSale(t, cl, 2, 1)
	alice, bob, carol := mustToken(t, cl, 501, "user"), mustToken(t, cl, 502, "user"), mustToken(t, cl, 503, "user")

	first, err := cl.Seckill(ctx, alice, act, 1, "alice-1")
	if err != nil || first.Status != "PROCESSING" {
		t.Fatalf("alice buys: %+v, %v", first, err)
	}
	again, err := cl.Seckill(ctx, alice, act, 1, "alice-1")
	if err != nil || again.OrderID != first.OrderID {
		t.Fatalf("replay with the same key: got %+v, %v; want order %s", again, err, first.OrderID)
	}
	if _, err := cl.Seckill(ctx, alice, act, 1, "alice-2"); code(err) != "LIMIT_EXCEEDED" {
		t.Fatalf("second unit for alice: got %s, want LIMIT_EXCEEDED", code(err))
	}
	if _, err := cl.Seckill(ctx, bob, act, 1, "bob-1"); err != nil {
		t.Fatalf("bob buys: %v", err)
	}
	if _, err := cl.Seckill(ctx, carol, act, 1, "carol-1"); code(err) != "SOLD_OUT" {
		t.Fatalf("carol after the last unit: got %s, want SOLD_OUT", code(err))
	}

	// The order is PROCESSING until the consumer writes it, then awaits
	// payment; its lines obey the API's invariants.
	var o api.Order
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err = cl.GetOrder(ctx, alice, first.OrderID)
		if err != nil {
			t.Fatalf("get order: %v", err)
		}
		if o.Status == "PENDING_PAYMENT" {
			break
		}
		if o.Status != "PROCESSING" || time.Now().After(deadline) {
			t.Fatalf("order status %s, want PROCESSING then PENDING_PAYMENT", o.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.Kind != "SECKILL" || o.UserID != "501" || len(o.Lines) != 1 {
		t.Fatalf("order = %+v", o)
	}
	l := o.Lines[0]
	if l.Quantity != 1 || l.UnitPrice != 3000 || l.Amount != l.UnitPrice*l.Quantity || l.Payable != l.Amount-l.Discount || o.Payable != l.Payable || o.Total != l.Amount {
		t.Fatalf("order money does not add up: %+v", o)
	}

	if _, err := cl.GetOrder(ctx, bob, first.OrderID); code(err) != "FORBIDDEN" {
		t.Fatalf("bob reads alice's order: got %s, want FORBIDDEN", code(err))
	}
	list, err := cl.ListOrders(ctx, alice)
	if err != nil || len(list) != 1 || list[0].OrderID != first.OrderID {
		t.Fatalf("alice's orders = %+v, %v", list, err)
	}
	// Catalog reads are cached for about a second (gateway and product),
	// so the sold-out state shows within that, not at once.
	deadline = time.Now().Add(5 * time.Second)
	for {
		a, err := cl.GetActivity(ctx, act)
		if err == nil && a.Remaining == 0 && a.Status == "SOLD_OUT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity after the sale = %+v, %v; want remaining 0, SOLD_OUT", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBurstAuditPasses(t *testing.T) {
	ctx := context.Background()
	cl := loadtest.NewClient(platform.GatewayURL, 64)
	const stock, nUsers = 150, 600
	act := mustSale(t, cl, stock, 1)
	users := make([]loadtest.User, nUsers)
	for i := range users {
		id := int64(10_000 + i)
		users[i] = loadtest.User{ID: id, Token: mustToken(t, cl, id, "user")}
	}
	res, err := loadtest.RunBurst(ctx, cl, loadtest.BurstConfig{ActivityID: act, Users: users, Attempts: 2000,
		Concurrency: 64, Quantity: 1, ReplayShare: 0.1, Seed: 7}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[loadtest.Failed] != 0 {
		t.Fatalf("%d attempts failed: %v", res.Counts[loadtest.Failed], res.ErrorSamples)
	}
	if err := loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, time.Minute); err != nil {
		t.Fatal(err)
	}
	books, err := loadtest.ReadSeckillBooks(ctx, cl, mustPool(t), act)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadtest.AuditSeckill(res, books) {
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	if got := int64(len(res.Orders)); got != stock {
		t.Errorf("accepted %d orders, want the whole stock %d (demand %d)", got, stock, res.DemandUnits)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(platform.GatewayURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
}
