package app

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// maxStockSeries bounds the activities the stock gauge reports, so a
// store with years of past sales cannot blow up a scrape.
const maxStockSeries = 500

// stockCollector reports each preheated activity's remaining and total
// stock at scrape time, read from Redis, so Grafana shows a sale's stock
// draining whichever replica sold it.
//
// It also reports the expiry queues' backlog, summed over the same
// activities (all of them up to maxStockSeries; a random sample of that
// many beyond): how many entries are due and not being worked on, and how
// long the oldest of them has waited, as of the Clock. Every replica
// reads the same Redis, so every replica reports the same figures
// (alerts take the max).
type stockCollector struct {
	rdb        goredis.UniversalClient
	store      *invredis.Store
	clock      clock.Clock
	remaining  *prometheus.Desc
	total      *prometheus.Desc
	dueEntries *prometheus.Desc
	oldestDue  *prometheus.Desc
}

func newStockCollector(rdb goredis.UniversalClient, store *invredis.Store, clk clock.Clock) *stockCollector {
	return &stockCollector{
		rdb:   rdb,
		store: store,
		clock: clk,
		remaining: prometheus.NewDesc("inventory_stock_remaining",
			"Units left to sell in a flash-sale activity.", []string{"activity_id"}, nil),
		total: prometheus.NewDesc("inventory_stock_total",
			"Units a flash-sale activity was preheated with.", []string{"activity_id"}, nil),
		dueEntries: prometheus.NewDesc("inventory_expiry_due_entries",
			"Expiry queue entries past their payment deadline that no worker holds (not yet claimed, or their claim lapsed).", nil, nil),
		oldestDue: prometheus.NewDesc("inventory_expiry_oldest_due_seconds",
			"How long the oldest of inventory_expiry_due_entries has been due (0 when there is none).", nil, nil),
	}
}

func (c *stockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.remaining
	ch <- c.total
	ch <- c.dueEntries
	ch <- c.oldestDue
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
	now := c.clock.Now()
	var backlog invredis.Backlog
	for _, s := range ids {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			continue
		}
		b, err := c.store.DueBacklog(ctx, id, now)
		if err != nil {
			// A backlog read in part would look smaller than it is.
			return
		}
		backlog.Entries += b.Entries
		if !b.Oldest.IsZero() && (backlog.Oldest.IsZero() || b.Oldest.Before(backlog.Oldest)) {
			backlog.Oldest = b.Oldest
		}
	}
	var oldest float64
	if !backlog.Oldest.IsZero() {
		oldest = now.Sub(backlog.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.dueEntries, prometheus.GaugeValue, float64(backlog.Entries))
	ch <- prometheus.MustNewConstMetric(c.oldestDue, prometheus.GaugeValue, oldest)
}
