package redis

import "testing"

// TestMemoForgetsPastItsBound runs a memo through far more keys than it
// may hold: it never holds more than its bound, a value stored is found
// right after, and storing a key it holds again forgets nothing.
func TestMemoForgetsPastItsBound(t *testing.T) {
	const bound = 8
	m := newMemo[int64, int](bound)
	held := func() int {
		n := 0
		m.m.Range(func(any, any) bool { n++; return true })
		return n
	}
	for k := int64(1); k <= 100*bound; k++ {
		m.store(k, int(k))
		if v, ok := m.load(k); !ok || v != int(k) {
			t.Fatalf("key %d: load = %d, %v right after its store", k, v, ok)
		}
		if got := held(); got > bound {
			t.Fatalf("after key %d: %d keys held, want at most %d", k, got, bound)
		}
	}
	before := held()
	last := int64(100 * bound)
	m.store(last, -1)
	if v, _ := m.load(last); v != -1 || held() != before {
		t.Errorf("storing a held key again: value %d, %d keys held; want -1, %d", v, held(), before)
	}
}
