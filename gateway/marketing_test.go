package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

// checkInvariants checks what docs/api.md lets any client check of an order.
func checkInvariants(tb testing.TB, o api.Order) {
	tb.Helper()
	var total, discount, payable, promoted int64
	for _, l := range o.Lines {
		if l.Amount != l.UnitPrice*l.Quantity || l.Payable != l.Amount-l.Discount || l.Payable < 0 {
			tb.Fatalf("line %+v breaks amount = unit_price × quantity or payable = amount − discount ≥ 0", l)
		}
		total, discount, payable = total+l.Amount, discount+l.Discount, payable+l.Payable
	}
	for _, p := range o.Promotions {
		promoted += p.Amount
	}
	if o.Total != total || o.Discount != discount || o.Payable != payable || promoted != discount {
		tb.Fatalf("order %+v: totals are not the sums over its lines and promotions", o)
	}
}

func TestRegularCheckoutThroughHTTP(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr, marketingAddr: svc.MarketingAddr})
	admin, carol := tg.token(t, 1, "admin"), tg.token(t, 201, "user")
	now := tg.clock.Now()
	from, until := now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339)
	skus := []string{tg.MustProduct(t, admin, 30_00, 10), tg.MustProduct(t, admin, 40_00, 10), tg.MustProduct(t, admin, 50_00, 10)}

	tg.mustCreate(t, admin, "/admin/v1/promotions", "promotion_id", fmt.Sprintf(
		`{"kind":"FULL_REDUCTION","sku_ids":[%q,%q,%q],"tiers":[{"threshold":9900,"off":900}],"starts_at":%q,"ends_at":%q}`,
		skus[0], skus[1], skus[2], from, until))
	tmpl := tg.mustCreate(t, admin, "/admin/v1/coupon-templates", "template_id", fmt.Sprintf(
		`{"threshold":10000,"amount":1000,"total":5,"per_user_limit":1,"valid_from":%q,"valid_until":%q}`, from, until))

	claim := func(key string) request {
		return request{method: http.MethodPost, path: "/api/v1/coupons/" + tmpl + "/claim", token: carol,
			header: map[string]string{"Idempotency-Key": key}}
	}
	var coupon api.Coupon
	tg.do(t, claim("claim-1")).decode(t, &coupon)
	if coupon.Status != "AVAILABLE" || coupon.Amount != 10_00 || !digits.MatchString(coupon.CouponID) {
		t.Fatalf("claimed coupon = %+v, want an AVAILABLE 10.00 coupon", coupon)
	}
	// A retry answers the coupon (201); a second claim meets the limit.
	var retried api.Coupon
	if got := tg.do(t, claim("claim-1")); got.status != http.StatusCreated {
		t.Fatalf("retried claim: %d %s, want 201", got.status, got.body)
	} else if got.decode(t, &retried); retried.CouponID != coupon.CouponID || retried.Status != coupon.Status {
		t.Fatalf("retried claim = %+v, want the first coupon %+v", retried, coupon)
	}
	if got := tg.do(t, claim("claim-2")); got.status != http.StatusConflict || got.code(t) != "LIMIT_EXCEEDED" {
		t.Fatalf("second claim: %d %s, want 409 LIMIT_EXCEEDED", got.status, got.body)
	}

	cart := fmt.Sprintf(`{"lines":[{"sku_id":%q,"quantity":1},{"sku_id":%q,"quantity":1},{"sku_id":%q,"quantity":1}],"coupon_id":%q}`,
		skus[0], skus[1], skus[2], coupon.CouponID)
	var quote api.Order
	tg.do(t, request{method: http.MethodPost, path: "/api/v1/orders/quote", token: carol, body: cart}).decode(t, &quote)
	checkInvariants(t, quote)
	if quote.OrderID != "" || quote.Status != "" || quote.Payable != 101_00 || len(quote.Promotions) != 2 {
		t.Fatalf("quote = %+v, want no id or status, 101.00 payable, two promotions", quote)
	}

	create := request{method: http.MethodPost, path: "/api/v1/orders", token: carol, body: cart, header: map[string]string{"Idempotency-Key": "carol-1"}}
	var o api.Order
	got := tg.do(t, create)
	if got.status != http.StatusCreated {
		t.Fatalf("create: %d %s", got.status, got.body)
	}
	got.decode(t, &o)
	checkInvariants(t, o)
	if o.Kind != "REGULAR" || o.Status != "PENDING_PAYMENT" || o.Payable != quote.Payable || o.CouponID != coupon.CouponID {
		t.Fatalf("order = %+v, want a PENDING_PAYMENT REGULAR order priced as the quote, holding the coupon", o)
	}
	for i, l := range o.Lines {
		if l.Payable != quote.Lines[i].Payable || !digits.MatchString(l.LineID) {
			t.Fatalf("line %d = %+v, want the quote's %+v with a line id", i, l, quote.Lines[i])
		}
	}
	var again api.Order
	tg.do(t, create).decode(t, &again)
	if again.OrderID != o.OrderID {
		t.Fatalf("retry with the key answered order %s, want %s", again.OrderID, o.OrderID)
	}
	reused := create
	reused.body = fmt.Sprintf(`{"lines":[{"sku_id":%q,"quantity":2}],"coupon_id":%q}`, skus[0], coupon.CouponID)
	if got := tg.do(t, reused); got.status != http.StatusBadRequest || got.code(t) != "INVALID_ARGUMENT" {
		t.Fatalf("the key again with another cart: %d %s, want 400 INVALID_ARGUMENT", got.status, got.body)
	}
	var stored api.Order
	tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/" + o.OrderID, token: carol}).decode(t, &stored)
	if stored.Payable != o.Payable || len(stored.Promotions) != 2 {
		t.Fatalf("stored order = %+v, want it as created", stored)
	}
	var coupons api.Coupons
	tg.do(t, request{method: http.MethodGet, path: "/api/v1/coupons", token: carol}).decode(t, &coupons)
	if len(coupons.Coupons) != 1 || coupons.Coupons[0].Status != "USED" || coupons.Coupons[0].OrderID != o.OrderID {
		t.Fatalf("coupons after the order = %+v, want the one coupon USED by %s", coupons, o.OrderID)
	}
}

func TestMarketingRoutesRefuse(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	admin, user := tg.token(t, 1, "admin"), tg.token(t, 2, "user")
	window := `"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z"`
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantCode   string
	}{
		{"promotion by a user", request{method: http.MethodPost, path: "/admin/v1/promotions", token: user,
			body: `{"kind":"FULL_REDUCTION","tiers":[{"threshold":1,"off":1}],` + window + `}`}, http.StatusForbidden, "FORBIDDEN"},
		{"promotion of unknown kind", request{method: http.MethodPost, path: "/admin/v1/promotions", token: admin,
			body: `{"kind":"BOGO",` + window + `}`}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"template without amount", request{method: http.MethodPost, path: "/admin/v1/coupon-templates", token: admin,
			body: `{"threshold":0,"total":1,"per_user_limit":1,"valid_from":"2030-01-01T00:00:00Z","valid_until":"2030-01-02T00:00:00Z"}`},
			http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"claim of a bad id", request{method: http.MethodPost, path: "/api/v1/coupons/x1/claim", token: user,
			header: map[string]string{"Idempotency-Key": "c1"}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"claim without a key", request{method: http.MethodPost, path: "/api/v1/coupons/1/claim", token: user}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"claim with a key too long", request{method: http.MethodPost, path: "/api/v1/coupons/1/claim", token: user,
			header: map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"coupons without a token", request{method: http.MethodGet, path: "/api/v1/coupons"}, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"order without a key", request{method: http.MethodPost, path: "/api/v1/orders", token: user,
			body: `{"lines":[{"sku_id":"1","quantity":1}]}`}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"order with a key that is not UTF-8", request{method: http.MethodPost, path: "/api/v1/orders", token: user,
			header: map[string]string{"Idempotency-Key": "c\xff1"}, body: `{"lines":[{"sku_id":"1","quantity":1}]}`},
			http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quote without lines", request{method: http.MethodPost, path: "/api/v1/orders/quote", token: user,
			body: `{"lines":[]}`}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quote with a zero quantity", request{method: http.MethodPost, path: "/api/v1/orders/quote", token: user,
			body: `{"lines":[{"sku_id":"1","quantity":0}]}`}, http.StatusBadRequest, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, tt.req)
			if got.status != tt.wantStatus || got.code(t) != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", got.status, got.body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls for requests the gateway must refuse itself", n)
	}
}
