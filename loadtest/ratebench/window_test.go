package ratebench

import (
	"testing"
	"time"
)

func at(ms float64) time.Time { return epoch.Add(time.Duration(ms * float64(time.Millisecond))) }

// admitCount offers n requests at time t and counts the admitted.
func admitCount(l interface{ Allow(time.Time) bool }, t time.Time, n int) int {
	got := 0
	for range n {
		if l.Allow(t) {
			got++
		}
	}
	return got
}

// The fixed window's known fault: a full window's worth at the end of
// one window and another at the start of the next, 2 ms apart: twice
// the limit in a span far shorter than a window.
func TestFixedWindowDoubleBurstAtBoundary(t *testing.T) {
	f := &FixedWindow{Limit: 20, Window: 200 * time.Millisecond}
	if got := admitCount(f, at(199), 30); got != 20 {
		t.Fatalf("end of first window: admitted %d, want 20", got)
	}
	if got := admitCount(f, at(201), 30); got != 20 {
		t.Fatalf("start of next window: admitted %d, want 20 (a fresh counter)", got)
	}
	if got := admitCount(f, at(399), 5); got != 0 {
		t.Fatalf("rest of the window: admitted %d, want 0", got)
	}
}

func TestFixedWindowForgetsAfterAGap(t *testing.T) {
	f := &FixedWindow{Limit: 3, Window: time.Second}
	admitCount(f, at(0), 3)
	// Several windows later (not the next one): a fresh count.
	if got := admitCount(f, at(5000), 5); got != 3 {
		t.Fatalf("admitted %d, want 3", got)
	}
}

// The sliding log never admits more than the limit in any window, also
// across the boundary where the fixed window doubles.
func TestSlidingLogHoldsAtBoundary(t *testing.T) {
	s := &SlidingLog{Limit: 20, Window: 200 * time.Millisecond}
	if got := admitCount(s, at(199), 30); got != 20 {
		t.Fatalf("admitted %d, want 20", got)
	}
	if got := admitCount(s, at(201), 30); got != 0 {
		t.Fatalf("2 ms later: admitted %d, want 0", got)
	}
	// An entry leaves exactly Window after it was admitted: at 399 ms
	// the entries of 199 ms are still in (199, 399]; at 399 ms + 1 ns
	// they are not.
	if got := admitCount(s, at(398.999), 1); got != 0 {
		t.Fatalf("just inside the window: admitted %d, want 0", got)
	}
	if got := admitCount(s, at(399), 30); got != 20 {
		t.Fatalf("one window after: admitted %d, want 20", got)
	}
}

// Entries leave one at a time in the order they came, so the log refills
// exactly as fast as its oldest entries age out (the ring wraps).
func TestSlidingLogAgesOutOneByOne(t *testing.T) {
	s := &SlidingLog{Limit: 3, Window: 100 * time.Millisecond}
	for i, ms := range []float64{0, 10, 20} {
		if !s.Allow(at(ms)) {
			t.Fatalf("request %d refused", i)
		}
	}
	steps := []struct {
		ms   float64
		want bool
	}{{50, false}, {100, true}, {105, false}, {110, true}, {120, true}, {121, false}, {200, true}}
	for _, st := range steps {
		if got := s.Allow(at(st.ms)); got != st.want {
			t.Fatalf("at %v ms: admitted %v, want %v", st.ms, got, st.want)
		}
	}
}

// The sliding counter assumes the previous window's requests were spread
// evenly. Bunched at its end, they are under-counted: halfway through
// the next window it has admitted Limit/2 more although Limit were
// admitted 101 ms before: 1.5× the limit within one real window.
func TestSlidingCounterOverAdmitsAfterALateBurst(t *testing.T) {
	s := &SlidingCounter{Limit: 20, Window: 200 * time.Millisecond}
	if got := admitCount(s, at(199), 30); got != 20 {
		t.Fatalf("admitted %d, want 20", got)
	}
	if got := admitCount(s, at(201), 30); got != 1 {
		t.Fatalf("just after the boundary: admitted %d, want 1 (estimate 20×0.995 = 19.9)", got)
	}
	if got := admitCount(s, at(300), 30); got != 9 {
		t.Fatalf("halfway: admitted %d, want 9 (estimate 20×0.5 + 1)", got)
	}
}

// Bunched at its start, they are over-counted: early in the next window
// it still refuses although nothing was admitted in the last 190 ms.
func TestSlidingCounterUnderAdmitsAfterAnEarlyBurst(t *testing.T) {
	s := &SlidingCounter{Limit: 20, Window: 200 * time.Millisecond}
	admitCount(s, at(0), 20)
	if got := admitCount(s, at(210), 30); got != 1 {
		t.Fatalf("admitted %d, want 1 (estimate 20×0.95 = 19)", got)
	}
}

func TestSlidingCounterForgetsAfterAGap(t *testing.T) {
	s := &SlidingCounter{Limit: 20, Window: 200 * time.Millisecond}
	admitCount(s, at(199), 20)
	if got := admitCount(s, at(450), 30); got != 20 {
		t.Fatalf("two windows later: admitted %d, want 20", got)
	}
}

func TestTraceIsDeterministicAndBursty(t *testing.T) {
	a, b := DefaultTrace.Arrivals(), DefaultTrace.Arrivals()
	if len(a) != len(b) || a[len(a)/2] != b[len(b)/2] {
		t.Fatal("two draws of the same trace differ")
	}
	var in, out int
	for _, x := range a {
		if DefaultTrace.inBurst(x) {
			in++
		} else {
			out++
		}
	}
	// 3 bursts of 0.3 s at 1,000/s and 2.1 s at 200/s: about 900 and 420.
	if in < 800 || in > 1000 || out < 340 || out > 500 {
		t.Fatalf("arrivals in bursts %d, outside %d; want about 900 and 420", in, out)
	}
	for i := 1; i < len(a); i++ {
		if a[i] < a[i-1] {
			t.Fatalf("arrival %d before arrival %d", i, i-1)
		}
	}
}
