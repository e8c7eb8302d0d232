package app

import (
	"context"
	"log/slog"
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
