package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

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
