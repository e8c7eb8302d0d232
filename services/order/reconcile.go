package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// HeldOrder is a stored flash-sale order as the inventory rebuilds its
// reservation: what it holds follows from Status.
type HeldOrder struct {
	OrderID        int64
	UserID         int64
	Quantity       int64
	Status         ReservationStatus
	IdempotencyKey string
	ExpiresAt      time.Time
	// Restored is how many units a refund gave back to the buyer's limit
	// (all of them once the order is fully refunded).
	Restored int64
}

// StockRebuild is the truth a fenced sale is rebuilt from.
type StockRebuild struct {
	ActivityID   int64
	Total        int64
	PerUserLimit int64
	Orders       []HeldOrder
}

// RebuildOutcome is what the inventory repaired; Rebuilt is false when
// the sale was live already (another reconciler was first).
type RebuildOutcome struct {
	Rebuilt                                           bool
	StockBefore, Stock                                int64
	Reservations, UserCounts, ExpiryEntries, Overheld int64
}

// FencedStock is what the reconciler needs of the inventory.
type FencedStock interface {
	// Fenced lists the activities whose Redis state may have lost
	// writes (a restart or failover) and that sell nothing until rebuilt.
	Fenced(ctx context.Context) ([]int64, error)
	// RebuildStock rewrites a fenced sale from r and unfences it.
	RebuildStock(ctx context.Context, r StockRebuild) (RebuildOutcome, error)
}

// Holdings reads the truth of a sale from the orders' store (Postgres).
type Holdings interface {
	// SeckillHoldings returns every stored order of the activity.
	SeckillHoldings(ctx context.Context, activityID int64) ([]HeldOrder, error)
}

// InFlight tells how many published order events the order consumer has
// not stored yet (its group's lag).
type InFlight interface {
	InFlight(ctx context.Context) (int64, error)
}

// SaleStock finds a sale's total stock and per-user limit (the product
// service).
type SaleStock interface {
	Activity(ctx context.Context, id int64) (Activity, error)
}

// ReconcilerConfig holds a StockReconciler's dependencies and settings.
type ReconcilerConfig struct {
	Inventory  FencedStock
	Orders     Holdings
	Consumer   InFlight
	Activities SaleStock
	Clock      clock.Clock
	// Settle is how long a sale stays fenced before it is rebuilt, so
	// that a buy whose reservation Redis lost has published its event,
	// been marked and been stored, and counts. A placement's publish may
	// take up to placeTimeout (10 s) when the broker is slow, longer than
	// the default: docs/stock-reservation.md ("What window remains") says
	// what such a placement can still do to a rebuilt sale.
	Settle time.Duration
	// Every paces Run.
	Every  time.Duration
	Logger *slog.Logger
}

// Defaults of the reconciler's settings.
const (
	DefaultReconcileSettle = 5 * time.Second
	DefaultReconcileEvery  = time.Second
)

// ErrOrdersInFlight means published orders are not stored yet, so the
// stored orders are not the whole truth: the rebuild waits.
var ErrOrdersInFlight = errors.New("published orders not stored yet")

// StockReconciler rebuilds fenced flash sales (Redis restarted or failed
// over, and may have lost its last second of writes) from the orders:
// stock, per-user counts, reservations and expiry queue. The inventory
// owns Redis and rewrites the keys atomically; this side owns the orders
// and says what they hold. Any number may run: the inventory rebuilds a
// fenced sale once and leaves a live one alone.
type StockReconciler struct {
	cfg ReconcilerConfig
	mu  sync.Mutex
	// seen is when each fenced sale was first seen fenced.
	seen map[int64]time.Time
}

// NewStockReconciler returns a reconciler over cfg.
func NewStockReconciler(cfg ReconcilerConfig) *StockReconciler {
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultReconcileSettle
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultReconcileEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &StockReconciler{cfg: cfg, seen: map[int64]time.Time{}}
}

// Run reconciles every Every until ctx ends; failures are logged and
// retried at the next round.
func (r *StockReconciler) Run(ctx context.Context) error {
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "stock reconcile failed; retried at the next round", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.Every):
		}
	}
}

// RunOnce asks the inventory for fenced sales (which is also how a
// restart is detected: the inventory checks each sale's live mark) and
// rebuilds those fenced for at least Settle, once the consumer has stored
// every published order. It returns the sales it rebuilt.
func (r *StockReconciler) RunOnce(ctx context.Context) ([]int64, error) {
	fenced, err := r.cfg.Inventory.Fenced(ctx)
	if err != nil {
		return nil, fmt.Errorf("fenced sales: %w", err)
	}
	now := r.cfg.Clock.Now()
	due := r.settled(fenced, now)
	if len(due) == 0 {
		return nil, nil
	}
	lag, err := r.cfg.Consumer.InFlight(ctx)
	if err != nil {
		return nil, fmt.Errorf("orders in flight: %w", err)
	}
	if lag > 0 {
		return nil, fmt.Errorf("%w: %d; %d fenced sales wait", ErrOrdersInFlight, lag, len(due))
	}
	var rebuilt []int64
	var errs []error
	for _, id := range due {
		// Timed afresh whatever the outcome. Live now (rebuilt here or by
		// another reconciler): fenced again later is another restart. A
		// failed rebuild may have made some of a bucketed sale's buckets
		// live, which have sold since: the next try waits Settle again
		// for their placements, as for any.
		r.forget(id)
		ok, err := r.rebuild(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			rebuilt = append(rebuilt, id)
		}
	}
	return rebuilt, errors.Join(errs...)
}

func (r *StockReconciler) forget(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, id)
}

// settled records when each of fenced was first seen and returns those
// seen at least Settle ago; sales no longer fenced are forgotten.
func (r *StockReconciler) settled(fenced []int64, now time.Time) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	still := make(map[int64]time.Time, len(fenced))
	var due []int64
	for _, id := range fenced {
		first, ok := r.seen[id]
		if !ok {
			first = now
		}
		still[id] = first
		if !now.Before(first.Add(r.cfg.Settle)) {
			due = append(due, id)
		}
	}
	r.seen = still
	return due
}

// rebuild rebuilds one fenced sale; false when it was live already.
func (r *StockReconciler) rebuild(ctx context.Context, activityID int64) (bool, error) {
	a, err := r.cfg.Activities.Activity(ctx, activityID)
	if err != nil {
		return false, fmt.Errorf("rebuild sale %d: %w", activityID, err)
	}
	held, err := r.cfg.Orders.SeckillHoldings(ctx, activityID)
	if err != nil {
		return false, fmt.Errorf("rebuild sale %d: %w", activityID, err)
	}
	out, err := r.cfg.Inventory.RebuildStock(ctx, StockRebuild{
		ActivityID: activityID, Total: a.Stock, PerUserLimit: a.PerUserLimit, Orders: held,
	})
	if err != nil {
		return false, fmt.Errorf("rebuild sale %d: %w", activityID, err)
	}
	if out.Rebuilt {
		r.cfg.Logger.WarnContext(ctx, "rebuilt a fenced flash sale from its stored orders",
			"activity_id", activityID, "orders", len(held), "stock_before", out.StockBefore, "stock", out.Stock,
			"reservations_repaired", out.Reservations, "user_counts_repaired", out.UserCounts,
			"expiry_entries_repaired", out.ExpiryEntries, "overheld", out.Overheld)
	}
	return out.Rebuilt, nil
}
