package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/inventory/app"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// The admin port reports each activity's remaining stock for Grafana.
func TestMetricsReportRemainingStock(t *testing.T) {
	client, admin := MustRun(t)
	ctx := context.Background()
	act := newActivity()
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
		fmt.Sprintf(`inventory_stock_remaining{activity_id="%d"} 7`, act),
		fmt.Sprintf(`inventory_stock_total{activity_id="%d"} 10`, act),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The expiry backlog counts the entries past their deadline that no
// worker holds, and how long the oldest has waited: a claim takes its
// entry out, a lapsed claim puts it back. The clock stands in the year
// 2000, so the due entries other tests leave in the shared Redis (all
// due after it) are not counted; this test's own are removed when it
// ends, for the next run of it (-count).
func TestMetricsReportTheExpiryBacklog(t *testing.T) {
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0)
	client, admin := MustRunOn(t, app.Config{RedisAddr: stack.RedisAddr, RedisPoolSize: 8, Clock: clk})
	ctx := context.Background()
	act := newActivity()
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	t.Cleanup(func() {
		rdb.Del(ctx, invredis.ExpiryKey(act), invredis.ClaimedKey(act))
		rdb.SRem(ctx, invredis.ActivitiesKey, act)
		rdb.Close()
	})
	if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 10, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	for i, late := range []time.Duration{2 * time.Minute, time.Minute} {
		if _, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{
			ActivityId: act, UserId: int64(i + 1), Quantity: 1, OrderId: int64(i + 1), IdempotencyKey: "k",
			ExpiresAt: timestamppb.New(t0.Add(-late)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	backlog := func() (entries, oldest string) {
		t.Helper()
		body := scrapeBody(t, admin)
		return metricLine(body, "inventory_expiry_due_entries"), metricLine(body, "inventory_expiry_oldest_due_seconds")
	}
	if n, old := backlog(); n != "2" || old != "120" {
		t.Errorf("two due entries: backlog %s, oldest %ss; want 2, 120s", n, old)
	}
	// A worker claims the oldest for 30 seconds.
	if _, err := client.ClaimDue(ctx, &inventoryv1.ClaimDueRequest{
		ActivityIds: []int64{act}, Now: timestamppb.New(t0), Limit: 1, Lease: durationpb.New(30 * time.Second),
	}); err != nil {
		t.Fatal(err)
	}
	if n, old := backlog(); n != "1" || old != "60" {
		t.Errorf("one claimed: backlog %s, oldest %ss; want 1, 60s", n, old)
	}
	// Its worker dies: the lease lapses and the entry is backlog again.
	clk.Advance(31 * time.Second)
	if n, old := backlog(); n != "2" || old != "91" {
		t.Errorf("claim lapsed: backlog %s, oldest %ss; want 2, 91s", n, old)
	}
}

// scrapeBody returns the inventory's /metrics.
func scrapeBody(tb testing.TB, admin string) string {
	tb.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// metricLine returns the value of the unlabelled series name in body, or
// "" when there is none.
func metricLine(body, name string) string {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	return ""
}

// A fenced sale answers UNAVAILABLE, is listed by FencedStock, and its
// rebuild over gRPC is counted by kind on the admin port.
func TestRebuildOfAFencedSaleIsCounted(t *testing.T) {
	client, admin := MustRun(t)
	ctx := context.Background()
	act := newActivity()
	if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 10, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	if err := rdb.Del(ctx, fmt.Sprintf("{act:%d}:live", act)).Err(); err != nil { // what a restart does
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
