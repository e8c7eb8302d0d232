package product

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
)

// Store keeps products and activities (Postgres).
type Store interface {
	// CreateProduct records a new product.
	CreateProduct(ctx context.Context, p Product) error
	// Product returns the product, or ErrNotFound.
	Product(ctx context.Context, skuID int64) (Product, error)
	// CreateActivity, in one transaction, takes a.Stock units from the
	// product (ErrNotFound, ErrInsufficientStock), records the activity and
	// calls preheat before it commits: if preheat fails, nothing is written.
	CreateActivity(ctx context.Context, a Activity, preheat func(context.Context) error) error
	// Activity returns the activity (Remaining unset), or ErrNotFound.
	Activity(ctx context.Context, id int64) (Activity, error)
	// Activities returns up to limit activities, the latest starting ones,
	// ordered by start time (Remaining unset).
	Activities(ctx context.Context, limit int) ([]Activity, error)
	// ReserveStock takes every line's units from its product for the
	// order, all or nothing (ErrSoldOut, ErrNotFound); replayed is true,
	// and nothing is taken, when the order has reserved before.
	ReserveStock(ctx context.Context, orderID int64, lines []StockLine) (replayed bool, err error)
	// ReleaseStock gives back what the order reserved, once; released is
	// false when nothing was held.
	ReleaseStock(ctx context.Context, orderID int64) (released bool, err error)
}

// Inventory holds flash-sale stock (the inventory service).
type Inventory interface {
	// Preheat loads an activity's stock and per-user limit. Repeating it
	// never resets stock already sold.
	Preheat(ctx context.Context, activityID, stock, perUserLimit int64) error
	// Remaining returns the units the activity has left.
	Remaining(ctx context.Context, activityID int64) (int64, error)
}

// IDs hands out new unique ids (a snowflake generator).
type IDs interface {
	Next() int64
}

// MaxListed bounds ListActivities, so the list page costs the same however
// many activities history holds.
const MaxListed = 500

// listConcurrency bounds the parallel stock look-ups of one list.
const listConcurrency = 16

// Config holds the service's dependencies and cache lifetimes.
type Config struct {
	Store     Store
	Inventory Inventory
	IDs       IDs
	Clock     clock.Clock
	// ActivityTTL is how long activity rows are cached. They never change
	// after creation, so it only bounds memory, not staleness.
	ActivityTTL time.Duration
	// StockTTL is how long an activity's remaining stock is cached: the
	// first cache level in front of Redis, so a hot detail page costs the
	// inventory service one call per activity per StockTTL per replica
	// (the figure shown may lag the truth by that much; Reserve decides).
	StockTTL time.Duration
	// CatalogTTL is how long product rows and the activity list are
	// cached. Both change when an activity is created: this replica
	// invalidates them at once, other replicas catch up within CatalogTTL.
	CatalogTTL time.Duration
}

// Service is the catalog's use cases, with read-through caches in front of
// the store and the inventory service.
type Service struct {
	store Store
	inv   Inventory
	ids   IDs
	clock clock.Clock

	products   *cache.Loader[int64, Product]
	activities *cache.Loader[int64, Activity]
	list       *cache.Loader[struct{}, []Activity]
	remaining  *cache.Loader[int64, int64]
}

// NewService returns a service over cfg's dependencies.
func NewService(cfg Config) *Service {
	s := &Service{store: cfg.Store, inv: cfg.Inventory, ids: cfg.IDs, clock: cfg.Clock}
	// While Postgres or the inventory cannot answer, each cache serves
	// what it read last, up to cache.StaleMaxAge old: products and
	// activities never change once created, and the list and the stock
	// shown are already a TTL behind (Reserve decides).
	// Ids that do not exist are remembered for cache.NegativeTTL, so a
	// scan of made-up ids costs Postgres one read per id and TTL.
	stale := cache.OnOutage(cache.StaleMaxAge)
	notFound := cache.Negative{TTL: cache.NegativeTTL, Absent: func(err error) bool { return errors.Is(err, ErrNotFound) }}
	s.products = cache.New(cfg.CatalogTTL, cfg.Clock, s.store.Product).WithStale(stale).WithNegative(notFound)
	s.activities = cache.New(cfg.ActivityTTL, cfg.Clock, s.store.Activity).WithStale(stale).WithNegative(notFound)
	s.list = cache.New(cfg.CatalogTTL, cfg.Clock, func(ctx context.Context, _ struct{}) ([]Activity, error) {
		return s.store.Activities(ctx, MaxListed)
	}).WithStale(stale)
	s.remaining = cache.New(cfg.StockTTL, cfg.Clock, s.inv.Remaining).WithStale(stale)
	return s
}

// Caches names the service's caches, for their metrics (cache.Collector).
func (s *Service) Caches() map[string]cache.StatsSource {
	return map[string]cache.StatsSource{"product": s.products, "activity": s.activities, "list": s.list, "remaining": s.remaining}
}

// CreateProduct validates and records a new product with a fresh SKU id.
func (s *Service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	if err := p.Validate(); err != nil {
		return Product{}, fmt.Errorf("create product: %w", err)
	}
	p.SKUID = s.ids.Next()
	if err := s.store.CreateProduct(ctx, p); err != nil {
		return Product{}, fmt.Errorf("create product: %w", err)
	}
	return p, nil
}

// GetProduct returns the product, possibly CatalogTTL old.
func (s *Service) GetProduct(ctx context.Context, skuID int64) (Product, error) {
	p, err := s.products.Get(ctx, skuID)
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", skuID, err)
	}
	return p, nil
}

// CreateActivity validates a (ID, Title and Remaining are ignored), takes
// its stock from the product and preheats it into the inventory service,
// all before it answers: an activity that exists is always buyable.
func (s *Service) CreateActivity(ctx context.Context, a Activity) (Activity, error) {
	// Postgres keeps microseconds; rounding here makes the answer equal to
	// every later read.
	a.StartsAt = a.StartsAt.Truncate(time.Microsecond).UTC()
	a.EndsAt = a.EndsAt.Truncate(time.Microsecond).UTC()
	// A product's price never changes, so checking the activity's price
	// against a read outside the store's transaction is race-free.
	p, err := s.store.Product(ctx, a.SKUID)
	if err != nil {
		return Activity{}, fmt.Errorf("create activity: product %d: %w", a.SKUID, err)
	}
	if err := a.Validate(p, s.clock.Now()); err != nil {
		return Activity{}, fmt.Errorf("create activity: %w", err)
	}
	a.ID = s.ids.Next()
	a.Title = p.Title
	a.Remaining = a.Stock
	err = s.store.CreateActivity(ctx, a, func(ctx context.Context) error {
		if err := s.inv.Preheat(ctx, a.ID, a.Stock, a.PerUserLimit); err != nil {
			// Whatever the inventory service said, the activity could
			// not be made buyable, so it is not created and the caller
			// may retry. Only ErrUnavailable is wrapped, so that the
			// answer's code is UNAVAILABLE and not the remote one.
			return fmt.Errorf("preheat: %w (%v)", ErrUnavailable, err)
		}
		return nil
	})
	if err != nil {
		return Activity{}, fmt.Errorf("create activity on product %d: %w", a.SKUID, err)
	}
	s.products.Invalidate(a.SKUID)
	s.list.Invalidate(struct{}{})
	return a, nil
}

// GetActivity returns the activity with its remaining stock, at most
// StockTTL old.
func (s *Service) GetActivity(ctx context.Context, id int64) (Activity, error) {
	a, err := s.activities.Get(ctx, id)
	if err != nil {
		return Activity{}, fmt.Errorf("get activity %d: %w", id, err)
	}
	if a.Remaining, err = s.remaining.Get(ctx, id); err != nil {
		return Activity{}, fmt.Errorf("get activity %d: remaining stock: %w", id, err)
	}
	return a, nil
}

// ListActivities returns the MaxListed latest starting activities ordered
// by start time, each with its remaining stock.
func (s *Service) ListActivities(ctx context.Context) ([]Activity, error) {
	rows, err := s.list.Get(ctx, struct{}{})
	if err != nil {
		return nil, fmt.Errorf("list activities: %w", err)
	}
	// The cached slice is shared: fill a copy.
	out := slices.Clone(rows)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	for i := range out {
		g.Go(func() error {
			n, err := s.remaining.Get(gctx, out[i].ID)
			if err != nil {
				return fmt.Errorf("activity %d: remaining stock: %w", out[i].ID, err)
			}
			out[i].Remaining = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list activities: %w", err)
	}
	return out, nil
}

// Status returns a's status now, by the service's clock.
func (s *Service) Status(a Activity) Status {
	return a.Status(s.clock.Now())
}

// ReserveStock takes the regular stock of a regular order's lines. The
// products' cached stock figures are dropped on this replica.
func (s *Service) ReserveStock(ctx context.Context, orderID int64, lines []StockLine) (bool, error) {
	if orderID <= 0 {
		return false, fmt.Errorf("reserve stock: %w: order id must be positive", ErrInvalid)
	}
	if err := ValidateStockLines(lines); err != nil {
		return false, fmt.Errorf("reserve stock for order %d: %w", orderID, err)
	}
	replayed, err := s.store.ReserveStock(ctx, orderID, lines)
	if err != nil {
		return false, fmt.Errorf("reserve stock for order %d: %w", orderID, err)
	}
	for _, l := range lines {
		s.products.Invalidate(l.SKUID)
	}
	return replayed, nil
}

// ReleaseStock gives back the order's reserved regular stock.
func (s *Service) ReleaseStock(ctx context.Context, orderID int64) (bool, error) {
	if orderID <= 0 {
		return false, fmt.Errorf("release stock: %w: order id must be positive", ErrInvalid)
	}
	released, err := s.store.ReleaseStock(ctx, orderID)
	if err != nil {
		return false, fmt.Errorf("release stock of order %d: %w", orderID, err)
	}
	return released, nil
}
