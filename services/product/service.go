package product

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/sweep"
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
	// ReleaseStock gives back what the order reserved, once, and returns
	// the lines given back (none when nothing was held).
	ReleaseStock(ctx context.Context, orderID int64) (released []StockLine, err error)
	// HeldStock returns the page of orders holding stock that q asks for
	// (q.After: a reservation's time and its order id), its ages on the
	// database's clock, which stamps the reservations.
	HeldStock(ctx context.Context, q sweep.AgedQuery) ([]HeldStock, error)
	// ProductIDs and ActivityIDs return the id of every product and
	// activity (the Bloom filters' source).
	ProductIDs(ctx context.Context) ([]int64, error)
	ActivityIDs(ctx context.Context) ([]int64, error)
}

// Shared is the catalogue's second cache level, in Redis, shared by the
// replicas, and the channel that tells every replica of a write.
type Shared struct {
	Products   *cache.Shared[int64, Product]
	Activities *cache.Shared[int64, Activity]
	// Publish announces a write to every replica (cache.Publish).
	Publish func(context.Context, cache.Invalidation) error
	// Failed hears of an invalidation, warm-up or announcement that
	// failed after its write committed: the write stands, the TTLs bound
	// the staleness left, and an announcement is sent again
	// (RunAnnouncements; docs/caching.md).
	Failed func(error)
}

// Inventory holds flash-sale stock (the inventory service).
type Inventory interface {
	// Preheat loads an activity's stock and per-user limit. Repeating it
	// never resets stock already sold.
	Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) error
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
	// cached in process. Both change when an activity is created: this
	// replica invalidates them at once, other replicas when the
	// invalidation reaches them (Shared), or within CatalogTTL.
	CatalogTTL time.Duration
	// Shared, when set, puts Redis between the in-process caches of
	// products and activities and Postgres, and announces writes to the
	// other replicas; nil keeps each replica to its own caches.
	Shared *Shared
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
	// productIDs and activityIDs are the Bloom filters of the ids that
	// exist: an id they reject is not found without a Postgres read. They
	// pass every id until RebuildFilters first runs.
	productIDs, activityIDs *cache.Filter
	shared                  *Shared
	// unannounced are the writes the channel would not take, until
	// RunAnnouncements sends them.
	unannounced unannounced
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
	// An id the Bloom filter rejects is not found without a read, and
	// remembered as such too.
	// A key read in the last fifth of its TTL is reloaded in the
	// background, so a hot page never waits for Postgres.
	stale := cache.OnOutage(cache.StaleMaxAge)
	notFound := cache.Negative{TTL: cache.NegativeTTL, Absent: func(err error) bool { return errors.Is(err, ErrNotFound) }}
	s.productIDs, s.activityIDs, s.shared = cache.NewFilter(), cache.NewFilter(), cfg.Shared
	readProduct, readActivity := s.store.Product, s.store.Activity
	if s.shared != nil {
		readProduct, readActivity = s.shared.Products.Through(readProduct), s.shared.Activities.Through(readActivity)
	}
	s.products = cache.New(cfg.CatalogTTL, cfg.Clock, filtered(s.productIDs, "product", readProduct)).
		WithStale(stale).WithNegative(notFound).WithRefreshAhead(cache.RefreshAhead)
	s.activities = cache.New(cfg.ActivityTTL, cfg.Clock, filtered(s.activityIDs, "activity", readActivity)).
		WithStale(stale).WithNegative(notFound).WithRefreshAhead(cache.RefreshAhead)
	s.list = cache.New(cfg.CatalogTTL, cfg.Clock, func(ctx context.Context, _ struct{}) ([]Activity, error) {
		return s.store.Activities(ctx, MaxListed)
	}).WithStale(stale).WithRefreshAhead(cache.RefreshAhead)
	s.remaining = cache.New(cfg.StockTTL, cfg.Clock, s.inv.Remaining).WithStale(stale).WithRefreshAhead(cache.RefreshAhead)
	return s
}

// filtered is read behind the Bloom filter ids: an id it rejects is
// ErrNotFound without a read. The filters hold the real catalogue's ids
// (RebuildFilters reads the real tables), so pressure-test reads
// (platform/shadow), whose ids are in the shadow tables, go past them
// to the store, remembered absences still bounding their cost.
func filtered[V any](ids *cache.Filter, what string, read func(context.Context, int64) (V, error)) func(context.Context, int64) (V, error) {
	return func(ctx context.Context, id int64) (V, error) {
		if !shadow.Is(ctx) && !ids.MayExist(id) {
			var zero V
			return zero, fmt.Errorf("%s %d: %w", what, id, ErrNotFound)
		}
		return read(ctx, id)
	}
}

// Caches names the service's cache levels, for their metrics
// (cache.Collector).
func (s *Service) Caches() map[string][]cache.StatsSource {
	caches := map[string][]cache.StatsSource{
		"product":  {s.products, s.productIDs},
		"activity": {s.activities, s.activityIDs},
		"list":     {s.list}, "remaining": {s.remaining},
	}
	if s.shared != nil {
		caches["product"] = append(caches["product"], s.shared.Products)
		caches["activity"] = append(caches["activity"], s.shared.Activities)
	}
	return caches
}

// RebuildFilters loads every product and activity id into new Bloom
// filters (at start, then periodically and whenever invalidations may
// have been lost). Ids created meanwhile are kept.
func (s *Service) RebuildFilters(ctx context.Context) error {
	if err := s.productIDs.Rebuild(ctx, s.store.ProductIDs); err != nil {
		return fmt.Errorf("product ids: %w", err)
	}
	if err := s.activityIDs.Rebuild(ctx, s.store.ActivityIDs); err != nil {
		return fmt.Errorf("activity ids: %w", err)
	}
	return nil
}

// Invalidated applies another replica's write (or this one's, come back
// over the channel): the id exists, and this replica's copy of it is
// dropped. An activity is loaded again at once (it is new: the warm-up
// of its sale), from the Redis level its creator filled.
func (s *Service) Invalidated(ctx context.Context, inv cache.Invalidation) {
	switch inv.Kind {
	case cache.KindProduct:
		s.productIDs.Add(inv.ID)
		s.products.Invalidate(inv.ID)
	case cache.KindActivity:
		s.activityIDs.Add(inv.ID)
		s.activities.Invalidate(inv.ID)
		s.list.Invalidate(struct{}{})
		// In the background, so the channel is not held up; an error is
		// the Get's own to remember (or not), and nobody waits for it.
		go func() { _, _ = s.activities.Get(ctx, inv.ID) }()
	}
}

// InvalidationsLost makes every in-process copy of the catalogue due
// again (kept for stale-if-error), after the channel was cut and writes
// may have gone unheard; the caller rebuilds the filters too.
func (s *Service) InvalidationsLost() {
	s.products.Expire()
	s.activities.Expire()
	s.list.Expire()
}

// wrote announces that inv's key changed: it drops the Redis copy (so
// no replica reads the old one from there) and this replica's, and tells
// the others. The write has committed, so a failure is only reported.
func (s *Service) wrote(ctx context.Context, inv cache.Invalidation) {
	switch inv.Kind {
	case cache.KindProduct:
		s.products.Invalidate(inv.ID)
	case cache.KindActivity:
		s.activities.Invalidate(inv.ID)
	}
	if s.shared == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	switch inv.Kind {
	case cache.KindProduct:
		err = s.shared.Products.Invalidate(ctx, inv.ID)
	case cache.KindActivity:
		err = s.shared.Activities.Invalidate(ctx, inv.ID)
	}
	if err != nil {
		s.shared.Failed(fmt.Errorf("drop the shared copy of %s: %w", inv, err))
	}
	s.announce(ctx, inv)
}

// announce tells every replica of the write inv. One the channel would
// not take is held and sent again by RunAnnouncements: a replica that
// never hears of a new id refuses it NOT_FOUND (its Bloom filter) until
// its next rebuild, up to FLASHSALE_CATALOG_FILTER_REBUILD later, and a
// replica whose own subscription stayed up has no other way to learn
// that it missed one. (A failed cache write does not stop it: before, it
// did.)
func (s *Service) announce(ctx context.Context, inv cache.Invalidation) {
	err := s.shared.Publish(ctx, inv)
	if err == nil {
		return
	}
	if s.unannounced.hold(inv) {
		s.shared.Failed(fmt.Errorf("announce %s, held to be sent again: %w", inv, err))
		return
	}
	s.shared.Failed(fmt.Errorf("announce %s, dropped: %d announcements are held already: %w", inv, maxUnannounced, err))
}

// unannounced holds the announcements the channel would not take.
type unannounced struct {
	mu   sync.Mutex
	held map[cache.Invalidation]struct{}
}

// maxUnannounced bounds the announcements held: the catalogue's writes
// are an operator's, a few a minute; past it the filter rebuild is left
// to repair.
const maxUnannounced = 10_000

// hold keeps inv to be sent again; false when too many are held.
func (u *unannounced) hold(inv cache.Invalidation) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.held) >= maxUnannounced {
		return false
	}
	if u.held == nil {
		u.held = map[cache.Invalidation]struct{}{}
	}
	u.held[inv] = struct{}{}
	return true
}

// take returns the announcements held and lets go of them.
func (u *unannounced) take() []cache.Invalidation {
	u.mu.Lock()
	defer u.mu.Unlock()
	invs := make([]cache.Invalidation, 0, len(u.held))
	for inv := range u.held {
		invs = append(invs, inv)
	}
	clear(u.held)
	return invs
}

// RunAnnouncements sends the held announcements again, every interval,
// until ctx ends; from the first the channel still refuses, they are
// held again for the next round.
func (s *Service) RunAnnouncements(ctx context.Context, interval time.Duration) error {
	if s.shared == nil {
		<-ctx.Done()
		return nil
	}
	return sweep.Every(ctx, interval, func(ctx context.Context) {
		invs := s.unannounced.take()
		for i, inv := range invs {
			if err := s.shared.Publish(ctx, inv); err != nil {
				for _, left := range invs[i:] {
					s.unannounced.hold(left)
				}
				return
			}
		}
	})
}

// CreateProduct validates and records a new product with a fresh SKU id.
func (s *Service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	if err := p.Validate(); err != nil {
		return Product{}, fmt.Errorf("create product: %w", err)
	}
	p.SKUID = s.ids.Next()
	// In the filter before it exists, so that no read after the insert
	// is turned away.
	s.productIDs.Add(p.SKUID)
	if err := s.store.CreateProduct(ctx, p); err != nil {
		return Product{}, fmt.Errorf("create product: %w", err)
	}
	// The other replicas add it to their filters and drop a remembered
	// "not found".
	s.wrote(ctx, cache.Invalidation{Kind: cache.KindProduct, ID: p.SKUID})
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
	s.activityIDs.Add(a.ID)
	err = s.store.CreateActivity(ctx, a, func(ctx context.Context) error {
		if err := s.inv.Preheat(ctx, a.ID, a.Stock, a.PerUserLimit, a.StockBuckets); err != nil {
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
	s.list.Invalidate(struct{}{})
	s.wrote(ctx, cache.Invalidation{Kind: cache.KindProduct, ID: a.SKUID})
	s.warm(ctx, a)
	return a, nil
}

// warm loads a new sale's pages (the activity and its product) into the
// Redis level before anyone reads them (预热), then announces the
// activity: every replica drops a remembered "not found" for it and
// loads it into its own cache from Redis.
func (s *Service) warm(ctx context.Context, a Activity) {
	if s.shared == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	row := a
	row.Remaining = 0 // the cached row holds no stock figure (GetActivity adds it)
	_, err := s.shared.Activities.Warm(ctx, a.ID, func(context.Context, int64) (Activity, error) { return row, nil })
	if err == nil {
		_, err = s.shared.Products.Warm(ctx, a.SKUID, s.store.Product)
	}
	if err != nil {
		s.shared.Failed(fmt.Errorf("warm activity %d: %w", a.ID, err))
	}
	s.announce(ctx, cache.Invalidation{Kind: cache.KindActivity, ID: a.ID})
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
// products' cached stock figures are dropped on every replica.
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
		s.wrote(ctx, cache.Invalidation{Kind: cache.KindProduct, ID: l.SKUID})
	}
	return replayed, nil
}

// ListHeldStock returns the page of orders holding regular stock that q
// asks for.
func (s *Service) ListHeldStock(ctx context.Context, q sweep.AgedQuery) ([]HeldStock, error) {
	if err := q.Validate(MinHeldAge, MaxHeldPage); err != nil {
		return nil, fmt.Errorf("list held stock: %w: %w", ErrInvalid, err)
	}
	held, err := s.store.HeldStock(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list held stock: %w", err)
	}
	return held, nil
}

// ReleaseStock gives back the order's reserved regular stock; the
// products' cached stock figures are dropped on every replica.
func (s *Service) ReleaseStock(ctx context.Context, orderID int64) (bool, error) {
	if orderID <= 0 {
		return false, fmt.Errorf("release stock: %w: order id must be positive", ErrInvalid)
	}
	released, err := s.store.ReleaseStock(ctx, orderID)
	if err != nil {
		return false, fmt.Errorf("release stock of order %d: %w", orderID, err)
	}
	for _, l := range released {
		s.wrote(ctx, cache.Invalidation{Kind: cache.KindProduct, ID: l.SKUID})
	}
	return len(released) > 0, nil
}
