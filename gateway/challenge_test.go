package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

// MustChallengeActivity creates a flash sale of sku that requires a
// solved challenge on every buy.
func (tg *testGateway) MustChallengeActivity(tb testing.TB, admin, sku string, stock, limit int64, starts, ends time.Time) string {
	tb.Helper()
	return tg.mustCreate(tb, admin, "/admin/v1/activities", "activity_id", fmt.Sprintf(
		`{"sku_id":%q,"price":9900,"stock":%d,"per_user_limit":%d,"starts_at":%q,"ends_at":%q,"challenge_required":true}`,
		sku, stock, limit, starts.Format(time.RFC3339Nano), ends.Format(time.RFC3339Nano)))
}

// challenge fetches a challenge for the user's buy of act from device
// ("" for none).
func (tg *testGateway) challenge(tb testing.TB, token, act, device string) api.Challenge {
	tb.Helper()
	var c api.Challenge
	tg.do(tb, request{method: http.MethodGet, path: "/api/v1/activities/" + act + "/challenge", token: token,
		header: deviceHeader(device)}).decode(tb, &c)
	return c
}

func deviceHeader(device string) map[string]string {
	if device == "" {
		return nil
	}
	return map[string]string{api.DeviceHeader: device}
}

// solvedBuy is a buy of one unit of act carrying the challenge c with
// answer (empty: c solved), from device.
func solvedBuy(token, key, act string, c api.Challenge, answer, device string) request {
	if answer == "" {
		answer = api.SolveChallenge(c.Challenge, c.Bits)
	}
	req := seckill(token, key, fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))
	req.header[api.ChallengeHeader] = c.Challenge
	req.header[api.ChallengeAnswerHeader] = answer
	if device != "" {
		req.header[api.DeviceHeader] = device
	}
	return req
}

// forge rewrites the challenge's signed claims with edit, keeping the
// signature: what a client that wants another user's or sale's challenge,
// or no wait, would try.
func forge(tb testing.TB, c api.Challenge, edit func(claims map[string]any)) api.Challenge {
	tb.Helper()
	payload, sig, _ := strings.Cut(c.Challenge, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		tb.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		tb.Fatal(err)
	}
	edit(claims)
	raw, _ = json.Marshal(claims)
	c.Challenge = base64.RawURLEncoding.EncodeToString(raw) + "." + sig
	return c
}

// respell changes the last character of s's last dot-separated part, a
// base64url signature, to another that decodes to the same bytes when its
// unused low bits are ignored (as a lenient decoder does): another
// spelling of the same signed value.
func respell(tb testing.TB, s string) string {
	tb.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	sig := s[strings.LastIndexByte(s, '.')+1:]
	want, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || last < 0 {
		tb.Fatalf("%q does not end in base64url", s)
	}
	for k := range 4 {
		other := s[:len(s)-1] + alphabet[last&^3|k:last&^3|k+1]
		got, err := base64.RawURLEncoding.DecodeString(other[strings.LastIndexByte(other, '.')+1:])
		if other != s && err == nil && string(got) == string(want) {
			return other
		}
	}
	tb.Fatalf("%q has no other spelling: its signature uses every bit of its last character", s)
	return ""
}

func wantRefused(tb testing.TB, got answer, status int, code string) {
	tb.Helper()
	if got.status != status || got.code(tb) != code {
		tb.Fatalf("got %d %s, want %d %s", got.status, got.body, status, code)
	}
}

// The challenge wall, rule by rule, against the real services and Redis:
// a sale that requires a challenge refuses a buy without one, or with
// one that is forged, unsolved, another user's, sale's or device's, too
// early, expired, or used by another buy; a solved challenge buys once,
// and a retry of that buy (same key) gets its order, also after the
// challenge expired. A sale that does not require one needs none.
func TestChallengeWall(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	const wait = 700 * time.Millisecond
	opts := gateway.WithChallengeWait(gateway.Options{Redis: MustRedis(t), ChallengeBits: 8, ChallengeTTL: 10 * time.Second}, wait)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, opts: opts})
	admin := tg.token(t, 1, "admin")
	alice, bob := tg.token(t, 301, "user"), tg.token(t, 302, "user")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 100)
	act := tg.MustChallengeActivity(t, admin, sku, 10, 5, now.Add(-time.Minute), now.Add(time.Hour))
	other := tg.MustChallengeActivity(t, admin, sku, 10, 5, now.Add(-time.Minute), now.Add(time.Hour))
	open := tg.MustActivity(t, admin, sku, 10, 5, now.Add(-time.Minute), now.Add(time.Hour))

	var a api.Activity
	tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act}).decode(t, &a)
	if !a.ChallengeRequired {
		t.Fatalf("activity %+v: challenge_required is false", a)
	}

	calls := tg.orderCalls.Load()
	wantRefused(t, tg.do(t, seckill(alice, "none", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))),
		http.StatusPreconditionRequired, "CHALLENGE_REQUIRED")

	c := tg.challenge(t, alice, act, "phone-1")
	// In whole milliseconds: the time rounded down, the wait up.
	if c.Bits != 8 || c.WaitMS != wait.Milliseconds() || !c.NotBefore.Equal(now.Add(wait).Truncate(time.Millisecond)) ||
		!c.ExpiresAt.Equal(c.NotBefore.Add(10*time.Second)) {
		t.Fatalf("challenge = %+v, want 8 bits, wait %s from %s, 10 s to use", c, wait, now)
	}
	early := tg.do(t, solvedBuy(alice, "k1", act, c, "", "phone-1"))
	wantRefused(t, early, http.StatusTooEarly, "CHALLENGE_EARLY")
	if early.header.Get("Retry-After") != "1" {
		t.Fatalf("too early: Retry-After %q, want 1", early.header.Get("Retry-After"))
	}
	tg.clock.Advance(time.Duration(c.WaitMS) * time.Millisecond) // as a client waits

	wrong := "0"
	for api.SolvesChallenge(c.Challenge, wrong, c.Bits) {
		wrong += "0"
	}
	for name, tt := range map[string]struct {
		req  request
		code string
	}{
		"an answer that does not solve it": {solvedBuy(alice, "k1", act, c, wrong, "phone-1"), "CHALLENGE_INVALID"},
		"an answer that is not digits":     {solvedBuy(alice, "k1", act, c, "12a", "phone-1"), "CHALLENGE_INVALID"},
		"another user's":                   {solvedBuy(bob, "k1", act, c, "", "phone-1"), "CHALLENGE_INVALID"},
		"another sale's":                   {solvedBuy(alice, "k1", other, c, "", "phone-1"), "CHALLENGE_INVALID"},
		"another device's":                 {solvedBuy(alice, "k1", act, c, "", "phone-2"), "CHALLENGE_INVALID"},
		"no device where it had one":       {solvedBuy(alice, "k1", act, c, "", ""), "CHALLENGE_INVALID"},
		"bob's name written in":            {solvedBuy(bob, "k1", act, forge(t, c, func(m map[string]any) { m["u"] = 302 }), "", "phone-1"), "CHALLENGE_INVALID"},
		"no work written in":               {solvedBuy(alice, "k1", act, forge(t, c, func(m map[string]any) { m["k"] = 0 }), "", "phone-1"), "CHALLENGE_INVALID"},
		"no wait written in":               {solvedBuy(alice, "k1", act, forge(t, c, func(m map[string]any) { m["nbf"] = 0 }), "", "phone-1"), "CHALLENGE_INVALID"},
		"not a challenge at all":           {solvedBuy(alice, "k1", act, api.Challenge{Challenge: "x.y", Bits: 1}, "", "phone-1"), "CHALLENGE_INVALID"},
		"its signature respelled":          {solvedBuy(alice, "k1", act, api.Challenge{Challenge: respell(t, c.Challenge), Bits: c.Bits}, "", "phone-1"), "CHALLENGE_INVALID"},
	} {
		t.Run(name, func(t *testing.T) {
			wantRefused(t, tg.do(t, tt.req), http.StatusForbidden, tt.code)
		})
	}
	if n := tg.orderCalls.Load() - calls; n != 0 {
		t.Fatalf("refused buys called order %d times", n)
	}

	// The first buy with it is placed; its retry (same key) gets the
	// same order; another buy with it is refused.
	var placed, again api.SeckillAccepted
	tg.do(t, solvedBuy(alice, "k1", act, c, "", "phone-1")).decode(t, &placed)
	tg.do(t, solvedBuy(alice, "k1", act, c, "", "phone-1")).decode(t, &again)
	if again.OrderID != placed.OrderID {
		t.Fatalf("retry got order %s, want %s", again.OrderID, placed.OrderID)
	}
	wantRefused(t, tg.do(t, solvedBuy(alice, "k2", act, c, "", "phone-1")), http.StatusConflict, "CHALLENGE_USED")

	// Expired: a new buy is refused, a retry of the placed one still
	// gets its order.
	fresh := tg.challenge(t, alice, act, "phone-1")
	tg.clock.Advance(fresh.ExpiresAt.Sub(tg.clock.Now())) // expires_at is the first instant it is refused
	wantRefused(t, tg.do(t, solvedBuy(alice, "k3", act, fresh, "", "phone-1")), http.StatusForbidden, "CHALLENGE_EXPIRED")
	tg.do(t, solvedBuy(alice, "k1", act, c, "", "phone-1")).decode(t, &again)
	if again.OrderID != placed.OrderID {
		t.Fatalf("retry after expiry got order %s, want %s", again.OrderID, placed.OrderID)
	}

	// A sale that does not require a challenge takes a buy without one.
	if got := tg.do(t, seckill(bob, "open-1", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, open))); got.status != http.StatusAccepted {
		t.Fatalf("buy of a sale without a challenge: %d %s", got.status, got.body)
	}
}

// Challenges are handed out from a minute before a sale starts (waiting
// until the start, plus the jitter) until it ends, and only for sales
// that exist.
func TestChallengeWindow(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	const wait = 300 * time.Millisecond
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.WithChallengeWait(gateway.Options{ChallengeBits: 4}, wait)})
	admin, alice := tg.token(t, 1, "admin"), tg.token(t, 301, "user")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 100)
	soon := tg.MustChallengeActivity(t, admin, sku, 10, 1, now.Add(30*time.Second), now.Add(time.Hour))
	later := tg.MustChallengeActivity(t, admin, sku, 10, 1, now.Add(2*time.Minute), now.Add(time.Hour))
	ending := tg.MustChallengeActivity(t, admin, sku, 10, 1, now.Add(-time.Minute), now.Add(90*time.Second))

	c := tg.challenge(t, alice, soon, "")
	if want := (30*time.Second + wait).Milliseconds(); c.WaitMS != want {
		t.Fatalf("challenge of a sale 30 s away waits %d ms, want %d", c.WaitMS, want)
	}
	notYet := func(act string) {
		t.Helper()
		got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act + "/challenge", token: alice})
		wantRefused(t, got, http.StatusConflict, "ACTIVITY_NOT_ACTIVE")
	}
	notYet(later)
	tg.challenge(t, alice, ending, "")
	tg.clock.Advance(90 * time.Second)
	notYet(ending)
	wantRefused(t, tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/999999999/challenge", token: alice}),
		http.StatusNotFound, "NOT_FOUND")
	wantRefused(t, tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + soon + "/challenge"}),
		http.StatusUnauthorized, "UNAUTHENTICATED")
}

// The blocklist (Consul KV through Apply) refuses listed users, devices
// and addresses on the buy and its challenge, and lets everyone else
// through; lifting it lets them back.
func TestBlocklist(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.WithChallengeWait(gateway.Options{ChallengeBits: 4}, 0)})
	admin := tg.token(t, 1, "admin")
	alice, bob := tg.token(t, 301, "user"), tg.token(t, 302, "user")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 100)
	act := tg.MustActivity(t, admin, sku, 50, 10, now.Add(-time.Minute), now.Add(time.Hour))
	buy := func(token, key, device string) answer {
		req := seckill(token, key, fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))
		if device != "" {
			req.header[api.DeviceHeader] = device
		}
		return tg.do(t, req)
	}
	challenge := func(token, device string) answer {
		return tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act + "/challenge", token: token, header: deviceHeader(device)})
	}

	s, err := gateway.ParseSettings(map[string]string{"blocklist/users": strconv.FormatInt(tg.user(301), 10), "blocklist/devices": "farm-1, farm-2"}, tg.gw.Settings(), tg.gw.Settings())
	if err != nil {
		t.Fatal(err)
	}
	tg.gw.Apply(s)
	wantRefused(t, buy(alice, "a1", ""), http.StatusForbidden, "BLOCKED")
	wantRefused(t, challenge(alice, ""), http.StatusForbidden, "BLOCKED")
	wantRefused(t, buy(bob, "b1", "farm-2"), http.StatusForbidden, "BLOCKED")
	wantRefused(t, challenge(bob, "farm-1"), http.StatusForbidden, "BLOCKED")
	if got := buy(bob, "b2", "phone-9"); got.status != http.StatusAccepted {
		t.Fatalf("bob from his phone: %d %s", got.status, got.body)
	}
	// The rest of the platform is not the blocklist's business.
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act, header: deviceHeader("farm-1")}); got.status != http.StatusOK {
		t.Fatalf("activity page from a blocked device: %d %s", got.status, got.body)
	}

	// The test's client connects from loopback.
	tg.gw.Apply(gateway.Settings{Blocklist: gateway.Blocklist{IPs: mustPrefixes(t, "127.0.0.0/8")}})
	wantRefused(t, buy(bob, "b3", "phone-9"), http.StatusForbidden, "BLOCKED")

	tg.gw.Apply(gateway.Settings{})
	if got := buy(alice, "a2", "farm-1"); got.status != http.StatusAccepted {
		t.Fatalf("alice once the blocklist is lifted: %d %s", got.status, got.body)
	}
	if n := tg.metric(t, `gateway_admission_refused_total{reason="blocked",route="POST /api/v1/seckill/orders"}`); n != 3 {
		t.Fatalf("blocked buys counted %v, want 3", n)
	}
}

func mustPrefixes(tb testing.TB, s string) []netip.Prefix {
	tb.Helper()
	p, err := gateway.ParseBlocklistIPs(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Each device gets its own bucket on the flash-sale entry (the buy and
// the challenge share it); a malformed device id is refused.
func TestDeviceLimit(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.Options{DeviceLimit: gateway.Limit{RPS: 1, Burst: 2}, ChallengeBits: 4}})
	admin, alice := tg.token(t, 1, "admin"), tg.token(t, 301, "user")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 100)
	act := tg.MustActivity(t, admin, sku, 50, 10, now.Add(-time.Minute), now.Add(time.Hour))
	challenge := func(device string) answer {
		return tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act + "/challenge", token: alice, header: deviceHeader(device)})
	}
	// A device's allowance is spent only by authenticated requests: the
	// id is the client's to name, so requests without a token naming
	// alice's tablet (anyone may send them) are refused 401 and leave
	// her burst whole. From a review (2026-12-08): the limit ran before
	// authentication, so a stranger could drain it.
	for range 5 {
		got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act + "/challenge", header: deviceHeader("tablet")})
		wantRefused(t, got, http.StatusUnauthorized, "UNAUTHENTICATED")
	}
	for range 2 {
		if got := challenge("tablet"); got.status != http.StatusOK {
			t.Fatalf("alice's challenge from her tablet after five strangers' requests naming it: %d %s, want 200 (her burst of 2)", got.status, got.body)
		}
	}
	tg.challenge(t, alice, act, "phone-1")
	req := seckill(alice, "d1", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))
	req.header[api.DeviceHeader] = "phone-1"
	if got := tg.do(t, req); got.status != http.StatusAccepted {
		t.Fatalf("second request of the device: %d %s", got.status, got.body)
	}
	limited := challenge("phone-1")
	wantRefused(t, limited, http.StatusTooManyRequests, "RATE_LIMITED")
	if limited.header.Get("Retry-After") == "" {
		t.Fatal("device limit: no Retry-After")
	}
	tg.challenge(t, alice, act, "phone-2")
	tg.challenge(t, alice, act, "") // no device: only the other limits apply
	tg.clock.Advance(time.Second)
	tg.challenge(t, alice, act, "phone-1")
	wantRefused(t, challenge("phone 1"), http.StatusBadRequest, "INVALID_ARGUMENT")
	wantRefused(t, challenge(strings.Repeat("d", 129)), http.StatusBadRequest, "INVALID_ARGUMENT")
	if n := tg.metric(t, `gateway_admission_refused_total{reason="device",route="GET /api/v1/activities/{activity_id}/challenge"}`); n != 1 {
		t.Fatalf("device refusals counted %v, want 1", n)
	}
}

// One challenge, many buys at once with different keys, on every
// replica: exactly one is placed, the others are CHALLENGE_USED; and the
// placed buy's repeats, sent at the same time, all get its order. On one
// Redis and on a cluster (the mark lives in the sale's hash slot).
func TestChallengeIsUsedOnceUnderConcurrency(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	for _, backend := range MustRedisBackends(t) {
		t.Run(backend.name, func(t *testing.T) {
			opts := gateway.WithChallengeWait(gateway.Options{Redis: backend.rdb, ChallengeBits: 4}, 0)
			replicas := []*testGateway{
				MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, opts: opts}),
				MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, opts: opts}),
			}
			tg := replicas[0]
			admin, alice := tg.token(t, 1, "admin"), tg.token(t, 401, "user")
			now := tg.clock.Now()
			sku := tg.MustProduct(t, admin, 19900, 100)
			act := tg.MustChallengeActivity(t, admin, sku, 50, 50, now.Add(-time.Minute), now.Add(time.Hour))
			c := tg.challenge(t, alice, act, "")
			const n = 16
			answers := make([]answer, 2*n)
			var wg sync.WaitGroup
			for i := range 2 * n {
				key := fmt.Sprintf("k%d", i)
				if i >= n {
					key = "same" // the same buy, repeated
				}
				wg.Go(func() { answers[i] = replicas[i%2].do(t, solvedBuy(alice, key, act, c, "", "")) })
			}
			wg.Wait()
			placed, used := map[string]bool{}, 0
			for i, a := range answers {
				switch {
				case a.status == http.StatusAccepted:
					var o api.SeckillAccepted
					a.decode(t, &o)
					placed[o.OrderID] = true
				case a.status == http.StatusConflict && a.code(t) == "CHALLENGE_USED":
					used++
				default:
					t.Fatalf("buy %d: %d %s", i, a.status, a.body)
				}
			}
			// Either one of the n keys took the challenge and every
			// other buy is CHALLENGE_USED, or "same" took it, every
			// repeat got its one order and the n keys are refused.
			if len(placed) != 1 || (used != 2*n-1 && used != n) {
				t.Fatalf("%d orders placed, %d CHALLENGE_USED of %d buys; want 1 order and the other keys refused", len(placed), used, 2*n)
			}
		})
	}
}
