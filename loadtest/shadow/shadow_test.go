package shadow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/shadow"
	pshadow "github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, local.StackConfig(nil), func(s *localstack.Stack) { stack = s })
}

// client talks JSON to one base URL, with headers of its own (the
// pressure-test header for a marked client).
type client struct {
	tb     testing.TB
	base   string
	header map[string]string
}

func (c client) do(method, path, token string, extra map[string]string, body string, out any) int {
	c.tb.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	if err != nil {
		c.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.tb.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

func (c client) must(method, path, token, body string, want int, out any) {
	c.tb.Helper()
	if got := c.do(method, path, token, nil, body, out); got != want {
		c.tb.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

// sale creates a product and a running flash sale of stock units, one a buyer.
func (c client) sale(admin string, stock int) int64 {
	c.tb.Helper()
	var prod struct {
		SKUID string `json:"sku_id"`
	}
	c.must(http.MethodPost, "/admin/v1/products", admin, `{"title":"lamp","price":9900,"stock":1000}`, http.StatusCreated, &prod)
	var act struct {
		ActivityID string `json:"activity_id"`
	}
	now := time.Now().UTC()
	c.must(http.MethodPost, "/admin/v1/activities", admin, fmt.Sprintf(
		`{"sku_id":%q,"price":4900,"stock":%d,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		prod.SKUID, stock, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)), http.StatusCreated, &act)
	var id int64
	fmt.Sscan(act.ActivityID, &id)
	return id
}

// buy places one flash-sale buy and returns the status and the order id.
func (c client) buy(token string, activity int64, key string) (int, string) {
	var acc api.SeckillAccepted
	st := c.do(http.MethodPost, "/api/v1/seckill/orders", token, map[string]string{"Idempotency-Key": key},
		fmt.Sprintf(`{"activity_id":"%d","quantity":1}`, activity), &acc)
	return st, acc.OrderID
}

// A real sale and a pressure-test sale run at once on one platform, each
// with its buyers; a marked buyer also pays, through the channel
// simulator. Every marked row lands in the shadow schemas and every real
// one in the real tables, each class's stock moves by its own buys only,
// neither class can buy the other's sale, and the audit finds no leak;
// a leak planted by hand is found; the cleanup empties the shadow side
// and leaves the real one as it was.
func TestMixedRunLeaksNothingAndCleansUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := local.Up(ctx, stack, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	real := client{tb: t, base: p.GatewayURL}
	var tok struct{ Token string }
	real.must(http.MethodPost, "/api/v1/dev/token", "", `{"user_id":"1","role":"admin"}`, http.StatusOK, &tok)
	admin := tok.Token
	var lt struct{ Token string }
	real.must(http.MethodPost, "/admin/v1/load-test-tokens", admin, `{"ttl_seconds":600}`, http.StatusCreated, &lt)
	marked := client{tb: t, base: p.GatewayURL, header: map[string]string{pshadow.Header: lt.Token}}

	const stock, realBuys, markedBuys = 5, 2, 3
	realAct, markedAct := real.sale(admin, stock), marked.sale(admin, stock)
	users := time.Now().UnixMicro() // fresh buyers each run
	token := func(u int64) string {
		var tok struct{ Token string }
		real.must(http.MethodPost, "/api/v1/dev/token", "", fmt.Sprintf(`{"user_id":"%d","role":"user"}`, u), http.StatusOK, &tok)
		return tok.Token
	}

	// Both classes buy at the same time.
	var wg sync.WaitGroup
	var mu sync.Mutex
	orders := map[bool][]string{}
	owner := map[string]string{} // order id → its buyer's token
	for i := range realBuys + markedBuys {
		isMarked := i >= realBuys
		c, act := real, realAct
		if isMarked {
			c, act = marked, markedAct
		}
		buyer := token(users + int64(i))
		wg.Go(func() {
			st, id := c.buy(buyer, act, fmt.Sprint("k", i))
			if st != http.StatusAccepted {
				t.Errorf("buy %d (marked %v): status %d", i, isMarked, st)
				return
			}
			mu.Lock()
			orders[isMarked] = append(orders[isMarked], id)
			owner[id] = buyer
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
		defer rdb.Close()
		keys, _ := rdb.Keys(ctx, fmt.Sprintf("*%d*", markedAct)).Result()
		t.Fatalf("buys failed; the pressure-test sale's keys: %q", keys)
	}
	// Neither class can buy the other's sale: each sees only its own.
	outsider := token(users + 100)
	if st, _ := marked.buy(outsider, realAct, "cross-1"); st == http.StatusAccepted {
		t.Fatalf("a marked buyer bought the real sale")
	}
	if st, _ := real.buy(outsider, markedAct, "cross-2"); st == http.StatusAccepted {
		t.Fatalf("a real buyer bought the pressure-test sale")
	}

	// A marked buyer pays: the payment, the channel's trade and its
	// notification stay marked all the way.
	orderID := orders[true][0]
	payer := owner[orderID]
	for i := 0; ; i++ {
		var o api.Order
		// The buyer's token is needed to read it.
		st := marked.do(http.MethodGet, "/api/v1/orders/"+orderID, payer, nil, "", &o)
		if i > 600 {
			t.Fatalf("the marked order %s never reached PENDING_PAYMENT (status %d, %q)", orderID, st, o.Status)
		}
		if o.Status == "PENDING_PAYMENT" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pay api.Payment
	marked.must(http.MethodPost, "/api/v1/orders/"+orderID+"/pay", payer, `{}`, http.StatusOK, &pay)
	if pay.Status == "PAYING" {
		wallet := client{tb: t, header: map[string]string{"X-Pressure-Test": "1"}}
		wallet.must(http.MethodPost, pay.PayURL, "", "", http.StatusOK, nil)
	}
	for i := 0; ; i++ {
		var o api.Order
		marked.do(http.MethodGet, "/api/v1/orders/"+orderID, payer, nil, "", &o)
		if o.Status == "PAID" {
			break
		}
		if i > 600 {
			t.Fatalf("the marked order %s was never paid (%q)", orderID, o.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}

	stores := shadow.Stores{
		Product: stack.PostgresURL(local.DBProduct), Orders: stack.PostgresURL(local.DBOrders),
		Payment: stack.PostgresURL(local.DBPayment), Marketing: stack.PostgresURL(local.DBMarketing),
		Redis: redis.NewClient(&redis.Options{Addr: stack.RedisAddr}),
	}
	defer stores.Redis.Close()
	// Wait until the consumers stored every buy, each in its class.
	countWhere := func(db, sql string, args ...any) int64 {
		t.Helper()
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int64
		if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := 0; ; i++ {
		r := countWhere(stores.Orders, "SELECT count(*) FROM public.orders WHERE activity_id = $1", realAct)
		s := countWhere(stores.Orders, "SELECT count(*) FROM shadow.orders WHERE activity_id = $1", markedAct)
		if r == realBuys && s == markedBuys {
			break
		}
		if i > 600 {
			t.Fatalf("stored: %d real, %d shadow orders; want %d and %d", r, s, realBuys, markedBuys)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countWhere(stores.Payment, "SELECT count(*) FROM shadow.payments WHERE status = 'SUCCEEDED'"); n < 1 {
		t.Fatalf("no succeeded payment in the shadow ledger")
	}
	// Each class's stock moved by its own buys only, in its own keys.
	rdb := stores.Redis
	realStock, _ := rdb.Get(ctx, fmt.Sprintf("{act:%d}:stock", realAct)).Int()
	markedStock, _ := rdb.Get(ctx, fmt.Sprintf("shadow:{act:%d}:stock", markedAct)).Int()
	if realStock != stock-realBuys || markedStock != stock-markedBuys {
		keys, _ := rdb.Keys(ctx, fmt.Sprintf("*%d*", markedAct)).Result()
		t.Fatalf("stock: real %d, shadow %d; want %d and %d (keys of the marked sale: %q)", realStock, markedStock, stock-realBuys, stock-markedBuys, keys)
	}

	report, err := shadow.Audit(ctx, stores)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", report)
	if !report.Clean() {
		t.Fatalf("the audit found leaks:\n%s", report)
	}
	// A leak planted by hand is found: the marked sale's activity copied
	// into the real catalogue.
	conn, err := pgx.Connect(ctx, stores.Product)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`INSERT INTO public.products SELECT * FROM shadow.products WHERE sku_id = (SELECT sku_id FROM shadow.activities WHERE activity_id = $1)`,
		`INSERT INTO public.activities SELECT * FROM shadow.activities WHERE activity_id = $1`,
	} {
		if _, err := conn.Exec(ctx, sql, markedAct); err != nil {
			t.Fatal(err)
		}
	}
	if planted, err := shadow.Audit(ctx, stores); err != nil || planted.Clean() {
		t.Fatalf("a planted leak went unseen (%v):\n%s", err, planted)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM public.activities WHERE activity_id = $1`, markedAct); err != nil {
		t.Fatal(err)
	}

	realOrders := countWhere(stores.Orders, "SELECT count(*) FROM public.orders")
	cleaned, err := shadow.Clean(ctx, stores)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cleaned %+v", cleaned)
	if cleaned.Tables == 0 || cleaned.Keys == 0 {
		t.Fatalf("the cleanup removed %+v", cleaned)
	}
	if n := countWhere(stores.Orders, "SELECT count(*) FROM shadow.orders"); n != 0 {
		t.Fatalf("%d shadow orders after the cleanup", n)
	}
	if n := countWhere(stores.Orders, "SELECT count(*) FROM public.orders"); n != realOrders {
		t.Fatalf("the cleanup changed the real orders: %d, was %d", n, realOrders)
	}
	if keys, _ := rdb.Keys(ctx, pshadow.KeyPrefix+"*").Result(); len(keys) != 0 {
		t.Fatalf("shadow keys after the cleanup: %q", keys)
	}
	if got, _ := rdb.Get(ctx, fmt.Sprintf("{act:%d}:stock", realAct)).Int(); got != stock-realBuys {
		t.Fatalf("the cleanup changed the real stock: %d", got)
	}
}
