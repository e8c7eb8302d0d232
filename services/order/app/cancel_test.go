package app_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flashsale/flashsale/platform/errcode"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
	"github.com/flashsale/flashsale/services/order"
)

func cancelOrder(p *platform, orderID, user int64) (*orderv1.Order, error) {
	return p.order.CancelOrder(context.Background(), &orderv1.CancelOrderRequest{OrderId: orderID, UserId: user})
}

func TestCancelOrder(t *testing.T) {
	p := MustPlatform(t, nil)
	ctx := context.Background()
	a := p.MustActivity(t, 10, 1, -time.Minute)
	act := a.GetActivityId()
	rdb := MustRedis(t)
	owner, stranger, payer := newUsers(1), newUsers(1), newUsers(1)
	id := MustPlace(t, p, owner, act, "cancel-me")
	paid := MustPlace(t, p, payer, act, "pay-me")
	MustDrain(t)
	// Payment lives in its own service; the row is moved the way its
	// MarkPaid does.
	if _, err := p.db.Exec(ctx, `UPDATE orders SET status = 'PAID', paid_at = now() WHERE order_id = $1`, paid); err != nil {
		t.Fatal(err)
	}

	_, err := cancelOrder(p, id, stranger)
	if got := errcode.Of(err); got != errcode.Forbidden {
		t.Fatalf("cancel by another user: got %v, want FORBIDDEN", err)
	}
	if got := MustStatus(t, p, id, owner); got != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT {
		t.Fatalf("after the refused cancel: got %s, want PENDING_PAYMENT", got)
	}

	cancelled, err := cancelOrder(p, id, owner)
	if err != nil || cancelled.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || cancelled.GetOrderId() != id {
		t.Fatalf("cancel by the owner: got %v, %v; want order %d CANCELLED", cancelled, err, id)
	}
	if got := MustStock(t, p, act); got != 9 {
		t.Fatalf("stock after the cancel: got %d, want 9 (one back, one paid)", got)
	}
	if err := rdb.ZScore(ctx, invredis.ExpiryKey(act), strconv.FormatInt(id, 10)).Err(); err == nil {
		t.Fatal("the cancelled order is still in the expiry queue")
	}
	again, err := cancelOrder(p, id, owner)
	if err != nil || !proto.Equal(again, cancelled) {
		t.Fatalf("cancel again: got %v, %v; want the cancelled order unchanged", again, err)
	}
	if got := MustStock(t, p, act); got != 9 {
		t.Fatalf("stock after the second cancel: got %d, want 9 (released once)", got)
	}

	_, err = cancelOrder(p, paid, payer)
	if got := errcode.Of(err); got != errcode.Conflict {
		t.Fatalf("cancel a paid order: got %v, want CONFLICT", err)
	}
	if _, err := cancelOrder(p, id+1_000_000, owner); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("cancel an unknown order: got %v, want NOT_FOUND", err)
	}

	// An order the consumer has not stored yet cannot be cancelled; the
	// lock keeps the consumer from storing it while we try.
	tx, err := p.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below; a no-op then
	if _, err := tx.Exec(ctx, "LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	late := newUsers(1)
	inFlight := MustPlace(t, p, late, act, "in-flight")
	_, err = cancelOrder(p, inFlight, late)
	if got := errcode.Of(err); got != errcode.Conflict || !strings.Contains(err.Error(), "still being placed") {
		t.Fatalf("cancel a PROCESSING order: got %v, want CONFLICT saying it is still being placed", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	MustDrain(t)
	if got := MustStatus(t, p, inFlight, late); got != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT {
		t.Fatalf("the order once stored: got %s, want PENDING_PAYMENT", got)
	}
}

func TestCancelRacingExpiryEndsInExactlyOneState(t *testing.T) {
	const n = 300
	p, s, dueAt := MustSeededPlatform(t, n)
	rdb := MustRedis(t)
	smallBatches := func(c *order.ExpirerConfig) { c.Batch = 10 }
	stop := runWorkers(p.newWorker(s.activity, smallBatches), p.newWorker(s.activity, smallBatches))
	p.clock.Set(dueAt)
	answers := make([]error, n)
	var cancels sync.WaitGroup
	for i, o := range s.orders {
		cancels.Go(func() {
			_, answers[i] = cancelOrder(p, o.OrderID, o.UserID)
		})
	}
	cancels.Wait()
	MustEventually(t, time.Minute, func() (bool, string) {
		due, claimed := queued(t, rdb, s.activity)
		return due+claimed == 0, "entries left in the queue"
	})
	stop()

	won := map[orderv1.OrderStatus]int{}
	for i, o := range s.orders {
		got := MustStatus(t, p, o.OrderID, o.UserID)
		want := orderv1.OrderStatus_ORDER_STATUS_CANCELLED
		if answers[i] != nil {
			if code := errcode.Of(answers[i]); code != errcode.Conflict {
				t.Fatalf("cancel of order %d: got %v, want success or CONFLICT", o.OrderID, answers[i])
			}
			want = orderv1.OrderStatus_ORDER_STATUS_EXPIRED
		}
		if got != want {
			t.Fatalf("order %d: cancel answered %v, final state %s; want %s", o.OrderID, answers[i], got, want)
		}
		won[got]++
	}
	if got := MustStock(t, p, s.activity); got != n {
		t.Fatalf("stock: got %d, want %d (each unit released exactly once)", got, n)
	}
	t.Logf("final states: %v", won)
}
