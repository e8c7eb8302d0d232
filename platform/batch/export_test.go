package batch

// Waiting is how many callers wait for a slot in b.
func Waiting[Req, Resp any](b *Batcher[Req, Resp]) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}
