package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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
	keyed := map[string]string{"Idempotency-Key": "route-1"}

	tests := []struct {
		name       string
		path       string
		token      string
		header     map[string]string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"no token", path, "", keyed, good, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no idempotency key", path, alice, nil, good, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an empty idempotency key", path, alice, map[string]string{"Idempotency-Key": ""}, good, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an idempotency key too long", path, alice, map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, good,
			http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an idempotency key that is not ASCII", path, alice, map[string]string{"Idempotency-Key": "r\xff1"}, good,
			http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"someone else's order", path, bob, keyed, good, http.StatusForbidden, "FORBIDDEN"},
		{"an unpaid order", path, alice, keyed, good, http.StatusConflict, "CONFLICT"},
		{"a malformed order id", "/api/v1/orders/abc/refunds", alice, keyed, good, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an unknown order", "/api/v1/orders/123/refunds", alice, keyed, good, http.StatusNotFound, "NOT_FOUND"},
		{"no body", path, alice, keyed, "", http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"malformed JSON", path, alice, keyed, `{"lines":[`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"unknown field", path, alice, keyed, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":1}],"all":true}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"no lines", path, alice, keyed, `{"lines":[]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id missing", path, alice, keyed, `{"lines":[{"quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id a number", path, alice, keyed, `{"lines":[{"line_id":5,"quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"line id not digits", path, alice, keyed, `{"lines":[{"line_id":"x1","quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity missing", path, alice, keyed, fmt.Sprintf(`{"lines":[{"line_id":%q}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity zero", path, alice, keyed, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":0}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity negative", path, alice, keyed, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":-1}]}`, line), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a line twice", path, alice, keyed, fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":1},{"line_id":%q,"quantity":1}]}`, line, line),
			http.StatusBadRequest, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, request{method: http.MethodPost, path: tt.path, token: tt.token, header: tt.header, body: tt.body})
			if got.status != tt.wantStatus || got.code(t) != tt.wantCode {
				t.Errorf("%d %s, want %d %s", got.status, got.body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	// A paid order without a recorded payment has nothing to refund
	// through: CONFLICT, and the order stays as it is.
	mustMarkPaidByHand(t, mine.OrderID)
	if got := tg.do(t, request{method: http.MethodPost, path: path, token: alice, header: keyed, body: good}); got.status != http.StatusConflict {
		t.Errorf("refund of a paid order without a payment: %d %s, want 409", got.status, got.body)
	}
	mustOrderStatus(t, tg, mine.OrderID, alice, "PAID")
}

// TestRefundIdempotencyKey is a client retrying refunds: the same key and
// lines answer the first refund and refund nothing more, however many
// arrive at once; the same key with other lines is refused; a key names
// a refund of one order only.
func TestRefundIdempotencyKey(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	const user = 403
	carol := tg.token(t, user, "user")
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	act := tg.MustActivity(t, admin, tg.MustProduct(t, admin, 19900, 100), 10, 8, now.Add(-time.Minute), now.Add(time.Hour))
	// Two paid orders of 5 units and 3 units.
	orders := make([]api.Order, 2)
	for i, qty := range []int{5, 3} {
		var placed api.SeckillAccepted
		tg.do(t, seckill(carol, fmt.Sprintf("buy-%d", i), fmt.Sprintf(`{"activity_id":%q,"quantity":%d}`, act, qty))).decode(t, &placed)
		mustOrderStatus(t, tg, placed.OrderID, carol, "PENDING_PAYMENT")
		mustMarkPaidThrough(t, placed.OrderID)
		tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/" + placed.OrderID, token: carol}).decode(t, &orders[i])
	}
	refund := func(o api.Order, key string, qty int) request {
		return request{method: http.MethodPost, path: "/api/v1/orders/" + o.OrderID + "/refunds", token: carol,
			header: map[string]string{"Idempotency-Key": key},
			body:   fmt.Sprintf(`{"lines":[{"line_id":%q,"quantity":%d}]}`, o.Lines[0].LineID, qty)}
	}
	refunded := func(o api.Order) int64 {
		t.Helper()
		var now api.Order
		tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/" + o.OrderID, token: carol}).decode(t, &now)
		return now.Lines[0].RefundedQuantity
	}
	o := orders[0]

	var first api.Refund
	tg.do(t, refund(o, "refund-a", 1)).decode(t, &first)
	if len(first.Lines) != 1 || first.Lines[0].Quantity != 1 || first.Order.Lines[0].RefundedQuantity != 1 {
		t.Fatalf("first refund = %+v, want one unit refunded", first)
	}
	// The client timed out and sends the same request again.
	var again api.Refund
	tg.do(t, refund(o, "refund-a", 1)).decode(t, &again)
	if again.RefundID != first.RefundID || again.Amount != first.Amount || again.Status != first.Status ||
		fmt.Sprint(again.Lines) != fmt.Sprint(first.Lines) {
		t.Errorf("retry = %+v, want the first refund %+v", again, first)
	}
	if got := refunded(o); got != 1 {
		t.Fatalf("after a retried refund of 1 unit, %d units are refunded, want 1", got)
	}

	// The key names that refund: other lines under it are refused and
	// change nothing.
	got := tg.do(t, refund(o, "refund-a", 2))
	if got.status != http.StatusBadRequest || got.code(t) != "INVALID_ARGUMENT" {
		t.Errorf("the key again with other lines: %d %s, want 400 INVALID_ARGUMENT", got.status, got.body)
	}
	if got := refunded(o); got != 1 {
		t.Errorf("after a refused reuse of the key, %d units are refunded, want 1", got)
	}

	// Many copies of a new request at once make one refund.
	const copies = 8
	ids := make([]string, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			got := tg.do(t, refund(o, "refund-b", 2))
			var r api.Refund
			if got.status != http.StatusOK {
				t.Errorf("copy %d: %d %s, want 200", i, got.status, got.body)
				return
			}
			got.decode(t, &r)
			ids[i] = r.RefundID
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("copy %d answered refund %s, copy 0 refund %s: want one refund", i, id, ids[0])
		}
	}
	if got := refunded(o); got != 3 {
		t.Errorf("after 1 unit and %d copies of a 2-unit refund, %d units are refunded, want 3", copies, got)
	}

	// A key belongs to one order: the same key on another order is a
	// refund of its own.
	var other api.Refund
	tg.do(t, refund(orders[1], "refund-a", 1)).decode(t, &other)
	if other.RefundID == first.RefundID || other.OrderID != orders[1].OrderID || refunded(orders[1]) != 1 {
		t.Errorf("the key on another order answered %+v, want a new refund of order %s", other, orders[1].OrderID)
	}
	if got := refunded(o); got != 3 {
		t.Errorf("a refund of another order moved this one to %d units refunded, want 3", got)
	}
}

// mustMarkPaidThrough moves the order's row to PAID through a payment
// that no payment service knows (payment is not started here): a refund
// is then recorded and its units are refunded, and its money stays
// PENDING.
func mustMarkPaidThrough(tb testing.TB, orderID string) {
	tb.Helper()
	mustUpdateOrder(tb, orderID, `UPDATE orders SET status = 'PAID', paid_at = now(),
		payment_id = order_id, payment_channel = 'alipay' WHERE order_id = $1`)
}
