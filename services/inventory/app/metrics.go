package app

import (
	"context"
	"log/slog"
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

// repairing counts what each rebuild of a fenced sale repaired, in
// inventory_stock_repairs_total{kind}, and logs one line per rebuilt
// sale. kind is stock (the stock key was wrong or lost), reservation,
// user_count or expiry_entry (records rewritten), or overheld (units the
// stored orders held beyond the total: a sale oversold before its rebuild).
type repairing struct {
	*inventory.Service
	repairs *prometheus.CounterVec
	log     *slog.Logger
}

func newRepairing(svc *inventory.Service, reg prometheus.Registerer, log *slog.Logger) *repairing {
	r := &repairing{Service: svc, log: log, repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inventory_stock_repairs_total",
		Help: "Records a rebuild of a fenced flash sale (after Redis restarted or failed over) found wrong and rewrote, by kind.",
	}, []string{"kind"})}
	for _, k := range []string{"stock", "reservation", "user_count", "expiry_entry", "overheld"} {
		r.repairs.WithLabelValues(k)
	}
	reg.MustRegister(r.repairs)
	return r
}

// RebuildStock rebuilds through the service and records what it repaired.
func (r *repairing) RebuildStock(ctx context.Context, req inventory.Rebuild) (inventory.RebuildResult, error) {
	res, err := r.Service.RebuildStock(ctx, req)
	if err != nil || !res.Rebuilt {
		return res, err
	}
	if res.StockBefore != res.Stock {
		r.repairs.WithLabelValues("stock").Inc()
	}
	r.repairs.WithLabelValues("reservation").Add(float64(res.Reservations))
	r.repairs.WithLabelValues("user_count").Add(float64(res.UserCounts))
	r.repairs.WithLabelValues("expiry_entry").Add(float64(res.ExpiryEntries))
	r.repairs.WithLabelValues("overheld").Add(float64(res.Overheld))
	level := slog.LevelWarn
	if res.Overheld > 0 {
		level = slog.LevelError
	}
	r.log.Log(ctx, level, "rebuilt a fenced flash sale from its stored orders",
		"activity_id", req.ActivityID, "orders", len(req.Orders), "stock_before", res.StockBefore, "stock", res.Stock,
		"reservations_repaired", res.Reservations, "user_counts_repaired", res.UserCounts,
		"expiry_entries_repaired", res.ExpiryEntries, "overheld", res.Overheld)
	return res, nil
}
