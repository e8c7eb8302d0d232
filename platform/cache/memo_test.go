package cache_test

import (
	"sync"
	"testing"

	"github.com/flashsale/flashsale/platform/cache"
)

// TestMemoForgetsPastItsBound runs a memo through far more keys than it
// may hold: it never holds more than its bound, a value stored is found
// right after, and storing a key it holds again forgets nothing.
func TestMemoForgetsPastItsBound(t *testing.T) {
	const bound = 8
	m := cache.NewMemo[int64, int](bound)
	for k := int64(1); k <= 100*bound; k++ {
		m.Store(k, int(k))
		if v, ok := m.Load(k); !ok || v != int(k) {
			t.Fatalf("key %d: load = %d, %v right after its store", k, v, ok)
		}
		if got := m.Held(); got > bound {
			t.Fatalf("after key %d: %d keys held, want at most %d", k, got, bound)
		}
	}
	before := m.Held()
	last := int64(100 * bound)
	m.Store(last, -1)
	if v, _ := m.Load(last); v != -1 || m.Held() != before {
		t.Errorf("storing a held key again: value %d, %d keys held; want -1, %d", v, m.Held(), before)
	}
}

// TestMemoUnderConcurrentStores has goroutines store far more keys than
// the bound at once, checking the bound after every store: however the
// forgetting interleaves with them, the memo never holds more than its
// bound, and every value it answers is the one stored for its key.
func TestMemoUnderConcurrentStores(t *testing.T) {
	const bound, writers, each = 16, 4, 2000
	m := cache.NewMemo[int, int](bound)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := w*each + i
				m.Store(k, -k)
				if v, ok := m.Load(k); ok && v != -k {
					t.Errorf("key %d: load = %d, want %d", k, v, -k)
					return
				}
				if got := m.Held(); got > bound {
					t.Errorf("after key %d: %d keys held, want at most %d", k, got, bound)
					return
				}
			}
		})
	}
	wg.Wait()
}
