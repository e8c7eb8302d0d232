package app

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// maxStockSeries bounds the activities the stock gauge reports, so a
// store with years of past sales cannot blow up a scrape.
const maxStockSeries = 500

// stockCollector reports each preheated activity's remaining and total
// stock at scrape time, read from Redis, so Grafana shows a sale's stock
// draining whichever replica sold it.
type stockCollector struct {
	rdb       goredis.UniversalClient
	store     *invredis.Store
	remaining *prometheus.Desc
	total     *prometheus.Desc
}

func newStockCollector(rdb goredis.UniversalClient, store *invredis.Store) *stockCollector {
	return &stockCollector{
		rdb:   rdb,
		store: store,
		remaining: prometheus.NewDesc("inventory_stock_remaining",
			"Units left to sell in a flash-sale activity.", []string{"activity_id"}, nil),
		total: prometheus.NewDesc("inventory_stock_total",
			"Units a flash-sale activity was preheated with.", []string{"activity_id"}, nil),
	}
}

func (c *stockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.remaining
	ch <- c.total
}

// Collect reads the stock of up to maxStockSeries activities; an activity
// it cannot read is left out of this scrape rather than failing it.
func (c *stockCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ids, err := c.rdb.SRandMemberN(ctx, invredis.ActivitiesKey, maxStockSeries).Result()
	if err != nil {
		return
	}
	for _, s := range ids {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			continue
		}
		var st inventory.Stock
		if st, err = c.store.Stock(ctx, id); err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(st.Remaining), s)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.Total), s)
	}
}
