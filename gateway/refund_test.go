package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
)

func TestRefundRoute(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	alice, bob := tg.token(t, 401, "user"), tg.token(t, 402, "user")
	var mine api.SeckillAccepted
	tg.do(t, seckill(alice, "refund-1", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, tg.MustOpenActivity(t)))).decode(t, &mine)
	mustOrderStatus(t, tg, mine.OrderID, alice, "PENDING_PAYMENT")
	var o api.Order
	tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/" + mine.OrderID, token: alice}).decode(t, &o)
	line := o.Lines[0].LineID
	path := "/api/v1/orders/" + mine.OrderID + "/refunds"
	good := fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":1}]}`, line)

	tests := []struct {
		name       string
		path       string
		token      string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"no token", path, "", good, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"someone else's order", path, bob, good, http.StatusForbidden, "FORBIDDEN"},
		{"an unpaid order", path, alice, good, http.StatusConflict, "CONFLICT"},
		{"a malformed order id", "/api/v1/orders/abc/refunds", alice, good, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an unknown order", "/api/v1/orders/123/refunds", alice, good, http.StatusNotFound, "NOT_FOUND"},
		{"no body", path, alice, "", http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"malformed JSON", path, alice, `{"lines":[`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"unknown field", path, alice, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":1}],"all":true}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"no lines", path, alice, `{"lines":[]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id missing", path, alice, `{"lines":[{"quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id a number", path, alice, `{"lines":[{"line_id":5,"quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id not digits", path, alice, `{"lines":[{"line_id":"x1","quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity missing", path, alice, fmt.Sprintf(`{"lines":[{"line_id":%q}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity zero", path, alice, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":0}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity negative", path, alice, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":-1}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a line twice", path, alice, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":1},{"line_id":%q,"quantity":1}]}`, line, line),
			http.StatusBadRequest, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, request{method: http.MethodPost, path: tt.path, token: tt.token, body: tt.body})
			if got.status != tt.wantStatus || got.code(t) != tt.wantCode {
				t.Errorf("%d %s, want %d %s", got.status, got.body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	// A paid order without a recorded payment has nothing to refund
	// through: CONFLICT, and the order stays as it is.
	mustMarkPaidByHand(t, mine.OrderID)
	if got := tg.do(t, request{method: http.MethodPost, path: path, token: alice, body: good}); got.status != http.StatusConflict {
		t.Errorf("refund of a paid order without a payment: %d %s, want 409", got.status, got.body)
	}
	mustOrderStatus(t, tg, mine.OrderID, alice, "PAID")
}
