package redis

import (
	"sync"
	"sync/atomic"
)

// memo remembers values that never change once known (a sale's number
// of buckets, a bucket's tag) for at most max keys: the key that would
// pass the bound first makes it forget them all, and each is found again
// on its next use. So a process that serves sale after sale holds a
// bounded set, not an entry for every sale it ever saw (nothing tells
// the store that a sale is over), and a read stays a lock-free load.
// It is safe for concurrent use; racing stores may pass the bound by as
// many keys as they are.
type memo[K comparable, V any] struct {
	max int64
	n   atomic.Int64 // keys stored since the last time it forgot them all
	m   sync.Map     // K -> V
}

func newMemo[K comparable, V any](max int64) *memo[K, V] { return &memo[K, V]{max: max} }

// load returns k's value, if remembered.
func (m *memo[K, V]) load(k K) (V, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

// store remembers k's value, first forgetting them all if k is new and
// would pass the bound.
func (m *memo[K, V]) store(k K, v V) {
	if _, ok := m.m.Load(k); !ok && m.n.Add(1) > m.max {
		m.m.Clear()
		m.n.Store(1)
	}
	m.m.Store(k, v)
}
