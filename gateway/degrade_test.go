package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

// TestEachDegradeLevelSwitchesOffItsRoutes sets each level by hand (as
// the degrade_level key in Consul does) and checks what it switches off,
// in order: lists first (the activity list from the last copy, the
// buyer's lists 503), then regular checkout and coupon claims (and the
// catalogue from the cache alone), then cancel and refunds. The flash
// sale, its order status and payment stay up at every level; a route
// switched off answers 503 with Retry-After without calling any service.
func TestEachDegradeLevelSwitchesOffItsRoutes(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, marketingAddr: svc.MarketingAddr})
	admin := tg.token(t, 1, "admin")
	buyer := tg.token(t, 601, "user")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 100)
	act := tg.MustActivity(t, admin, sku, 50, 5, now.Add(-time.Minute), now.Add(time.Hour))
	get := func(path string) request { return request{method: http.MethodGet, path: path, token: buyer} }
	post := func(path, body string) request {
		return request{method: http.MethodPost, path: path, token: buyer, body: body,
			header: map[string]string{"Idempotency-Key": fmt.Sprint("k-", time.Now().UnixNano())}}
	}
	checkout := post("/api/v1/orders", fmt.Sprintf(`{"lines":[{"sku_id":%q,"quantity":1}]}`, sku))
	quote := post("/api/v1/orders/quote", fmt.Sprintf(`{"lines":[{"sku_id":%q,"quantity":1}]}`, sku))
	buy := func() answer {
		return tg.do(t, seckill(buyer, fmt.Sprint("b-", time.Now().UnixNano()), fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)))
	}
	var placed api.SeckillAccepted
	tg.do(t, get("/api/v1/activities")).decode(t, &struct{}{}) // the list's last copy
	tg.do(t, get("/api/v1/products/"+sku)).decode(t, &struct{}{})
	buy().decode(t, &placed)

	degraded := func(a answer) bool {
		return a.status == http.StatusServiceUnavailable && a.header.Get("Retry-After") == "5" && strings.Contains(string(a.body), "degraded")
	}
	type check struct {
		name string
		req  func() answer
		off  gateway.Level // LevelNormal: never switched off
	}
	checks := []check{
		{"the buyer's orders", func() answer { return tg.do(t, get("/api/v1/orders")) }, gateway.LevelProtect},
		{"the buyer's coupons", func() answer { return tg.do(t, get("/api/v1/coupons")) }, gateway.LevelProtect},
		{"checkout", func() answer { return tg.do(t, checkout) }, gateway.LevelSurvive},
		{"quote", func() answer { return tg.do(t, quote) }, gateway.LevelSurvive},
		{"coupon claim", func() answer { return tg.do(t, post("/api/v1/coupons/12345/claim", "")) }, gateway.LevelSurvive},
		{"cancel", func() answer { return tg.do(t, post("/api/v1/orders/"+placed.OrderID+"/cancel", "")) }, gateway.LevelClose},
		{"refund", func() answer {
			return tg.do(t, post("/api/v1/orders/"+placed.OrderID+"/refunds", `{"lines":[{"line_id":"1","quantity":1}]}`))
		}, gateway.LevelClose},
		{"a flash-sale buy", buy, gateway.LevelNormal},
		{"the order's status", func() answer { return tg.do(t, get("/api/v1/orders/"+placed.OrderID)) }, gateway.LevelNormal},
	}
	for _, level := range []gateway.Level{gateway.LevelNormal, gateway.LevelProtect, gateway.LevelSurvive, gateway.LevelClose} {
		s := tg.gw.Settings()
		s.Degrade = level
		tg.gw.Apply(s)
		if tg.gw.Level() != level {
			t.Fatalf("level %s after Apply, want %s", tg.gw.Level(), level)
		}
		for _, c := range checks {
			before := tg.calls()
			got := c.req()
			off := c.off != gateway.LevelNormal && level >= c.off
			if degraded(got) != off {
				t.Errorf("%s at %s: %d %s; switched off: %v, want %v", c.name, level, got.status, got.body, degraded(got), off)
			}
			if off && tg.calls() != before {
				t.Errorf("%s at %s: switched off but called a service", c.name, level)
			}
		}
		before := tg.productCalls.Load()
		list := tg.do(t, get("/api/v1/activities"))
		if list.status != http.StatusOK {
			t.Errorf("the activity list at %s: %d %s, want 200", level, list.status, list.body)
		}
		if fromCopy := tg.productCalls.Load() == before; fromCopy != (level >= gateway.LevelProtect) {
			t.Errorf("the activity list at %s: answered from the last copy %v", level, fromCopy)
		}
		tg.clock.Advance(2 * time.Second) // past the catalogue cache's TTL
		before = tg.productCalls.Load()
		page := tg.do(t, get("/api/v1/products/"+sku))
		if page.status != http.StatusOK {
			t.Errorf("a product page read before, at %s: %d, want 200", level, page.status)
		}
		if fromCache := tg.productCalls.Load() == before; fromCache != (level >= gateway.LevelSurvive) {
			t.Errorf("a product page at %s: answered from the cache alone %v", level, fromCache)
		}
	}
}
