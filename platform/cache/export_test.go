package cache

// KeyOf is the Redis key of k's value.
func (s *Shared[K, V]) KeyOf(k K) string {
	value, _ := s.keys(k)
	return value
}

// Held counts the keys m holds, between two stores.
func (m *Memo[K, V]) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	m.m.Range(func(any, any) bool { n++; return true })
	return n
}
