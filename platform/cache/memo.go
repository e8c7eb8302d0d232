package cache

import "sync"

// Memo remembers values that never change once known (a sale's number of
// buckets, a verified token's claims) for at most a bound of keys: the
// key that would pass the bound first makes it forget them all, and each
// is found again on its next use. So a process that serves sale after
// sale, or buyer after buyer, holds a bounded set and not an entry for
// everything it ever saw, while a read stays a lock-free load on the hot
// path. Unlike a Loader it neither expires nor loads: what a value means
// must not depend on when it was stored. It is safe for concurrent use.
// Stores take a lock (they are rare: a key's first use), which keeps the
// count exact, so it never holds more than its bound.
type Memo[K comparable, V any] struct {
	max int
	m   sync.Map // K -> V; read without the lock

	mu sync.Mutex // held by stores
	n  int        // keys stored since the last time it forgot them all
}

// NewMemo returns an empty memo of at most max keys.
func NewMemo[K comparable, V any](max int) *Memo[K, V] {
	return &Memo[K, V]{max: max}
}

// Load returns k's value, if remembered.
func (m *Memo[K, V]) Load(k K) (V, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

// Store remembers k's value, first forgetting them all if k is new and
// would pass the bound.
func (m *Memo[K, V]) Store(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m.Load(k); !ok {
		if m.n >= m.max {
			m.m.Clear()
			m.n = 0
		}
		m.n++
	}
	m.m.Store(k, v)
}
