// Package cache is the platform's in-process read-through cache (the
// first level of a read): bounded in size, least recently used entries
// going first; a time to live shortened by a random tenth per entry, so
// keys loaded together do not expire together (缓存雪崩); concurrent misses
// for one key make a single load (singleflight), so a hot key that expires
// does not stampede its source (缓存击穿); optionally it remembers for a
// short while that a key does not exist (WithNegative: 缓存穿透) and rides
// out its source's outage by serving what it last loaded (WithStale); a
// hot key read in the last part of its TTL is reloaded once in the
// background before it expires (WithRefreshAhead). Shared is the second
// level, in Redis, shared by replicas; Memo a bounded map of values that
// never change (no TTL, no loader); Filter the Bloom filter of the ids
// that exist; Invalidations carries writes to every replica. Stats and
// Collector export what they did.
package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
)

// DefaultMaxEntries bounds a Loader's entries unless WithMaxEntries says
// otherwise: a few MiB of catalogue rows, far more than a sale's hot set.
const DefaultMaxEntries = 100_000

// Loader caches the values load returns for ttl.
type Loader[K comparable, V any] struct {
	ttl      time.Duration
	load     func(context.Context, K) (V, error)
	clock    clock.Clock
	stale    Stale
	negative Negative
	// ahead is the last share of an entry's TTL in which a hit reloads it
	// in the background (WithRefreshAhead); zero never does.
	ahead float64

	// entries are keyed by the key and its traffic class: pressure-test
	// work (platform/shadow) reads shadow storage, and its values must
	// never answer real readers, nor real values marked ones.
	entries *lru.Cache[classed[K], entry[V]]
	group   singleflight.Group
	// refreshing holds the keys whose background reload is under way, so
	// a hot key's many hits start one.
	refreshing sync.Map

	hits, misses, staleAnswers, negativeAnswers, evictions, refreshes atomic.Int64
}

// classed is a key in one traffic class.
type classed[K comparable] struct {
	key    K
	shadow bool
}

// in is k in ctx's traffic class.
func in[K comparable](ctx context.Context, k K) classed[K] {
	return classed[K]{key: k, shadow: shadow.Is(ctx)}
}

// flightKey names a classed key in the singleflight group.
func (c classed[K]) flightKey() string {
	if c.shadow {
		return "shadow:" + fmt.Sprint(c.key)
	}
	return fmt.Sprint(c.key)
}

type entry[V any] struct {
	val V
	// absent is a remembered "no such key" answer (WithNegative).
	absent error
	// loaded is when val came from the source; expires is when Get next
	// asks the source (a stale entry's next try); from refresh on, a hit
	// reloads it in the background (WithRefreshAhead).
	loaded, expires, refresh time.Time
	stale                    bool
}

// Stale is how a Loader rides out an outage of its source
// (stale-if-error): when a load fails with an error Outage accepts, Get
// answers with the value loaded for the key at most MaxAge ago, and asks
// the source again only once a TTL has passed, so an outage costs one
// failed load per key and TTL instead of one per request, and the callers
// go on without the source. It suits values that do not change once
// written (activities, products) or whose staleness is harmless; a Loader
// without it returns the load's error.
type Stale struct {
	MaxAge time.Duration
	Outage func(error) bool
}

// StaleMaxAge is how old a value the services' caches of the catalogue
// (activities and products, which do not change once created) serve
// during an outage of their source: a sale rides out ten minutes of
// product service or Postgres trouble for the pages read before it.
const StaleMaxAge = 10 * time.Minute

// OnOutage is the Stale of a cache in front of another service or a
// database: it rides out what errcode.Outage calls an outage with values
// at most maxAge old.
func OnOutage(maxAge time.Duration) Stale {
	return Stale{MaxAge: maxAge, Outage: errcode.Outage}
}

// Negative is how long a Loader remembers that a key does not exist: a
// load that fails with an error Absent accepts is answered again, for
// TTL, without asking the source, so ids that do not exist (a scan, a
// bot, a stale link) cost the database one read per id and TTL.
type Negative struct {
	TTL    time.Duration
	Absent func(error) bool
}

// NegativeTTL is how long the catalogue caches remember an id that does
// not exist: short, since a product or activity created a moment later
// must be found soon (the creating replica invalidates its own entry at
// once).
const NegativeTTL = time.Second

// New returns a cache of load's values, bounded to DefaultMaxEntries.
// Errors are not cached unless WithNegative says so.
func New[K comparable, V any](ttl time.Duration, c clock.Clock, load func(context.Context, K) (V, error)) *Loader[K, V] {
	l := &Loader[K, V]{ttl: ttl, load: load, clock: c}
	return l.WithMaxEntries(DefaultMaxEntries)
}

// WithMaxEntries bounds l to n entries (least recently used evicted
// first). Call it before the first Get: it starts l empty.
func (l *Loader[K, V]) WithMaxEntries(n int) *Loader[K, V] {
	entries, err := lru.NewWithEvict(n, func(classed[K], entry[V]) { l.evictions.Add(1) })
	if err != nil {
		panic(fmt.Sprintf("cache: %d entries: %v", n, err))
	}
	l.entries = entries
	return l
}

// WithStale makes l serve stale values during its source's outages.
func (l *Loader[K, V]) WithStale(s Stale) *Loader[K, V] {
	l.stale = s
	return l
}

// WithNegative makes l remember the keys its source says do not exist.
func (l *Loader[K, V]) WithNegative(n Negative) *Loader[K, V] {
	l.negative = n
	return l
}

// WithRefreshAhead makes a hit in the last share (0 < share < 1) of an
// entry's TTL start one background reload of it (refresh-ahead), so a key
// read all the time is replaced before it expires and its readers never
// wait for a load (缓存击穿 avoided rather than merely made single). A
// failed reload leaves the entry as it was.
func (l *Loader[K, V]) WithRefreshAhead(share float64) *Loader[K, V] {
	if share <= 0 || share >= 1 {
		panic(fmt.Sprintf("cache: refresh-ahead share %v is not in (0, 1)", share))
	}
	l.ahead = share
	return l
}

// RefreshAhead is the share of their TTL in which the catalogue caches
// reload a key that is being read: the last fifth.
const RefreshAhead = 0.2

// expiry is when an entry loaded at now expires: ttl less a random tenth
// of it, never later than ttl.
func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl < 10 {
		return now.Add(ttl)
	}
	return now.Add(ttl - rand.N(ttl/10))
}

// fresh is an entry for v loaded at now.
func (l *Loader[K, V]) fresh(v V, now time.Time) entry[V] {
	e := entry[V]{val: v, loaded: now, expires: expiry(now, l.ttl)}
	e.refresh = e.expires
	if l.ahead > 0 {
		e.refresh = e.expires.Add(-time.Duration(float64(e.expires.Sub(now)) * l.ahead))
	}
	return e
}

// Get returns the cached value for k, loading it when absent or expired,
// in ctx's traffic class.
func (l *Loader[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	k := in(ctx, key)
	if e, ok := l.entries.Get(k); ok {
		if now := l.clock.Now(); now.Before(e.expires) {
			switch {
			case e.absent != nil:
				l.negativeAnswers.Add(1)
				return zero, e.absent
			case e.stale:
				l.staleAnswers.Add(1)
			default:
				l.hits.Add(1)
				if l.ahead > 0 && !now.Before(e.refresh) {
					l.refreshAhead(ctx, k)
				}
			}
			return e.val, nil
		}
	}
	l.misses.Add(1)
	got, err, _ := l.group.Do(k.flightKey(), func() (any, error) { return l.fill(ctx, k) })
	if err != nil {
		return zero, err
	}
	e := got.(entry[V])
	if e.stale {
		l.staleAnswers.Add(1)
	}
	return e.val, nil
}

// fill loads k and stores what the load says: a value, a remembered
// absence, or (during an outage) the last value marked stale. It runs in
// the key's singleflight.
func (l *Loader[K, V]) fill(ctx context.Context, k classed[K]) (any, error) {
	// The load must not be cut short by one caller's cancellation,
	// since other callers share its result.
	v, err := l.load(context.WithoutCancel(ctx), k.key)
	now := l.clock.Now()
	switch {
	case err == nil:
		e := l.fresh(v, now)
		l.entries.Add(k, e)
		return e, nil
	case l.negative.Absent != nil && l.negative.Absent(err):
		l.entries.Add(k, entry[V]{absent: err, loaded: now, expires: now.Add(l.negative.TTL)})
		return nil, err
	}
	last, ok := l.entries.Peek(k)
	if !ok || last.absent != nil || l.stale.Outage == nil || !l.stale.Outage(err) || now.Sub(last.loaded) > l.stale.MaxAge {
		return nil, err
	}
	last.expires, last.stale = now.Add(l.ttl), true
	l.entries.Add(k, last)
	return last, nil
}

// refreshAhead reloads k in the background unless a reload of it is
// under way; the reload shares the key's singleflight with any miss.
func (l *Loader[K, V]) refreshAhead(ctx context.Context, k classed[K]) {
	if _, busy := l.refreshing.LoadOrStore(k, struct{}{}); busy {
		return
	}
	l.refreshes.Add(1)
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer l.refreshing.Delete(k)
		// An error leaves the entry as it was: the next reader of an
		// expired entry asks the source again (and WithStale applies).
		_, _, _ = l.group.Do(k.flightKey(), func() (any, error) { return l.fill(ctx, k) })
	}()
}

// Set stores v for k as if it had just been loaded: a warm-up (预热)
// fills a cache before the reads come. It fills the real class.
func (l *Loader[K, V]) Set(k K, v V) {
	l.entries.Add(classed[K]{key: k}, l.fresh(v, l.clock.Now()))
}

// Expire makes every entry due: the next Get of each key loads it again,
// and remembered absences are forgotten. The values stay for Cached and
// for WithStale, so a replica that may have missed invalidations (its
// subscription was cut) asks the levels below again without losing the
// copies that keep its pages up while they cannot answer.
func (l *Loader[K, V]) Expire() {
	now := l.clock.Now()
	for _, k := range l.entries.Keys() {
		e, ok := l.entries.Peek(k)
		switch {
		case !ok:
		case e.absent != nil:
			l.entries.Remove(k)
		case now.Before(e.expires):
			e.expires = now
			l.entries.Add(k, e)
		}
	}
}

// Cached returns the last value loaded for k, however old, without
// loading: a degraded reader serves what it has rather than call a
// struggling source. It reads the real class; CachedIn reads ctx's.
func (l *Loader[K, V]) Cached(k K) (V, bool) {
	return l.CachedIn(context.Background(), k)
}

// CachedIn is Cached in ctx's traffic class.
func (l *Loader[K, V]) CachedIn(ctx context.Context, k K) (V, bool) {
	e, ok := l.entries.Peek(in(ctx, k))
	if !ok || e.absent != nil {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Invalidate drops k in both traffic classes, so the next Get loads it
// again (an invalidation names an id, which the classes never share).
func (l *Loader[K, V]) Invalidate(k K) {
	l.entries.Remove(classed[K]{key: k})
	l.entries.Remove(classed[K]{key: k, shadow: true})
}

// Stats is what a cache level did since it was made. For a Loader (Level
// L1): answers from a fresh entry (Hits), loads asked for (Misses: each
// caller that found no fresh entry, whether or not it shared another's
// load), answers from a stale entry during an outage (Stale) and from a
// remembered absence (Negative), background reloads started
// (Refreshes), entries evicted to keep the bound, and entries held now.
// Shared and Filter fill the fields that apply to them (see their Stats).
type Stats struct {
	Level                                            string
	Hits, Misses, Stale, Negative, Refreshes, Errors int64
	Evictions                                        int64
	Entries                                          int
}

// Cache levels, the level label of the metrics.
const (
	// L1 is an in-process Loader.
	L1 = "l1"
	// L2 is the Redis level shared by replicas (Shared).
	L2 = "l2"
	// Bloom is the filter of ids that exist (Filter).
	Bloom = "bloom"
)

// Stats returns l's counts.
func (l *Loader[K, V]) Stats() Stats {
	return Stats{Level: L1, Hits: l.hits.Load(), Misses: l.misses.Load(), Stale: l.staleAnswers.Load(),
		Negative: l.negativeAnswers.Load(), Refreshes: l.refreshes.Load(), Evictions: l.evictions.Load(), Entries: l.entries.Len()}
}
