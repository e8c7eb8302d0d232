package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/proto/limits"
)

func TestSeckillRequestValidation(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	token := tg.token(t, 1001, "user")
	big := `{"activity_id":"1","quantity":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"missing idempotency key", request{method: http.MethodPost, path: "/api/v1/seckill/orders", token: token, body: `{"activity_id":"1","quantity":1}`}, http.StatusBadRequest},
		{"idempotency key too long", seckill(token, strings.Repeat("k", 129), `{"activity_id":"1","quantity":1}`), http.StatusBadRequest},
		{"idempotency key not UTF-8", seckill(token, "k\xff1", `{"activity_id":"1","quantity":1}`), http.StatusBadRequest},
		{"idempotency key beyond ASCII", seckill(token, "clé", `{"activity_id":"1","quantity":1}`), http.StatusBadRequest},
		{"idempotency key with a tab", seckill(token, "k\t1", `{"activity_id":"1","quantity":1}`), http.StatusBadRequest},
		{"empty body", seckill(token, "k1", ""), http.StatusBadRequest},
		{"malformed JSON", seckill(token, "k1", `{"activity_id":"1",`), http.StatusBadRequest},
		{"not JSON", seckill(token, "k1", `activity_id=1&quantity=1`), http.StatusBadRequest},
		{"array", seckill(token, "k1", `[{"activity_id":"1","quantity":1}]`), http.StatusBadRequest},
		{"unknown field", seckill(token, "k1", `{"activity_id":"1","quantity":1,"price":1}`), http.StatusBadRequest},
		{"trailing data", seckill(token, "k1", `{"activity_id":"1","quantity":1} x`), http.StatusBadRequest},
		{"two values", seckill(token, "k1", `{"activity_id":"1","quantity":1}{"activity_id":"1","quantity":1}`), http.StatusBadRequest},
		{"null body", seckill(token, "k1", `null`), http.StatusBadRequest},
		{"missing activity id", seckill(token, "k1", `{"quantity":1}`), http.StatusBadRequest},
		{"missing quantity", seckill(token, "k1", `{"activity_id":"1"}`), http.StatusBadRequest},
		{"null quantity", seckill(token, "k1", `{"activity_id":"1","quantity":null}`), http.StatusBadRequest},
		{"zero quantity", seckill(token, "k1", `{"activity_id":"1","quantity":0}`), http.StatusBadRequest},
		{"negative quantity", seckill(token, "k1", `{"activity_id":"1","quantity":-1}`), http.StatusBadRequest},
		{"quantity over 1000", seckill(token, "k1", `{"activity_id":"1","quantity":1001}`), http.StatusBadRequest},
		{"huge quantity", seckill(token, "k1", `{"activity_id":"1","quantity":99999999999999999999999}`), http.StatusBadRequest},
		{"fractional quantity", seckill(token, "k1", `{"activity_id":"1","quantity":1.5}`), http.StatusBadRequest},
		{"quantity as string", seckill(token, "k1", `{"activity_id":"1","quantity":"1"}`), http.StatusBadRequest},
		{"activity id as number", seckill(token, "k1", `{"activity_id":1,"quantity":1}`), http.StatusBadRequest},
		{"activity id with letters", seckill(token, "k1", `{"activity_id":"12a","quantity":1}`), http.StatusBadRequest},
		{"negative activity id", seckill(token, "k1", `{"activity_id":"-5","quantity":1}`), http.StatusBadRequest},
		{"signed activity id", seckill(token, "k1", `{"activity_id":"+5","quantity":1}`), http.StatusBadRequest},
		{"zero activity id", seckill(token, "k1", `{"activity_id":"0","quantity":1}`), http.StatusBadRequest},
		{"empty activity id", seckill(token, "k1", `{"activity_id":"","quantity":1}`), http.StatusBadRequest},
		{"activity id over int64", seckill(token, "k1", `{"activity_id":"9223372036854775808","quantity":1}`), http.StatusBadRequest},
		{"activity id too long", seckill(token, "k1", `{"activity_id":"00000000000000000001","quantity":1}`), http.StatusBadRequest},
		{"oversized body", seckill(token, "k1", big), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, tt.req)
			if got.status != tt.want {
				t.Fatalf("status = %d (%s), want %d", got.status, got.body, tt.want)
			}
			if code := got.code(t); code != "INVALID_ARGUMENT" {
				t.Fatalf("code = %s, want INVALID_ARGUMENT", code)
			}
		})
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

func TestPathAndBodyValidation(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	user, admin := tg.token(t, 5, "user"), tg.token(t, 6, "admin")
	const (
		activity = `"sku_id":"1","price":100,"stock":10,"per_user_limit":1`
		window   = `"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z"`
	)
	tests := []struct {
		name string
		req  request
	}{
		{"product id with letters", request{method: http.MethodGet, path: "/api/v1/products/abc"}},
		{"product id negative", request{method: http.MethodGet, path: "/api/v1/products/-1"}},
		{"activity id too long", request{method: http.MethodGet, path: "/api/v1/activities/12345678901234567890"}},
		{"order id with letters", request{method: http.MethodGet, path: "/api/v1/orders/1x", token: user}},
		{"product without title", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"price":100,"stock":1}`}},
		{"product with zero price", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"t","price":0,"stock":1}`}},
		{"product with negative stock", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"t","price":1,"stock":-1}`}},
		{"product with float price", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"t","price":1.99,"stock":1}`}},
		{"product title with NUL", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"Phone\u0000","price":1,"stock":1}`}},
		{"product title of 201 characters", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"` + strings.Repeat("界", limits.MaxTitleRunes+1) + `","price":1,"stock":1}`}},
		{"product dearer than the catalog takes", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: fmt.Sprintf(`{"title":"t","price":%d,"stock":1}`, int64(limits.MaxPrice)+1)}},
		{"product with more stock than the catalog takes", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: fmt.Sprintf(`{"title":"t","price":1,"stock":%d}`, limits.MaxStock+1)}},
		{"product with unknown field", request{method: http.MethodPost, path: "/admin/v1/products", token: admin, body: `{"title":"t","price":1,"stock":1,"color":"red"}`}},
		{"activity without window", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{` + activity + `}`}},
		{"activity with bad time", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{` + activity + `,"starts_at":"tomorrow","ends_at":"2030-01-02T00:00:00Z"}`}},
		{"activity ending after the year 9999 in UTC", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{` + activity + `,"starts_at":"2030-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59-01:00"}`}},
		{"activity starting before the year 2000", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{` + activity + `,"starts_at":"1999-12-31T23:59:59Z","ends_at":"2030-01-02T00:00:00Z"}`}},
		{"activity ending before start", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{` + activity + `,"starts_at":"2030-01-02T00:00:00Z","ends_at":"2030-01-01T00:00:00Z"}`}},
		{"activity with numeric sku", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{"sku_id":1,"price":100,"stock":10,"per_user_limit":1,` + window + `}`}},
		{"activity with zero limit", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{"sku_id":"1","price":100,"stock":10,"per_user_limit":0,` + window + `}`}},
		{"activity with zero stock", request{method: http.MethodPost, path: "/admin/v1/activities", token: admin, body: `{"sku_id":"1","price":100,"stock":0,"per_user_limit":1,` + window + `}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, tt.req)
			if got.status != http.StatusBadRequest || got.code(t) != "INVALID_ARGUMENT" {
				t.Fatalf("got %d %s, want 400 INVALID_ARGUMENT", got.status, got.body)
			}
		})
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

// A title is bounded in characters, as the catalog bounds it: a Chinese
// title of the full length (three bytes a character) is taken, not
// refused at the edge for its bytes.
func TestFullLengthChineseTitleIsTaken(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	admin := tg.token(t, 6, "admin")
	title := strings.Repeat("界", limits.MaxTitleRunes)
	sku := tg.mustCreate(t, admin, "/admin/v1/products", "sku_id", `{"title":"`+title+`","price":100,"stock":1}`)
	got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/products/" + sku})
	if got.status != http.StatusOK || !strings.Contains(string(got.body), title) {
		t.Fatalf("product read back: %d %s", got.status, got.body)
	}
}
