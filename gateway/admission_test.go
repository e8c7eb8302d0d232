package gateway_test

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/shadow"
)

const seckillRoute = "POST /api/v1/seckill/orders"

// metric reads one sample of the gateway's /metrics: name with its labels
// as the exposition writes them (sorted), e.g.
// `gateway_admission_limit{route="seckill"}`; -1 when absent.
func (tg *testGateway) metric(tb testing.TB, series string) float64 {
	tb.Helper()
	got := tg.do(tb, request{method: http.MethodGet, path: "/metrics"})
	sc := bufio.NewScanner(strings.NewReader(string(got.body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s: %q: %v", series, v, err)
			}
			return f
		}
	}
	return -1
}

// waitInFlight waits until the flash-sale route has at least n requests
// admitted and in flight: a buy waiting in the order client's batcher for
// a call slot shows only there.
func (tg *testGateway) waitInFlight(tb testing.TB, n float64) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); tg.metric(tb, `gateway_admission_inflight{route="seckill"}`) < n; {
		if time.Now().After(deadline) {
			tb.Fatalf("the flash-sale route never had %v buys in flight", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustRefusedOverloaded checks a 429 OVERLOADED with a Retry-After of
// whole seconds.
func mustRefusedOverloaded(tb testing.TB, got answer) {
	tb.Helper()
	if got.status != http.StatusTooManyRequests || got.code(tb) != "OVERLOADED" {
		tb.Fatalf("got %d %s, want 429 OVERLOADED", got.status, got.body)
	}
	if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
		tb.Fatalf("Retry-After = %q, want whole seconds >= 1", got.header.Get("Retry-After"))
	}
}

// While the flash-sale route has as many buys in flight as its limit
// (two held open at the order service's answer, one waiting for a call
// slot), every further buy is refused
// at once with 429 OVERLOADED and never reaches the order service; the
// other write routes have a limit of their own; each refusal is timed.
// Once the held buys are answered, buys are admitted again.
func TestAdmissionRefusesAtOnceWhenFull(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	hold, held := make(chan struct{}), make(chan struct{}, 16)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.Options{
			SeckillAdmission: gateway.AdmissionLimit{Min: 1, Initial: 3, Max: 3},
			WriteAdmission:   gateway.AdmissionLimit{Min: 1, Initial: 1, Max: 1},
			// The third buy waits in the batcher under its call's
			// deadline while two are held: held as long as the test
			// needs, not the 2 s default.
			CallTimeout: time.Minute,
		},
		afterCall: func(method string) {
			if strings.HasSuffix(method, "/PlaceSeckillOrderBatch") {
				held <- struct{}{}
				<-hold
			}
		}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 100), 100, 1, now.Add(-time.Minute), now.Add(time.Hour))
	buy := func(user int64) answer {
		return tg.do(t, seckill(tg.token(t, user, "user"), "k", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)))
	}

	// Two buys hold the order client's two calls; the third is admitted
	// and waits in the batcher for one of them.
	answers := make(chan answer, 3)
	for user := range int64(3) {
		go func() { answers <- buy(1300 + user) }()
		if user < 2 {
			<-held
		}
	}
	tg.waitInFlight(t, 3)
	calls := tg.orderCalls.Load()
	for user := range int64(5) {
		mustRefusedOverloaded(t, buy(1310+user))
	}
	if n := tg.orderCalls.Load() - calls; n != 0 {
		t.Fatalf("refused buys made %d order calls, want 0", n)
	}
	// Cancelling goes through the write routes' own limit: it reaches the
	// order service, which knows no such order.
	if got := tg.do(t, request{method: http.MethodPost, path: "/api/v1/orders/42/cancel", token: tg.token(t, 1320, "user")}); got.status != http.StatusNotFound {
		t.Fatalf("cancel while the flash sale is full: %d %s, want 404", got.status, got.body)
	}
	for series, want := range map[string]float64{
		`gateway_admission_refused_total{reason="limit",route="` + seckillRoute + `"}`: 5,
		// Each error answer is timed by its code, for the gateway's own
		// cost of a refusal: the five refusals, and the cancel's 404.
		`gateway_http_error_duration_seconds_count{code="OVERLOADED",route="` + seckillRoute + `"}`:                 5,
		`gateway_http_error_duration_seconds_count{code="NOT_FOUND",route="POST /api/v1/orders/{order_id}/cancel"}`: 1,
		`gateway_admission_limit{route="seckill"}`:                                                                  3,
		`gateway_admission_limit{route="writes"}`:                                                                   1,
		`gateway_admission_inflight{route="writes"}`:                                                                0,
	} {
		if got := tg.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	close(hold)
	for range 3 {
		if got := <-answers; got.status != http.StatusAccepted {
			t.Fatalf("held buy: %d %s, want 202", got.status, got.body)
		}
	}
	if got := buy(1330); got.status != http.StatusAccepted {
		t.Fatalf("after the held buys were answered: %d %s, want 202", got.status, got.body)
	}
	if got := tg.metric(t, `gateway_admission_inflight{route="seckill"}`); got != 0 {
		t.Fatalf("in flight after every answer = %v, want 0", got)
	}
}

// The limit follows latency: steady fast buys keep it where it is, buys
// that become ten times slower than the fast ones at the order service
// bring it down, and it rises again once they are fast again. Four buyers
// keep at most four buys in flight, below the limit, so only latency
// moves it. The step is measured against the fast buys' own latency, so
// it is the same step on a quiet machine and a busy one.
func TestAdmissionLimitFollowsLatency(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	var delay atomic.Int64 // what the order service's answers are held, ns
	const top = 20
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		// The slowed calls may take seconds on a busy machine, and two
		// calls on the wire queue the other buyers behind them: a
		// generous call budget keeps that a matter of latency, which is
		// what moves the limit, rather than of timeouts.
		opts: gateway.WithAdmissionWindow(gateway.Options{
			SeckillAdmission: gateway.AdmissionLimit{Min: 1, Initial: top, Max: top},
			CallTimeout:      time.Minute,
		}, time.Millisecond, 5),
		afterCall: func(method string) {
			if strings.HasSuffix(method, "/PlaceSeckillOrderBatch") {
				time.Sleep(time.Duration(delay.Load())) // the order service slowed down
			}
		}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 1e6), 1e6, 1000, now.Add(-time.Minute), now.Add(time.Hour))
	body := fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)
	limit := func() int { return int(tg.metric(t, `gateway_admission_limit{route="seckill"}`)) }
	// run has four buyers send n buys in all, each after the last was
	// answered, and returns the lowest and highest limit seen meanwhile
	// and the buys' p90 latency.
	var key atomic.Int64
	run := func(n int64) (lo, hi int, p90 time.Duration) {
		var (
			wg    sync.WaitGroup
			sent  atomic.Int64
			mu    sync.Mutex
			times []time.Duration
		)
		lo, hi = top+1, 0
		for buyer := range int64(4) {
			token := tg.token(t, 1340+buyer, "user")
			wg.Go(func() {
				for sent.Add(1) <= n {
					start := time.Now()
					got := tg.do(t, seckill(token, strconv.FormatInt(key.Add(1), 10), body))
					took := time.Since(start)
					if got.status != http.StatusAccepted {
						t.Errorf("buy: %d %s, want 202", got.status, got.body)
						return
					}
					l := limit()
					mu.Lock()
					lo, hi = min(lo, l), max(hi, l)
					times = append(times, took)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(times) == 0 {
			t.Fatal("no buy was accepted")
		}
		slices.Sort(times)
		return lo, hi, times[len(times)*9/10]
	}

	// Forty windows of fast buys set the baseline.
	_, _, fast := run(200)
	before := limit()
	delay.Store(int64(10 * fast))
	lo, _, _ := run(60)
	if lo >= before {
		t.Fatalf("buys ten times slower (%v more than the fast p90 %v) left the limit at %d or more, want it below %d", 10*fast, fast, lo, before)
	}
	delay.Store(0)
	if _, hi, _ := run(300); hi <= lo {
		t.Fatalf("fast buys again: the limit stayed at %d or below, want it to rise again", lo)
	}
}

// A pressure test yields to real buyers: marked buys are admitted only
// while the flash-sale route has fewer than half its limit in flight, so
// with a limit of four, one marked and one real buy held open leave room
// for two more real buys and none marked. The marked refusals are
// counted under their own reason.
func TestPressureTestYieldsToRealBuyers(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	var holding atomic.Bool
	hold, held := make(chan struct{}), make(chan struct{}, 16)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		// A buy waiting in the batcher behind the held calls keeps its
		// call's deadline: a minute, not the 2 s default, so a busy
		// machine cannot turn the wait into a 504.
		opts: gateway.Options{SeckillAdmission: gateway.AdmissionLimit{Min: 4, Initial: 4, Max: 4}, CallTimeout: time.Minute},
		afterCall: func(string) {
			if holding.Load() {
				held <- struct{}{}
				<-hold
			}
		}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 100), 100, 1, now.Add(-time.Minute), now.Add(time.Hour))
	loadTest := tg.loadTestToken(t, admin)
	// Marked buys go to the shadow side, where each asks for a sale of
	// its own (none exists there): each makes its own first call, rather
	// than waiting for another's in the gateway's activity cache.
	buy := func(user int64, marked bool) answer {
		req := seckill(tg.token(t, user, "user"), "k", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))
		if marked {
			req = seckill(tg.token(t, user, "user"), "k", fmt.Sprintf(`{"activity_id":"%d","quantity":1}`, 900_000_000+user))
			req.header[shadow.Header] = loadTest
		}
		return tg.do(t, req)
	}
	// A first real buy puts the activity in the gateway's cache, so each
	// real buy below makes its first downstream call on its own (the
	// cache's loader would have the later ones wait for the first).
	if got := buy(1399, false); got.status != http.StatusAccepted {
		t.Fatalf("first buy: %d %s", got.status, got.body)
	}
	holding.Store(true)
	var release sync.Once
	unhold := func() { release.Do(func() { holding.Store(false); close(hold) }) }
	t.Cleanup(unhold)
	answers := make(chan answer, 16)
	// send sends a buy and reports whether it was admitted (it stays in
	// flight at its first downstream call) or answered at once.
	send := func(user int64, marked bool) (admitted bool, got answer) {
		go func() { answers <- buy(user, marked) }()
		select {
		case <-held:
			return true, answer{}
		case got := <-answers:
			return false, got
		}
	}
	admit := func(user int64, marked bool) {
		if admitted, got := send(user, marked); !admitted {
			t.Fatalf("buy of user %d (marked %t) answered at once: %d %s, want it admitted", user, marked, got.status, got.body)
		}
	}
	refuse := func(user int64, marked bool) {
		admitted, got := send(user, marked)
		if admitted {
			t.Fatalf("buy of user %d (marked %t) admitted, want it refused", user, marked)
		}
		mustRefusedOverloaded(t, got)
	}
	admit(1400, true)
	admit(1401, false)
	for user := range int64(3) {
		refuse(1410+user, true)
	}
	admit(1402, false)
	// 1401 and 1402 hold the order client's two calls: 1403 is admitted
	// and waits in its batcher for one of them.
	go func() { answers <- buy(1403, false) }()
	tg.waitInFlight(t, 4)
	refuse(1404, false)
	for series, want := range map[string]float64{
		`gateway_admission_refused_total{reason="pressure_test",route="` + seckillRoute + `"}`: 3,
		`gateway_admission_refused_total{reason="limit",route="` + seckillRoute + `"}`:         1,
		`gateway_admission_inflight{route="seckill"}`:                                          4,
	} {
		if got := tg.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	unhold()
	for range 4 {
		<-answers
	}
	if got := buy(1420, true); got.status == http.StatusTooManyRequests {
		t.Errorf("a marked buy with nothing in flight: %d %s, want it admitted", got.status, got.body)
	}
}

// The gateway joins concurrent repeats of one flash-sale request (same
// sale, buyer and key) into one placement, but never a pressure test's
// with a real one: their sale ids name different storage, so a marked
// buy joined to a real one would be told the real order (and the real
// buyer, the other way round, the marked one's answer). From a review
// (2026-12-08): the join's key had no traffic class.
func TestAPressureTestIsNeverJoinedToARealBuy(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	var first atomic.Bool
	first.Store(true)
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.Options{CallTimeout: time.Minute},
		afterCall: func(method string) {
			// The real buy's placement is held until the marked buy
			// has been sent.
			if strings.HasSuffix(method, "PlaceSeckillOrderBatch") && first.CompareAndSwap(true, false) {
				held <- struct{}{}
				<-hold
			}
		}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 10), 10, 1, now.Add(-time.Minute), now.Add(time.Hour))
	loadTest := tg.loadTestToken(t, admin)
	buyer := tg.token(t, 1499, "user")
	body := fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)
	real := make(chan answer, 1)
	go func() { real <- tg.do(t, seckill(buyer, "same-key", body)) }()
	<-held
	marked := seckill(buyer, "same-key", body)
	marked.header[shadow.Header] = loadTest
	go func() {
		// Had it been joined it would wait for the real buy: let the
		// real buy go once the marked one has had time to arrive.
		time.Sleep(200 * time.Millisecond)
		close(hold)
	}()
	got := tg.do(t, marked)
	r := <-real
	if r.status != http.StatusAccepted {
		t.Fatalf("the real buy: %d %s, want 202", r.status, r.body)
	}
	// The shadow side has no such sale: the marked buy is refused there.
	if got.status == http.StatusAccepted || got.code(t) != "NOT_FOUND" {
		t.Errorf("the marked buy with the real buy's sale, buyer and key: %d %s, want its own answer (NOT_FOUND: no such sale in the shadow storage), not the real order", got.status, got.body)
	}
}
