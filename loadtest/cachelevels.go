package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// CacheLevel is what one level of the catalogue caches did, summed over
// the services scraped and their caches, since they started: lookups,
// hits (for bloom, ids passed on to the database) and, for bloom,
// Refused (unknown ids answered without a read).
type CacheLevel struct {
	Level   string  `json:"level"`
	Lookups float64 `json:"lookups"`
	Hits    float64 `json:"hits"`
	Refused float64 `json:"refused,omitempty"`
}

// cacheLevelOrder is the order the report lists the levels in.
var cacheLevelOrder = []string{"l1", "l2", "bloom"}

// ReadCacheLevels scrapes cache_lookups_total from each /metrics URL
// (the gateway's on the target, the product service's admin port) and
// sums it by level.
func ReadCacheLevels(ctx context.Context, urls []string) ([]CacheLevel, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	sums := map[string]*CacheLevel{}
	for _, url := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/plain")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("cache levels: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("cache levels: %s: %s", url, resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("cache levels: %s: %w", url, err)
		}
		f := families["cache_lookups_total"]
		if f == nil {
			continue
		}
		for _, m := range f.GetMetric() {
			var level, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "level":
					level = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			s := sums[level]
			if s == nil {
				s = &CacheLevel{Level: level}
				sums[level] = s
			}
			n := m.GetCounter().GetValue()
			s.Lookups += n
			switch {
			case result == "hit":
				s.Hits += n
			case level == "bloom" && result == "negative":
				s.Refused += n
			}
		}
	}
	var out []CacheLevel
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b CacheLevel) int {
		return slices.Index(cacheLevelOrder, a.Level) - slices.Index(cacheLevelOrder, b.Level)
	})
	return out, nil
}

// cacheLine is the report's line of the cache levels.
func cacheLine(levels []CacheLevel) string {
	line := "Catalogue cache hit ratio per level (since the services started):"
	for _, l := range levels {
		if l.Lookups == 0 {
			continue
		}
		if l.Level == "bloom" {
			line += fmt.Sprintf("  bloom refused %.0f unknown ids of %.0f", l.Refused, l.Lookups)
			continue
		}
		line += fmt.Sprintf("  %s %.1f %% of %.0f", l.Level, 100*l.Hits/l.Lookups, l.Lookups)
	}
	return line
}
