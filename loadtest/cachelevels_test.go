package loadtest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// TestCacheLevelsAreReadFromEveryServicesMetrics: two services' /metrics
// (one with an L1, one with an L1 and a Bloom filter) summed by level
// make the report's line.
func TestCacheLevelsAreReadFromEveryServicesMetrics(t *testing.T) {
	ctx := context.Background()
	serve := func(levels map[string][]cache.StatsSource) string {
		reg := telemetry.NewRegistry()
		reg.MustRegister(cache.Collector(levels))
		srv := httptest.NewServer(telemetry.AdminHandler(reg, nil, nil))
		t.Cleanup(srv.Close)
		return srv.URL + "/metrics"
	}
	l1 := func(hits int) *cache.Loader[int, int] {
		c := cache.New(time.Minute, clock.Real{}, func(_ context.Context, k int) (int, error) { return k, nil })
		for range hits + 1 { // one miss, then hits
			_, _ = c.Get(ctx, 1)
		}
		return c
	}
	filter := cache.NewFilter()
	if err := filter.Rebuild(ctx, func(context.Context) ([]int64, error) { return []int64{1}, nil }); err != nil {
		t.Fatal(err)
	}
	for id := range int64(4) {
		filter.MayExist(id + 2) // unknown: refused (bar a false positive)
	}
	filter.MayExist(1)
	gateway := serve(map[string][]cache.StatsSource{"product": {l1(3)}})         // 3 hits of 4
	product := serve(map[string][]cache.StatsSource{"product": {l1(5), filter}}) // 5 hits of 6
	levels, err := ReadCacheLevels(ctx, []string{gateway, product})
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != 2 || levels[0].Level != "l1" || levels[0].Hits != 8 || levels[0].Lookups != 10 ||
		levels[1].Level != "bloom" || levels[1].Lookups != 5 || levels[1].Refused+levels[1].Hits != 5 {
		t.Fatalf("levels %+v", levels)
	}
	if _, err := ReadCacheLevels(ctx, []string{gateway + "/nowhere"}); err == nil {
		t.Fatal("a /metrics that answers 404: no error")
	}
}
