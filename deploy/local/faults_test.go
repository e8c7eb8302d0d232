package local_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// budget bounds how long a buyer may wait for an answer under any fault:
// the gateway's call timeout (2 s) plus its own work, with room for a
// loaded machine. A buyer held longer is hung, not degraded.
const budget = 5 * time.Second

// TestBuysKeepTheBooksUnderWireFaults: while buyers buy, each kind of
// fault sits on the real wire of one dependency: 200 ms of latency on the
// order→inventory link, Redis choked to 64 KB/s, Postgres reset, the
// broker blackholed. Every buyer gets an answer within the budget (202,
// SOLD_OUT, LIMIT_EXCEEDED or 503), a sale open before a Postgres outage
// keeps selling through it, and once the fault is lifted the books hold:
// every accepted buy is stored exactly once and no more units are sold
// than the sale had.
func TestBuysKeepTheBooksUnderWireFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, p := mustFaultyPlatform(t, ctx)
	c := client{tb: t, base: p.GatewayURL}
	admin := c.MustToken("1", "admin")
	conn, err := pgx.Connect(ctx, s.PostgresURL(local.DBOrders))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	faults := []struct {
		target localstack.Target
		fault  localstack.Fault
	}{
		{localstack.Inventory, localstack.Fault{Kind: localstack.Latency, Latency: 200 * time.Millisecond, Jitter: 20 * time.Millisecond}},
		{localstack.Redis, localstack.Fault{Kind: localstack.Bandwidth, RateKB: 64}},
		{localstack.Postgres, localstack.Fault{Kind: localstack.Down}},
		{localstack.Kafka, localstack.Fault{Kind: localstack.Blackhole}},
	}
	for i, f := range faults {
		t.Run(fmt.Sprintf("%s %s", f.target, f.fault.Kind), func(t *testing.T) {
			const stock, buyers = 40, 80
			act := mustSale(t, c, admin, stock)
			// The sale opened before the fault: its pages were read and
			// its first buyer came in while everything was up.
			pages := []string{"/api/v1/activities/" + act}
			var page struct {
				SKUID string `json:"sku_id"`
			}
			c.MustDo(http.MethodGet, pages[0], "", nil, "", http.StatusOK, &page)
			pages = append(pages, "/api/v1/products/"+page.SKUID)
			c.MustDo(http.MethodGet, pages[1], "", nil, "", http.StatusOK, nil)
			first := fmt.Sprintf("f%d-first", i)
			if code, _ := buy(p.GatewayURL, c.MustToken(fmt.Sprint(10_000*(i+1)+buyers), "user"), act, first); code != http.StatusAccepted {
				t.Fatalf("the buy before the fault was answered %d, want 202", code)
			}
			lift, err := s.Fault(f.target, f.fault)
			if err != nil {
				t.Fatal(err)
			}
			if f.target == localstack.Postgres {
				// Browsers read the pages through the outage, for longer
				// than the caches' TTLs (1 s at the gateway and for
				// products): every read is answered from the last copy.
				for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
					for _, path := range pages {
						if code := get(p.GatewayURL + path); code != http.StatusOK {
							t.Errorf("GET %s with Postgres down = %d, want 200 from the last copy", path, code)
						}
					}
				}
			}
			var mu sync.Mutex
			answers := map[int]int{}
			accepted := []string{first} // the idempotency keys answered 202
			var wg sync.WaitGroup
			for b := range buyers {
				wg.Go(func() {
					key := fmt.Sprintf("f%d-%d", i, b)
					code, took := buy(p.GatewayURL, c.MustToken(fmt.Sprint(10_000*(i+1)+b), "user"), act, key)
					mu.Lock()
					defer mu.Unlock()
					answers[code]++
					if code == http.StatusAccepted {
						accepted = append(accepted, key)
					}
					if took > budget {
						t.Errorf("a buyer waited %s under the fault, more than the %s budget", took, budget)
					}
				})
			}
			wg.Wait()
			if err := lift(); err != nil {
				t.Fatal(err)
			}
			// Placing a flash-sale order needs no Postgres (the consumer
			// writes it later) and the activity never changes once
			// created: a sale read before the outage keeps selling from
			// the caches' last copy (stale-if-error, platform/cache).
			if f.target == localstack.Postgres && answers[http.StatusAccepted] == 0 {
				t.Errorf("answers %v: with Postgres down no buy was accepted; a sale that was open must stay open", answers)
			}
			for code := range answers {
				switch code {
				case http.StatusAccepted, http.StatusConflict, http.StatusTooManyRequests, http.StatusServiceUnavailable:
				default:
					t.Errorf("answers %v: %d is not a documented answer to a buy under a fault", answers, code)
				}
			}
			// The books settle once the fault is lifted: every unit is
			// either back on sale or held by a stored order. (A buyer told
			// 503 may still have an order, which a retry with its key
			// finds: a timeout is not a refusal.)
			var stored, units, remaining int64
			var kept int
			for deadline := time.Now().Add(time.Minute); ; {
				if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(l.quantity), 0),
					count(*) FILTER (WHERE o.idempotency_key = ANY($2)) FROM orders o
					JOIN order_lines l USING (order_id) WHERE o.activity_id = $1`, act, accepted).Scan(&stored, &units, &kept); err != nil {
					t.Fatal(err)
				}
				var a struct {
					Remaining int64 `json:"remaining"`
				}
				c.MustDo(http.MethodGet, "/api/v1/activities/"+act, "", nil, "", http.StatusOK, &a)
				remaining = a.Remaining
				if (kept == len(accepted) && remaining+units == stock) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("answers %v; %d accepted, %d stored, %d units, %d remaining", answers, len(accepted), stored, units, remaining)
			if kept != len(accepted) {
				t.Errorf("%d of the %d accepted buys are stored; want every one", kept, len(accepted))
			}
			if remaining+units != stock || units > stock {
				t.Errorf("remaining %d + %d units held by stored orders, want the sale's %d", remaining, units, stock)
			}
		})
	}
}

// mustSale opens a flash sale of stock units, one per buyer, and returns
// its activity id.
func mustSale(t *testing.T, c client, admin string, stock int) string {
	t.Helper()
	return mustSaleWith(t, c, admin, stock, nil)
}

// mustSaleWith is mustSale with header on each request (a pressure
// test's mark makes a sale of the shadow catalogue).
func mustSaleWith(t *testing.T, c client, admin string, stock int, header map[string]string) string {
	t.Helper()
	var prod struct {
		SKUID string `json:"sku_id"`
	}
	c.MustDo(http.MethodPost, "/admin/v1/products", admin, header, `{"title":"lamp","price":9900,"stock":1000}`, http.StatusCreated, &prod)
	var act struct {
		ActivityID string `json:"activity_id"`
	}
	now := time.Now().UTC()
	c.MustDo(http.MethodPost, "/admin/v1/activities", admin, header, fmt.Sprintf(
		`{"sku_id":%q,"price":4900,"stock":%d,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		prod.SKUID, stock, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)), http.StatusCreated, &act)
	return act.ActivityID
}

// buy sends one flash-sale buy and returns its status (0 when no answer
// came) and how long the answer took.
func buy(base, token, activity, key string) (int, time.Duration) {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/seckill/orders",
		strings.NewReader(fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, activity)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 2 * budget}).Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took
	}
	resp.Body.Close()
	return resp.StatusCode, took
}

// get reads a public page and returns its status (0 when no answer came).
func get(url string) int {
	resp, err := (&http.Client{Timeout: budget}).Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mustFaultyPlatform starts a stack of its own whose connections cross
// fault proxies, and the platform on it; both are closed when the test
// ends.
func mustFaultyPlatform(t *testing.T, ctx context.Context) (*localstack.Stack, *local.Platform) {
	t.Helper()
	cfg := local.StackConfig(nil)
	cfg.Faults = true
	s, err := localstack.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	p, err := local.Up(ctx, s, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, p
}
