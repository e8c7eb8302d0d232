package app_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
)

// The admin port reports each activity's remaining stock for Grafana.
func TestMetricsReportRemainingStock(t *testing.T) {
	client, admin := MustRun(t)
	ctx := context.Background()
	const act = 7701
	if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 10, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{
		ActivityId: act, UserId: 1, Quantity: 3, OrderId: 1, IdempotencyKey: "k",
		ExpiresAt: timestamppb.New(time.Now().Add(time.Minute)),
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`inventory_stock_remaining{activity_id="7701"} 7`,
		`inventory_stock_total{activity_id="7701"} 10`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A fenced sale answers UNAVAILABLE, is listed by FencedStock, and its
// rebuild over gRPC is counted by kind on the admin port.
func TestRebuildOfAFencedSaleIsCounted(t *testing.T) {
	client, admin := MustRun(t)
	ctx := context.Background()
	const act = 7702
	if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 10, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	if err := rdb.Del(ctx, "{act:7702}:live").Err(); err != nil { // what a restart does
		t.Fatal(err)
	}
	deadline := timestamppb.New(time.Now().Add(time.Minute))
	_, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{
		ActivityId: act, UserId: 1, Quantity: 1, OrderId: 1, IdempotencyKey: "k", ExpiresAt: deadline,
	})
	if errcode.Of(err) != errcode.Unavailable {
		t.Fatalf("reserve in a fenced sale: %v, want UNAVAILABLE", err)
	}
	fenced, err := client.FencedStock(ctx, &inventoryv1.FencedStockRequest{})
	if err != nil || !slices.Contains(fenced.GetActivityIds(), act) {
		t.Fatalf("fenced: %v, %v", fenced, err)
	}
	got, err := client.RebuildStock(ctx, &inventoryv1.RebuildStockRequest{ActivityId: act, Total: 10, PerUserLimit: 5,
		Orders: []*inventoryv1.HeldOrder{{OrderId: 2, UserId: 3, Quantity: 2, IdempotencyKey: "k2", ExpiresAt: deadline,
			Status: inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED}}})
	if err != nil || !got.GetRebuilt() || got.GetStock() != 8 || got.GetStockBefore() != 10 {
		t.Fatalf("rebuild: %v, %v; want rebuilt, stock 10 -> 8", got, err)
	}
	if _, err := client.RebuildStock(ctx, &inventoryv1.RebuildStockRequest{ActivityId: act, Total: 10, PerUserLimit: 5,
		Orders: []*inventoryv1.HeldOrder{{OrderId: 2, UserId: 3, Quantity: 2, IdempotencyKey: "k2", ExpiresAt: deadline}}}); errcode.Of(err) != errcode.InvalidArgument {
		t.Fatalf("rebuild with an order of no status: %v, want INVALID_ARGUMENT", err)
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`inventory_stock_repairs_total{kind="stock"} 1`,
		`inventory_stock_repairs_total{kind="reservation"} 1`,
		`inventory_stock_repairs_total{kind="user_count"} 1`,
		`inventory_stock_repairs_total{kind="expiry_entry"} 1`,
		`inventory_stock_repairs_total{kind="overheld"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
