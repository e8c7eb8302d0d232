package gateway_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

func TestParseSettings(t *testing.T) {
	fallback := gateway.Settings{Route: gateway.Limit{RPS: 10, Burst: 20}, User: gateway.Limit{RPS: 1, Burst: 2}}
	// What Consul had set before each case: the values a bad key keeps.
	last := gateway.Settings{SeckillClosed: true, Degrade: gateway.LevelClose, Route: fallback.Route,
		User: gateway.Limit{RPS: 1, Burst: 1}, Blocklist: gateway.Blocklist{Users: []int64{7, 9},
			IPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Devices: []string{"farm-0"}},
		ScreenRetiredUntil: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name    string
		kv      map[string]string
		want    gateway.Settings
		wantErr string
	}{
		{"nothing in consul", nil, fallback, ""},
		{"switches", map[string]string{"seckill_closed": "true", "catalog_cache_only": "1"},
			gateway.Settings{SeckillClosed: true, CatalogCacheOnly: true, Route: fallback.Route, User: fallback.User}, ""},
		{"limits", map[string]string{"rate/route": "100/200", "rate/seckill": " 5/5 ", "rate/user": "0/0"},
			gateway.Settings{Route: gateway.Limit{RPS: 100, Burst: 200}, Seckill: gateway.Limit{RPS: 5, Burst: 5}}, ""},
		{"degrade level", map[string]string{"degrade_level": "survive", "degrade_auto": "true"},
			gateway.Settings{Degrade: gateway.LevelSurvive, DegradeAuto: true, Route: fallback.Route, User: fallback.User}, ""},
		{"blocklist", map[string]string{"blocklist/users": "7, 9", "blocklist/ips": "10.1.0.0/16, 192.0.2.7, ::ffff:198.51.100.0/120", "blocklist/devices": " farm-1 ,farm-2,"},
			gateway.Settings{Route: fallback.Route, User: fallback.User, Blocklist: gateway.Blocklist{
				Users: []int64{7, 9}, IPs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32"),
					netip.MustParsePrefix("198.51.100.0/24")},
				Devices: []string{"farm-1", "farm-2"}}}, ""},
		{"a bad blocklist keeps the one in force", map[string]string{"blocklist/users": "7, 9, bob", "blocklist/ips": "10.1.0.0/33", "blocklist/devices": "farm 1"},
			gateway.Settings{Route: fallback.Route, User: fallback.User, Blocklist: last.Blocklist}, "blocklist/users"},
		{"screen tokens retired", map[string]string{"screen/tokens_retired_until": " 2026-11-11T08:00:00+08:00 "},
			gateway.Settings{Route: fallback.Route, User: fallback.User, ScreenRetiredUntil: time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)}, ""},
		{"a bad time keeps the one in force", map[string]string{"screen/tokens_retired_until": "2026-11-11"},
			gateway.Settings{Route: fallback.Route, User: fallback.User, ScreenRetiredUntil: last.ScreenRetiredUntil}, "screen/tokens_retired_until"},
		{"an unknown level keeps the one in force", map[string]string{"degrade_level": "panic"},
			gateway.Settings{Degrade: gateway.LevelClose, Route: fallback.Route, User: fallback.User}, "degrade_level"},
		{"typos keep the values in force", map[string]string{"seckill_closed": "on", "rate/route": "100", "rate/user": "1/ 1", "catalog_cache_only": "true"},
			gateway.Settings{SeckillClosed: true, CatalogCacheOnly: true, Route: fallback.Route, User: last.User}, "seckill_closed"},
		{"a limit past MaxRate keeps the one in force", map[string]string{"rate/user": "1/10000000000"},
			gateway.Settings{Route: fallback.Route, User: last.User}, "rate/user"},
		{"a misspelt key is reported", map[string]string{"seckill-closed": "true", "blocklist/user": "7"},
			fallback, "seckill-closed: not a setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gateway.ParseSettings(tt.kv, fallback, last)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	// An empty time lifts the environment's, not falls back to it.
	fallback.ScreenRetiredUntil = last.ScreenRetiredUntil
	if got, err := gateway.ParseSettings(map[string]string{"screen/tokens_retired_until": ""}, fallback, last); err != nil || !got.ScreenRetiredUntil.IsZero() {
		t.Errorf("an empty screen/tokens_retired_until: %v, %v; want no time", got.ScreenRetiredUntil, err)
	}
}

// Closing the flash-sale entry answers 503 without calling any service,
// still answers a retry of an accepted request with its order, and opening
// it again lets buyers through.
func TestSeckillClosedSwitch(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr,
		opts: gateway.Options{Redis: MustRedis(t)}})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 10)
	act := tg.MustActivity(t, admin, sku, 5, 1, now.Add(-time.Minute), now.Add(time.Hour))
	body := fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)
	buy := func(user int64) answer {
		return tg.do(t, seckill(tg.token(t, user, "user"), fmt.Sprint("closed-", user), body))
	}
	if got := buy(701); got.status != http.StatusAccepted {
		t.Fatalf("open: %d %s", got.status, got.body)
	}

	s := tg.gw.Settings()
	s.SeckillClosed = true
	tg.gw.Apply(s)
	before := tg.calls()
	got := buy(702)
	if got.status != http.StatusServiceUnavailable || got.code(t) != "UNAVAILABLE" || got.header.Get("Retry-After") != "30" {
		t.Fatalf("closed: %d %s (Retry-After %q), want 503 UNAVAILABLE, Retry-After 30", got.status, got.body, got.header.Get("Retry-After"))
	}
	if got := buy(701); got.status != http.StatusAccepted {
		t.Fatalf("closed, retry of an accepted request: %d %s, want 202", got.status, got.body)
	}
	if n := tg.calls() - before; n != 0 {
		t.Fatalf("a closed entry called services %d times, want 0", n)
	}

	s.SeckillClosed = false
	tg.gw.Apply(s)
	if got := buy(703); got.status != http.StatusAccepted {
		t.Fatalf("reopened: %d %s", got.status, got.body)
	}
}

// With the catalog on cache only, details already loaded are served
// however old, those never loaded answer 503, and the product service is
// not called.
func TestCatalogCacheOnlySwitch(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 10)
	other := tg.MustProduct(t, admin, 100, 1)
	act := tg.MustActivity(t, admin, sku, 5, 1, now.Add(-time.Minute), now.Add(time.Hour))
	get := func(path string) answer { return tg.do(t, request{method: http.MethodGet, path: path}) }
	for _, p := range []string{"/api/v1/products/" + sku, "/api/v1/activities/" + act} {
		if got := get(p); got.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, got.status, got.body)
		}
	}

	s := tg.gw.Settings()
	s.CatalogCacheOnly = true
	tg.gw.Apply(s)
	tg.clock.Advance(time.Hour) // far past the cache's TTL
	before := tg.productCalls.Load()
	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/api/v1/products/" + sku, http.StatusOK},
		{"/api/v1/activities/" + act, http.StatusOK},
		{"/api/v1/products/" + other, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		if got := get(tt.path); got.status != tt.wantStatus {
			t.Errorf("cache only, GET %s: %d %s, want %d", tt.path, got.status, got.body, tt.wantStatus)
		}
	}
	if n := tg.productCalls.Load() - before; n != 0 {
		t.Errorf("cache only called product %d times, want 0", n)
	}

	s.CatalogCacheOnly = false
	tg.gw.Apply(s)
	if got := get("/api/v1/products/" + other); got.status != http.StatusOK {
		t.Errorf("switched back, GET other: %d %s", got.status, got.body)
	}
}

// A route limit changed at run time takes effect on the next request.
func TestApplyChangesRateLimits(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{opts: gateway.Options{RouteLimit: gateway.Limit{RPS: 1000, Burst: 1000}}})
	get := func() int { return tg.do(t, request{method: http.MethodGet, path: "/api/v1/products/abc"}).status }
	for range 5 {
		if got := get(); got != http.StatusBadRequest {
			t.Fatalf("under a loose limit: %d, want 400 (bad id, past the limiter)", got)
		}
	}
	s := tg.gw.Settings()
	s.Route = gateway.Limit{RPS: 1, Burst: 2}
	tg.gw.Apply(s)
	var got []int
	for range 4 {
		got = append(got, get())
	}
	if want := []int{400, 400, 429, 429}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after tightening: %v, want %v", got, want)
	}
	s.Route = gateway.Limit{}
	tg.gw.Apply(s)
	if got := get(); got != http.StatusBadRequest {
		t.Errorf("after lifting: %d, want 400", got)
	}
}
