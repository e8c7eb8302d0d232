// Package cache is a small in-process read-through cache with a time to
// live, whose concurrent misses for one key make a single load
// (singleflight), so a hot key that expires does not stampede its source.
package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flashsale/flashsale/platform/clock"
)

// Loader caches the values load returns for ttl.
type Loader[K comparable, V any] struct {
	ttl   time.Duration
	load  func(context.Context, K) (V, error)
	clock clock.Clock

	mu      sync.RWMutex
	entries map[K]entry[V]
	group   singleflight.Group
}

type entry[V any] struct {
	val     V
	expires time.Time
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
		return e.val, nil
	}
	v, err, _ := l.group.Do(fmt.Sprint(k), func() (any, error) {
		// The load must not be cut short by one caller's cancellation,
		// since other callers share its result.
		v, err := l.load(context.WithoutCancel(ctx), k)
		if err != nil {
			return v, err
		}
		l.mu.Lock()
		l.entries[k] = entry[V]{val: v, expires: l.clock.Now().Add(l.ttl)}
		l.mu.Unlock()
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
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
