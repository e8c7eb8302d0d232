package cache

import "github.com/prometheus/client_golang/prometheus"

// StatsSource is a cache whose Stats a Collector reads (every Loader).
type StatsSource interface{ Stats() Stats }

// Collector exports the caches' Stats at each scrape as
// cache_lookups_total{cache, result} (result: hit, miss, stale,
// negative), cache_evictions_total{cache} and cache_entries{cache};
// caches maps each cache's name to it. The names are the same in every
// service (the scrape's job tells them apart), as Go's own go_* are.
func Collector(caches map[string]StatsSource) prometheus.Collector {
	return &collector{caches: caches,
		lookups: prometheus.NewDesc("cache_lookups_total",
			"Lookups of an in-process cache by result: hit (a fresh entry), miss (a load was asked for), stale (the last copy, its source down), negative (a remembered absence).",
			[]string{"cache", "result"}, nil),
		evictions: prometheus.NewDesc("cache_evictions_total",
			"Entries an in-process cache evicted to stay within its bound.", []string{"cache"}, nil),
		entries: prometheus.NewDesc("cache_entries",
			"Entries an in-process cache holds.", []string{"cache"}, nil),
	}
}

type collector struct {
	caches                      map[string]StatsSource
	lookups, evictions, entries *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lookups
	ch <- c.evictions
	ch <- c.entries
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for name, src := range c.caches {
		s := src.Stats()
		for result, n := range map[string]int64{"hit": s.Hits, "miss": s.Misses, "stale": s.Stale, "negative": s.Negative} {
			ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(n), name, result)
		}
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions), name)
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries), name)
	}
}
