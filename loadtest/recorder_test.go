package loadtest

import (
	"testing"
	"time"
)

// TestLatencyFromScheduledTime checks that a request answered late is
// charged from when it was due, not from when it was sent, and that the
// capacity figure ignores windows whose p99 is over the bound.
func TestLatencyFromScheduledTime(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start)
	// Seconds 0-4: 100 fast answers each (2ms). Seconds 5-9: 300 each,
	// but due long before they were answered (a backlog of 400ms).
	for s := range 10 {
		n, lat := 100, 2*time.Millisecond
		if s >= 5 {
			n, lat = 300, 400*time.Millisecond
		}
		for i := range n {
			due := start.Add(time.Duration(s)*time.Second + time.Duration(i)*time.Second/time.Duration(n))
			r.arrive(due)
			r.done(EndpointSeckill, string(Accepted), due, due.Add(lat))
		}
	}
	secs := r.seconds()
	if got, want := secs[7].SeckillP99, 400.0; got < want*0.99 || got > want*1.01 {
		t.Errorf("second 7 p99 = %gms, want about %gms", got, want)
	}
	c := r.capacity(5, 50)
	if c.PerSec != 100 || c.From != 0 || c.P99 > 3 {
		t.Errorf("capacity = %+v, want 100/s from second 0 with p99 about 2ms", c)
	}
	if got := r.endpointStats(); len(got) != 1 || got[0].Count != 2000 {
		t.Errorf("endpoint stats = %+v, want one row of 2000", got)
	}
}
