package cache

// KeyOf is the Redis key of k's value.
func (s *Shared[K, V]) KeyOf(k K) string {
	value, _ := s.keys(k)
	return value
}
