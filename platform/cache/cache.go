// Package cache is a small in-process read-through cache with a time to
// live, whose concurrent misses for one key make a single load
// (singleflight), so a hot key that expires does not stampede its source,
// and which can ride out its source's outage by serving what it last
// loaded (stale-if-error, WithStale).
package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
)

// Loader caches the values load returns for ttl.
type Loader[K comparable, V any] struct {
	ttl   time.Duration
	load  func(context.Context, K) (V, error)
	clock clock.Clock
	stale Stale

	mu      sync.RWMutex
	entries map[K]entry[V]
	group   singleflight.Group
}

type entry[V any] struct {
	val V
	// loaded is when val came from the source; expires is when Get next
	// asks the source (a stale entry's next try).
	loaded, expires time.Time
	stale           bool
}

// Stale is how a Loader rides out an outage of its source
// (stale-if-error): when a load fails with an error Outage accepts, Get
// answers with the value loaded for the key at most MaxAge ago, and asks
// the source again only once a TTL has passed, so an outage costs one
// failed load per key and TTL instead of one per request, and the callers
// go on without the source. Served, when set, is called for each answer
// given this way. It suits values that do not change once written
// (activities, products) or whose staleness is harmless; a Loader without
// it returns the load's error.
type Stale struct {
	MaxAge time.Duration
	Outage func(error) bool
	Served func()
}

// StaleMaxAge is how old a value the services' caches of the catalogue
// (activities and products, which do not change once created) serve
// during an outage of their source: a sale rides out ten minutes of
// product service or Postgres trouble for the pages read before it.
const StaleMaxAge = 10 * time.Minute

// OnOutage is the Stale of a cache in front of another service or a
// database: it rides out what errcode.Outage calls an outage with values
// at most maxAge old, calling served (when not nil) for each such answer.
func OnOutage(maxAge time.Duration, served func()) Stale {
	return Stale{MaxAge: maxAge, Outage: errcode.Outage, Served: served}
}

// WithStale makes l serve stale values during its source's outages.
func (l *Loader[K, V]) WithStale(s Stale) *Loader[K, V] {
	l.stale = s
	return l
}

// New returns a cache of load's values. Errors are not cached.
func New[K comparable, V any](ttl time.Duration, c clock.Clock, load func(context.Context, K) (V, error)) *Loader[K, V] {
	return &Loader[K, V]{ttl: ttl, load: load, clock: c, entries: map[K]entry[V]{}}
}

// Get returns the cached value for k, loading it when absent or expired.
func (l *Loader[K, V]) Get(ctx context.Context, k K) (V, error) {
	now := l.clock.Now()
	l.mu.RLock()
	e, ok := l.entries[k]
	l.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if e.stale && l.stale.Served != nil {
			l.stale.Served()
		}
		return e.val, nil
	}
	got, err, _ := l.group.Do(fmt.Sprint(k), func() (any, error) {
		// The load must not be cut short by one caller's cancellation,
		// since other callers share its result.
		v, err := l.load(context.WithoutCancel(ctx), k)
		now := l.clock.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		if err == nil {
			e := entry[V]{val: v, loaded: now, expires: now.Add(l.ttl)}
			l.entries[k] = e
			return e, nil
		}
		last, ok := l.entries[k]
		if !ok || l.stale.Outage == nil || !l.stale.Outage(err) || now.Sub(last.loaded) > l.stale.MaxAge {
			return nil, err
		}
		last.expires, last.stale = now.Add(l.ttl), true
		l.entries[k] = last
		return last, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	e = got.(entry[V])
	if e.stale && l.stale.Served != nil {
		l.stale.Served()
	}
	return e.val, nil
}

// Cached returns the last value loaded for k, however old, without
// loading: a degraded reader serves what it has rather than call a
// struggling source.
func (l *Loader[K, V]) Cached(k K) (V, bool) {
	l.mu.RLock()
	e, ok := l.entries[k]
	l.mu.RUnlock()
	return e.val, ok
}

// Invalidate drops k, so the next Get loads it again.
func (l *Loader[K, V]) Invalidate(k K) {
	l.mu.Lock()
	delete(l.entries, k)
	l.mu.Unlock()
}
