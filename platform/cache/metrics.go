package cache

import "github.com/prometheus/client_golang/prometheus"

// StatsSource is a cache level whose Stats a Collector reads (Loader,
// Shared, Filter).
type StatsSource interface{ Stats() Stats }

// Collector exports the cache levels' Stats at each scrape as
// cache_lookups_total{cache, level, result}, cache_refreshes_total{cache,
// level}, cache_evictions_total{cache, level} and cache_entries{cache,
// level}; caches maps each level's name (the cache it belongs to:
// "product", "activity") to its levels. Results by level: l1 hit, miss,
// stale, negative; l2 hit, miss, error (Redis did not answer, the level
// below was asked); bloom hit (the id may exist) and negative (it does
// not, answered without a read). The names are the same in every service
// (the scrape's job tells them apart), as Go's own go_* are.
func Collector(caches map[string][]StatsSource) prometheus.Collector {
	return &collector{caches: caches,
		lookups: prometheus.NewDesc("cache_lookups_total",
			"Lookups of a cache level by result: hit (a fresh entry; for bloom, an id that may exist), miss (the level below was asked), stale (l1: the last copy, its source down), negative (l1: a remembered absence; bloom: an id that does not exist, answered without a read), error (l2: Redis failed, the level below was asked).",
			[]string{"cache", "level", "result"}, nil),
		refreshes: prometheus.NewDesc("cache_refreshes_total",
			"Background reloads of an entry read in the last part of its TTL (refresh-ahead).", []string{"cache", "level"}, nil),
		evictions: prometheus.NewDesc("cache_evictions_total",
			"Entries an in-process cache evicted to stay within its bound.", []string{"cache", "level"}, nil),
		entries: prometheus.NewDesc("cache_entries",
			"Entries an in-process cache holds (bloom: ids added to the filter).", []string{"cache", "level"}, nil),
	}
}

type collector struct {
	caches                                 map[string][]StatsSource
	lookups, refreshes, evictions, entries *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lookups
	ch <- c.refreshes
	ch <- c.evictions
	ch <- c.entries
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for name, levels := range c.caches {
		for _, src := range levels {
			s := src.Stats()
			results := map[string]int64{"hit": s.Hits, "negative": s.Negative}
			switch s.Level {
			case L1:
				results["miss"], results["stale"] = s.Misses, s.Stale
				ch <- prometheus.MustNewConstMetric(c.refreshes, prometheus.CounterValue, float64(s.Refreshes), name, s.Level)
				ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions), name, s.Level)
			case L2:
				results = map[string]int64{"hit": s.Hits, "miss": s.Misses, "error": s.Errors}
			}
			for result, n := range results {
				ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(n), name, s.Level, result)
			}
			if s.Level != L2 {
				ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries), name, s.Level)
			}
		}
	}
}
