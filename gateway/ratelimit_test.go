package gateway_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
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
// script touches one key.
func TestPerUserLimitIsSharedAcrossReplicas(t *testing.T) {
	for _, backend := range MustRedisBackends(t) {
		t.Run(backend.name, func(t *testing.T) {
			opts := gateway.Options{
				Redis:            backend.rdb,
				UserLimitPrefix:  "test:" + t.Name() + ":",
				SeckillUserLimit: gateway.Limit{RPS: 1, Burst: 2},
			}
			a := MustGateway(t, gatewayConfig{opts: opts})
			b := MustGateway(t, gatewayConfig{opts: opts})
			alice, bob := a.token(t, 21, "user"), a.token(t, 22, "user")

			// Two replicas share alice's two tokens: her third request is
			// refused whichever replica gets it.
			tests := []struct {
				gw    *testGateway
				token string
				want  int
			}{
				{a, alice, http.StatusBadRequest},
				{b, alice, http.StatusBadRequest},
				{a, alice, http.StatusTooManyRequests},
				{b, alice, http.StatusTooManyRequests},
				{b, bob, http.StatusBadRequest},
			}
			for i, tt := range tests {
				got := tt.gw.do(t, seckill(tt.token, "k", admittedBody))
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
			if n := a.calls() + b.calls(); n != 0 {
				t.Fatalf("%d downstream calls, want 0", n)
			}
		})
	}
}

func TestPerUserLimitFailsOpenWithoutRedis(t *testing.T) {
	rdb := MustRedis(t)
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{
		Redis:            rdb,
		SeckillUserLimit: gateway.Limit{RPS: 1, Burst: 1},
	}})
	token := tg.token(t, 31, "user")
	rdb.Close()
	for i := range 3 {
		if got := tg.do(t, seckill(token, "k", admittedBody)); got.status != http.StatusBadRequest {
			t.Fatalf("request %d with Redis gone: status = %d (%s), want 400 (admitted)", i, got.status, got.body)
		}
	}
}
