package ratebench

import "time"

// The three window limiters below are written for this comparison (no
// library the platform trusts offers them); they are single-key and not
// safe for concurrent use, since the bench drives each from one
// goroutine on a virtual clock. Each admits at most Limit requests per
// Window and differs in where it draws the window.

// FixedWindow counts requests in windows aligned to multiples of Window
// since the Unix epoch (计数器/固定窗口): cheap (one counter) but blind at
// the boundary, where the end of one window and the start of the next
// can together admit 2×Limit within a few milliseconds.
type FixedWindow struct {
	Limit  int
	Window time.Duration
	cur    int64 // index of the current window
	count  int
}

// Allow admits one request at now if its window has room.
func (f *FixedWindow) Allow(now time.Time) bool {
	if idx := now.UnixNano() / int64(f.Window); idx != f.cur {
		f.cur, f.count = idx, 0
	}
	if f.count >= f.Limit {
		return false
	}
	f.count++
	return true
}

// SlidingLog keeps the time of every request it admitted within the last
// Window (滑动窗口, exact form): a request is admitted when fewer than
// Limit were admitted in (now-Window, now]. Exact at any boundary, at
// the cost of Limit timestamps per key.
type SlidingLog struct {
	Limit  int
	Window time.Duration
	ring   []int64 // admitted times (Unix ns), oldest at head
	head   int
	n      int
}

// Allow admits one request at now if fewer than Limit were admitted in
// the Window before it.
func (s *SlidingLog) Allow(now time.Time) bool {
	if s.ring == nil {
		s.ring = make([]int64, s.Limit)
	}
	t := now.UnixNano()
	for s.n > 0 && s.ring[s.head] <= t-int64(s.Window) {
		s.head = (s.head + 1) % s.Limit
		s.n--
	}
	if s.n >= s.Limit {
		return false
	}
	s.ring[(s.head+s.n)%s.Limit] = t
	s.n++
	return true
}

// SlidingCounter estimates the count of the sliding window from two fixed
// windows' counters (滑动窗口, approximate form): the previous window's
// count weighted by how much of it still overlaps (now-Window, now],
// plus the current window's. Two counters per key; it assumes the
// previous window's requests were spread evenly, so it admits more than
// Limit in a real sliding window when they were bunched at its end, and
// fewer when they were bunched at its start.
type SlidingCounter struct {
	Limit       int
	Window      time.Duration
	cur         int64
	prev, count int
}

// Allow admits one request at now if the estimated count is under Limit.
func (s *SlidingCounter) Allow(now time.Time) bool {
	t := now.UnixNano()
	w := int64(s.Window)
	switch idx := t / w; {
	case idx == s.cur+1:
		s.cur, s.prev, s.count = idx, s.count, 0
	case idx != s.cur:
		s.cur, s.prev, s.count = idx, 0, 0
	}
	elapsed := float64(t-s.cur*w) / float64(w)
	if float64(s.prev)*(1-elapsed)+float64(s.count) >= float64(s.Limit) {
		return false
	}
	s.count++
	return true
}
