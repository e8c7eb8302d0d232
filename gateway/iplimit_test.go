package gateway_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
)

// fromXFF is a flash-sale request (admitted by every limit, refused as
// invalid before any downstream call) carrying X-Forwarded-For.
func fromXFF(token, xff string) request {
	r := seckill(token, "k", admittedBody)
	if xff != "" {
		r.header["X-Forwarded-For"] = xff
	}
	return r
}

func mustRateLimited(tb testing.TB, got answer, what string) {
	tb.Helper()
	if got.status != http.StatusTooManyRequests || got.code(tb) != "RATE_LIMITED" {
		tb.Fatalf("%s: %d %s, want 429 RATE_LIMITED", what, got.status, got.body)
	}
	if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
		tb.Fatalf("%s: Retry-After = %q, want whole seconds >= 1", what, got.header.Get("Retry-After"))
	}
}

// With no trusted proxy (the default) X-Forwarded-For is the client's own
// say and is ignored: every request from one peer shares its bucket,
// whatever it claims.
func TestIPLimitIgnoresForwardedForFromUntrustedPeers(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{IPLimit: gateway.Limit{RPS: 1, Burst: 2}}})
	token := tg.token(t, 1350, "user")
	for i, xff := range []string{"", "1.2.3.4"} {
		if got := tg.do(t, fromXFF(token, xff)); got.status != http.StatusBadRequest {
			t.Fatalf("request %d: %d %s, want 400 (admitted)", i, got.status, got.body)
		}
	}
	mustRateLimited(t, tg.do(t, fromXFF(token, "5.6.7.8")), "third request, claiming another address")
	// Reads of the catalog are limited per address too.
	mustRateLimited(t, tg.do(t, request{method: http.MethodGet, path: "/api/v1/products/1"}), "a catalog read")
	tg.clock.Advance(time.Second)
	if got := tg.do(t, fromXFF(token, "")); got.status != http.StatusBadRequest {
		t.Fatalf("a second later: %d %s, want 400 (one token back)", got.status, got.body)
	}
	if got := tg.metric(t, `gateway_admission_refused_total{reason="ip",route="`+seckillRoute+`"}`); got != 1 {
		t.Errorf("refused by address on the seckill route = %v, want 1", got)
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

// Behind trusted proxies the client is the rightmost address of
// X-Forwarded-For that is not a trusted proxy: what the client wrote to
// the left of it is never read, and IPv6 clients count per /64.
func TestIPLimitReadsForwardedForPastTrustedProxies(t *testing.T) {
	trusted, err := gateway.ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{IPLimit: gateway.Limit{RPS: 1, Burst: 1}, TrustedProxies: trusted}})
	token := tg.token(t, 1351, "user")
	tests := []struct {
		xff  string
		want int
	}{
		{"1.2.3.4", http.StatusBadRequest},
		{"1.2.3.4", http.StatusTooManyRequests},
		{"9.9.9.9, 1.2.3.4", http.StatusTooManyRequests},         // a forged hop to the left
		{"1.2.3.4, 10.0.0.7", http.StatusTooManyRequests},        // through a second trusted proxy
		{"5.6.7.8", http.StatusBadRequest},                       // another client
		{"2001:db8::1", http.StatusBadRequest},                   // an IPv6 client …
		{"2001:db8::2", http.StatusTooManyRequests},              // … its /64
		{"2001:db8:0:1::1", http.StatusBadRequest},               // another /64
		{"10.0.0.7", http.StatusBadRequest},                      // only proxies: the farthest one
		{"", http.StatusBadRequest},                              // a trusted peer without the header: the peer
		{"not-an-address, 10.0.0.7", http.StatusTooManyRequests}, // unreadable: the last trusted hop, 10.0.0.7
	}
	for i, tt := range tests {
		got := tg.do(t, fromXFF(token, tt.xff))
		if got.status != tt.want {
			t.Fatalf("request %d (X-Forwarded-For %q): %d %s, want %d", i, tt.xff, got.status, got.body, tt.want)
		}
	}
}

// The table of addresses stays within its bound however many addresses
// come, and addresses whose bucket is full again are the first to go.
func TestIPLimitMemoryIsBounded(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{
		IPLimit: gateway.Limit{RPS: 1, Burst: 1}, IPLimitKeys: 16,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}})
	token := tg.token(t, 1352, "user")
	for i := range 100 {
		if got := tg.do(t, fromXFF(token, fmt.Sprintf("198.51.100.%d", i))); got.status != http.StatusBadRequest {
			t.Fatalf("address %d: %d %s, want 400 (admitted)", i, got.status, got.body)
		}
		if n := tg.metric(t, "gateway_admission_ip_keys"); n > 16 {
			t.Fatalf("after %d addresses the table holds %v, want at most 16", i+1, n)
		}
	}
	// A busy address dropped from a full table gets a fresh bucket: the
	// bound costs leniency, never a wrong refusal. Once every bucket is
	// full again, the new address that finds the table full sweeps them
	// all: one of the next two.
	tg.clock.Advance(time.Minute)
	tg.do(t, fromXFF(token, "203.0.113.1"))
	tg.do(t, fromXFF(token, "203.0.113.2"))
	if n := tg.metric(t, "gateway_admission_ip_keys"); n != 2 {
		t.Fatalf("after a minute and two new addresses the table holds %v, want those 2", n)
	}
}

// The admin routes are limited per address too, and before
// authentication: a flood of forged tokens from one address is refused
// 429 instead of costing a signature check each.
func TestIPLimitCoversTheAdminRoutes(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{IPLimit: gateway.Limit{RPS: 1, Burst: 2}}})
	forged := request{method: http.MethodPost, path: "/admin/v1/products", token: "forged", body: `{"title":"x","price":1,"stock":1}`}
	for i := range 2 {
		if got := tg.do(t, forged); got.status != http.StatusUnauthorized {
			t.Fatalf("forged admin request %d: %d %s, want 401", i, got.status, got.body)
		}
	}
	mustRateLimited(t, tg.do(t, forged), "a third forged admin request")
	if got := tg.metric(t, `gateway_admission_refused_total{reason="ip",route="POST /admin/v1/products"}`); got != 1 {
		t.Errorf("admin requests refused by address = %v, want 1", got)
	}
}
