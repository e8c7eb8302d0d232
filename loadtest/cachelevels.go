package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// cacheLevelOrder is the order the report lists the levels in.
var cacheLevelOrder = []string{"l1", "l2", "bloom"}

// scrape reads the metric families of one /metrics URL.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return families, nil
}

var scrapeClient = telemetry.NewClient(10*time.Second, 1)

// ReadCacheLevels scrapes cache_lookups_total from each /metrics URL
// (the gateway's on the target, the product service's admin port) and
// sums it by level.
func ReadCacheLevels(ctx context.Context, urls []string) ([]result.CacheLevel, error) {
	sums := map[string]*result.CacheLevel{}
	for _, url := range urls {
		families, err := scrape(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("cache levels: %w", err)
		}
		f := families["cache_lookups_total"]
		if f == nil {
			continue
		}
		for _, m := range f.GetMetric() {
			var level, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "level":
					level = l.GetValue()
				case "result":
					outcome = l.GetValue()
				}
			}
			s := sums[level]
			if s == nil {
				s = &result.CacheLevel{Level: level}
				sums[level] = s
			}
			n := m.GetCounter().GetValue()
			s.Lookups += n
			switch {
			case outcome == "hit":
				s.Hits += n
			case level == "bloom" && outcome == "negative":
				s.Refused += n
			}
		}
	}
	var out []result.CacheLevel
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b result.CacheLevel) int {
		return slices.Index(cacheLevelOrder, a.Level) - slices.Index(cacheLevelOrder, b.Level)
	})
	return out, nil
}
