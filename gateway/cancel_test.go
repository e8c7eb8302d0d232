package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
)

func TestCancelOrderThroughHTTP(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	alice, bob := tg.token(t, 301, "user"), tg.token(t, 302, "user")
	body := fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, tg.MustOpenActivity(t))
	var mine, theirs api.SeckillAccepted
	tg.do(t, seckill(alice, "cancel-1", body)).decode(t, &mine)
	tg.do(t, seckill(bob, "cancel-2", body)).decode(t, &theirs)
	for _, o := range []struct{ id, token string }{{mine.OrderID, alice}, {theirs.OrderID, bob}} {
		mustOrderStatus(t, tg, o.id, o.token, "PENDING_PAYMENT")
	}
	cancelPath := func(id string) string { return "/api/v1/orders/" + id + "/cancel" }

	if got := tg.do(t, request{method: http.MethodPost, path: cancelPath(mine.OrderID)}); got.status != http.StatusUnauthorized {
		t.Fatalf("cancel without a token: %d %s, want 401", got.status, got.body)
	}
	if got := tg.do(t, request{method: http.MethodPost, path: cancelPath(mine.OrderID), token: bob}); got.status != http.StatusForbidden || got.code(t) != "FORBIDDEN" {
		t.Fatalf("bob cancels alice's order: %d %s, want 403 FORBIDDEN", got.status, got.body)
	}
	if got := tg.do(t, request{method: http.MethodPost, path: cancelPath("abc"), token: alice}); got.status != http.StatusBadRequest {
		t.Fatalf("cancel a malformed id: %d %s, want 400", got.status, got.body)
	}
	for _, attempt := range []string{"cancel", "cancel again"} {
		var o api.Order
		tg.do(t, request{method: http.MethodPost, path: cancelPath(mine.OrderID), token: alice}).decode(t, &o)
		if o.OrderID != mine.OrderID || o.Status != "CANCELLED" || o.UserID != strconv.FormatInt(tg.user(301), 10) {
			t.Fatalf("%s: got %+v, want alice's order CANCELLED", attempt, o)
		}
	}
	mustOrderStatus(t, tg, mine.OrderID, alice, "CANCELLED")
	mustOrderStatus(t, tg, theirs.OrderID, bob, "PENDING_PAYMENT")

	// Bob pays, and a paid order cannot be cancelled.
	mustMarkPaidByHand(t, theirs.OrderID)
	if got := tg.do(t, request{method: http.MethodPost, path: cancelPath(theirs.OrderID), token: bob}); got.status != http.StatusConflict || got.code(t) != "CONFLICT" {
		t.Fatalf("cancel a paid order: %d %s, want 409 CONFLICT", got.status, got.body)
	}
}

// MustOpenActivity creates a product and a flash sale of it (3 units, one
// per buyer) open for the next hour, and returns the activity's id.
func (tg *testGateway) MustOpenActivity(tb testing.TB) string {
	tb.Helper()
	admin := tg.token(tb, 1, "admin")
	now := tg.clock.Now()
	sku := tg.MustProduct(tb, admin, 19900, 100)
	return tg.MustActivity(tb, admin, sku, 3, 1, now.Add(-time.Minute), now.Add(time.Hour))
}

// mustMarkPaidByHand moves the order's row to PAID as MarkPaid would,
// without a payment: payment is its own service, not started here.
func mustMarkPaidByHand(tb testing.TB, orderID string) {
	tb.Helper()
	mustUpdateOrder(tb, orderID, `UPDATE orders SET status = 'PAID', paid_at = now() WHERE order_id = $1`)
}

// mustUpdateOrder runs update, a statement on the orders database whose
// $1 is the order's id.
func mustUpdateOrder(tb testing.TB, orderID, update string) {
	tb.Helper()
	db, err := pgplatform.Dial(context.Background(), stack.PostgresURL("orders"), 2)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(context.Background(), update, orderID); err != nil {
		tb.Fatal(err)
	}
}

// mustOrderStatus waits until the owner's order shows status.
func mustOrderStatus(tb testing.TB, tg *testGateway, id, token, status string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var o api.Order
		tg.do(tb, request{method: http.MethodGet, path: "/api/v1/orders/" + id, token: token}).decode(tb, &o)
		if o.Status == status {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("order %s: status %s, want %s", id, o.Status, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
