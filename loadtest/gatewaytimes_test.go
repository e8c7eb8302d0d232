package loadtest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// TestGatewayTimesAreReadFromItsHistogram: the flash-sale route's error
// histogram gives, for the 429s (both codes merged) and for SOLD_OUT,
// the count and the bucket bounds that hold the p50 and p99; other codes
// and other routes are not counted; a gateway that gave neither answer
// gives none.
func TestGatewayTimesAreReadFromItsHistogram(t *testing.T) {
	ctx := context.Background()
	reg := telemetry.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gateway_http_error_duration_seconds",
		Buckets: []float64{.0005, .001, .005, .1},
	}, []string{"route", "code"})
	reg.MustRegister(h)
	srv := httptest.NewServer(telemetry.AdminHandler(reg, nil, nil))
	t.Cleanup(srv.Close)
	read := func() (refused, soldOut string) {
		t.Helper()
		got, err := ReadGatewayTimes(ctx, srv.URL+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			return "none", "none"
		}
		return fmtTiming(got.Refused), fmtTiming(got.SoldOut)
	}

	h.WithLabelValues(seckillRoute, "LIMIT_EXCEEDED").Observe(1)
	h.WithLabelValues("POST /api/v1/orders", "OVERLOADED").Observe(1)
	if r, s := read(); r != "none" || s != "none" {
		t.Fatalf("no 429 and no sold-out yet: %s, %s; want none", r, s)
	}
	for range 60 {
		h.WithLabelValues(seckillRoute, "OVERLOADED").Observe(0.0003) // ≤ 0.5 ms
	}
	for range 38 {
		h.WithLabelValues(seckillRoute, "RATE_LIMITED").Observe(0.0008) // ≤ 1 ms
	}
	h.WithLabelValues(seckillRoute, "RATE_LIMITED").Observe(0.004) // ≤ 5 ms: the 99th of 100
	h.WithLabelValues(seckillRoute, "OVERLOADED").Observe(0.2)     // past the largest bound
	if r, s := read(); r != "100 ≤0.5 ≤5" || s != "nil" {
		t.Fatalf("refused %s, sold out %s; want 100 ≤0.5 ≤5 and nil", r, s)
	}
	h.WithLabelValues(seckillRoute, "SOLD_OUT").Observe(0.05)
	h.WithLabelValues(seckillRoute, "SOLD_OUT").Observe(0.3)
	if _, s := read(); s != "2 ≤100 past" {
		t.Fatalf("sold out %s, want 2 ≤100 past", s)
	}
	if _, err := ReadGatewayTimes(ctx, srv.URL+"/nowhere"); err == nil {
		t.Fatal("a /metrics that answers 404: no error")
	}
}

// fmtTiming writes a figure as "count ≤p50 ≤p99" ("past" for a bound
// past the largest bucket), or "nil".
func fmtTiming(t *result.Timing) string {
	if t == nil {
		return "nil"
	}
	bound := func(ms float64) string {
		if ms < 0 {
			return "past"
		}
		return fmt.Sprintf("≤%g", ms)
	}
	return fmt.Sprintf("%d %s %s", t.Count, bound(t.P50Ms), bound(t.P99Ms))
}

// TestGatewayTimesRefuseUnlikeBuckets: two series merged into one figure
// must share their buckets, or the merge would add up unlike counts.
func TestGatewayTimesRefuseUnlikeBuckets(t *testing.T) {
	series := func(code string, bounds ...float64) *dto.Metric {
		h := &dto.Histogram{SampleCount: proto.Uint64(1)}
		for _, b := range bounds {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(1)})
		}
		return &dto.Metric{Label: []*dto.LabelPair{
			{Name: proto.String("route"), Value: proto.String(seckillRoute)},
			{Name: proto.String("code"), Value: proto.String(code)},
		}, Histogram: h}
	}
	if got, err := timing([]*dto.Metric{series("OVERLOADED", .001, .01), series("RATE_LIMITED", .001, .01)}, "OVERLOADED", "RATE_LIMITED"); err != nil || got.Count != 2 {
		t.Fatalf("like buckets: %+v, %v; want 2 answers", got, err)
	}
	if _, err := timing([]*dto.Metric{series("OVERLOADED", .001, .01), series("RATE_LIMITED", .001, .1)}, "OVERLOADED", "RATE_LIMITED"); err == nil {
		t.Fatal("unlike buckets merged without an error")
	}
}
