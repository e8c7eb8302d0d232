package loadtest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// TestRefusalsAreReadFromTheGatewaysHistogram: the flash-sale route's
// refusal histogram gives the count and the bucket bounds that hold its
// p50 and p99 (another route's refusals are not counted); a gateway that
// refused nothing gives none.
func TestRefusalsAreReadFromTheGatewaysHistogram(t *testing.T) {
	ctx := context.Background()
	reg := telemetry.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gateway_http_refusal_duration_seconds",
		Buckets: []float64{.0005, .001, .005, .1},
	}, []string{"route"})
	reg.MustRegister(h)
	srv := httptest.NewServer(telemetry.AdminHandler(reg, nil))
	t.Cleanup(srv.Close)

	got, err := ReadRefusals(ctx, srv.URL+"/metrics")
	if err != nil || got != nil {
		t.Fatalf("no refusals yet: %+v, %v; want none", got, err)
	}
	for range 98 {
		h.WithLabelValues(seckillRoute).Observe(0.0003) // bucket ≤ 0.5 ms
	}
	h.WithLabelValues(seckillRoute).Observe(0.004) // ≤ 5 ms: the 99th of 100
	h.WithLabelValues(seckillRoute).Observe(0.2)   // past the largest bound
	h.WithLabelValues("POST /api/v1/orders").Observe(1)
	got, err = ReadRefusals(ctx, srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Count != 100 || got.P50Ms != 0.5 || got.P99Ms != 5 {
		t.Fatalf("refusals %+v, want 100, p50 ≤ 0.5 ms, p99 ≤ 5 ms", got)
	}
	h.WithLabelValues(seckillRoute).Observe(0.3)
	h.WithLabelValues(seckillRoute).Observe(0.3)
	if got, err = ReadRefusals(ctx, srv.URL+"/metrics"); err != nil || got.P99Ms != -1 {
		t.Fatalf("p99 past the largest bucket: %+v, %v; want -1", got, err)
	}
	if _, err := ReadRefusals(ctx, srv.URL+"/nowhere"); err == nil {
		t.Fatal("a /metrics that answers 404: no error")
	}
}
