package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

// A request admitted by the limits meets the next check: its quantity is
// zero, which answers 400 without calling anything downstream.
const admittedBody = `{"activity_id":"1","quantity":0}`

func TestRouteBucket(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{
		RouteLimit:        gateway.Limit{RPS: 100, Burst: 100},
		SeckillRouteLimit: gateway.Limit{RPS: 1, Burst: 3},
	}})
	token := tg.token(t, 11, "user")
	statuses := func(n int) []int {
		var out []int
		for range n {
			got := tg.do(t, seckill(token, "k", admittedBody))
			out = append(out, got.status)
			if got.status == http.StatusTooManyRequests {
				if got.code(t) != "RATE_LIMITED" {
					t.Fatalf("429 with code %s", got.code(t))
				}
				if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Fatalf("Retry-After = %q, want whole seconds >= 1", got.header.Get("Retry-After"))
				}
			}
		}
		return out
	}
	want := []int{400, 400, 400, 429, 429}
	if got := statuses(5); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses = %v, want %v", got, want)
	}
	// Other routes have buckets of their own.
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/x", token: token}); got.status != http.StatusBadRequest {
		t.Fatalf("another route: status = %d, want 400", got.status)
	}
	// Refused requests do not dig the bucket deeper: one second later
	// exactly one token is back.
	tg.clock.Advance(time.Second)
	want = []int{400, 429}
	if got := statuses(2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after 1s: statuses = %v, want %v", got, want)
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

func TestRouteBucketUnderConcurrency(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{SeckillRouteLimit: gateway.Limit{RPS: 1, Burst: 20}}})
	token := tg.token(t, 12, "user")
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for range 100 {
		wg.Go(func() {
			got := tg.do(t, seckill(token, "k", admittedBody))
			mu.Lock()
			counts[got.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	// The manual clock stands still, so exactly the burst gets through.
	if counts[http.StatusBadRequest] != 20 || counts[http.StatusTooManyRequests] != 80 {
		t.Fatalf("statuses = %v, want 20×400 and 80×429", counts)
	}
}

// The limit holds on one Redis server and on Redis Cluster alike: its
// script touches one key. It counts the buys that go on towards order: a
// buy the sold-out flag refuses spends no token.
func TestPerUserLimitIsSharedAcrossReplicas(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	for _, backend := range MustRedisBackends(t) {
		t.Run(backend.name, func(t *testing.T) {
			cfg := gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, opts: gateway.Options{
				Redis:            backend.rdb,
				UserLimitPrefix:  "test:" + t.Name() + ":",
				SeckillUserLimit: gateway.Limit{RPS: 1, Burst: 2},
			}}
			a, b := MustGateway(t, cfg), MustGateway(t, cfg)
			admin := a.token(t, 1, "admin")
			now := a.clock.Now()
			sku := a.MustProduct(t, admin, 19900, 100)
			open := a.MustActivity(t, admin, sku, 50, 10, now.Add(-time.Minute), now.Add(time.Hour))
			alice, bob, carol, dave := a.token(t, 21, "user"), a.token(t, 22, "user"), a.token(t, 23, "user"), a.token(t, 24, "user")
			buy := func(gw *testGateway, token, key, act string) answer {
				return gw.do(t, seckill(token, key, fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)))
			}

			// Two replicas share alice's two tokens: her third buy is
			// refused whichever replica gets it.
			tests := []struct {
				gw    *testGateway
				token string
				want  int
			}{
				{a, alice, http.StatusAccepted},
				{b, alice, http.StatusAccepted},
				{a, alice, http.StatusTooManyRequests},
				{b, alice, http.StatusTooManyRequests},
				{b, bob, http.StatusAccepted},
			}
			for i, tt := range tests {
				got := buy(tt.gw, tt.token, fmt.Sprint("k", i), open)
				if got.status != tt.want {
					t.Fatalf("request %d: status = %d (%s), want %d", i, got.status, got.body, tt.want)
				}
				if got.status == http.StatusTooManyRequests {
					if got.code(t) != "RATE_LIMITED" {
						t.Fatalf("request %d: code %s, want RATE_LIMITED", i, got.code(t))
					}
					if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
						t.Fatalf("request %d: Retry-After = %q, want whole seconds >= 1", i, got.header.Get("Retry-After"))
					}
				}
			}
			if n := a.orderCalls.Load() + b.orderCalls.Load(); n != 3 {
				t.Fatalf("%d order calls, want 3: a limited buy reaches nothing", n)
			}

			// A one-unit sale: carol buys it, dave's buy is answered
			// SOLD_OUT by order and raises the flag. Carol's next buys,
			// refused by the flag, spend none of her tokens: her bucket's
			// state in Redis (GCRA's theoretical arrival time) stays as
			// her first buy left it, however long the buys take.
			one := a.MustActivity(t, admin, sku, 1, 10, now.Add(-time.Minute), now.Add(time.Hour))
			if got := buy(a, carol, "c0", one); got.status != http.StatusAccepted {
				t.Fatalf("carol's buy: %d %s, want 202", got.status, got.body)
			}
			if got := buy(a, dave, "d0", one); got.code(t) != "SOLD_OUT" {
				t.Fatalf("dave's buy: %d %s, want 409 SOLD_OUT", got.status, got.body)
			}
			bucket := func() string {
				t.Helper()
				v, err := backend.rdb.Get(context.Background(), "rate:"+cfg.opts.UserLimitPrefix+strconv.FormatInt(a.user(23), 10)).Result()
				if err != nil {
					t.Fatalf("carol's bucket: %v", err)
				}
				return v
			}
			spent := bucket()
			for i := range 4 {
				if got := buy(a, carol, fmt.Sprint("c", i+1), one); got.code(t) != "SOLD_OUT" {
					t.Fatalf("carol's buy %d while the flag is up: %d %s, want 409 SOLD_OUT", i+1, got.status, got.body)
				}
			}
			if got := bucket(); got != spent {
				t.Fatalf("carol's bucket went from %s to %s: buys the flag refused spent her tokens", spent, got)
			}
		})
	}
}

// Without Redis the per-user limit lets buys through: the route's bucket
// still bounds the load.
func TestPerUserLimitFailsOpenWithoutRedis(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	rdb := MustRedis(t)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, opts: gateway.Options{
		Redis:            rdb,
		SeckillUserLimit: gateway.Limit{RPS: 1, Burst: 1},
	}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 100), 50, 10, now.Add(-time.Minute), now.Add(time.Hour))
	token := tg.token(t, 31, "user")
	rdb.Close()
	for i := range 3 {
		got := tg.do(t, seckill(token, fmt.Sprint("k", i), fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)))
		if got.status != http.StatusAccepted {
			t.Fatalf("buy %d with Redis gone: status = %d (%s), want 202", i, got.status, got.body)
		}
	}
}
