package drive

import (
	"testing"
	"time"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
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
			r.done(EndpointSeckill, string(result.Accepted), due, due.Add(lat))
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

// TestPhaseSplitsAnsweredFromRefused checks that a seckill phase reports
// the answered buys, the sold-out answers among them and the 429s apart:
// their rates, counts and p99s, and only for the buys due within the
// phase.
func TestPhaseSplitsAnsweredFromRefused(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start)
	// Seconds 0-1 (before the phase): slow answers that must not count.
	// Seconds 2-5: 100 answered a second, half accepted in 20ms, half
	// sold out in 5ms, and 50 refused in 1ms (rate limited or
	// overloaded).
	for s := range 6 {
		for i := range 100 {
			due := start.Add(time.Duration(s)*time.Second + time.Duration(i)*10*time.Millisecond)
			lat, out := 20*time.Millisecond, result.Accepted
			if s < 2 {
				lat = time.Second
			}
			if i%2 == 0 {
				out = result.SoldOut
				if s >= 2 {
					lat = 5 * time.Millisecond
				}
			}
			r.done(EndpointSeckill, string(out), due, due.Add(lat))
			if i%2 == 0 {
				refused := result.RateLimited
				if i%4 == 0 {
					refused = result.Overloaded
				}
				r.done(EndpointSeckill, string(refused), due, due.Add(time.Millisecond))
			}
		}
	}
	p := result.PhaseStat{Kind: scenario.PhaseSeckill, StartS: 2, EndS: 6}
	r.phaseSeckill(&p)
	if p.AnsweredPerS != 100 || p.Refused != 200 {
		t.Errorf("answered %.1f/s, refused %d; want 100/s and 200", p.AnsweredPerS, p.Refused)
	}
	if p.AnsweredP99 < 19.8 || p.AnsweredP99 > 20.2 || p.RefusedP99 < 0.99 || p.RefusedP99 > 1.01 {
		t.Errorf("answered p99 %.2fms, refused p99 %.2fms; want about 20 and 1", p.AnsweredP99, p.RefusedP99)
	}
	if p.SoldOut != 200 || p.SoldOutP99 < 4.95 || p.SoldOutP99 > 5.05 {
		t.Errorf("sold out %d, p99 %.2fms; want 200 in about 5", p.SoldOut, p.SoldOutP99)
	}
}

// TestFaultWindowCountsFailuresAndRecovery checks a fault's window: the
// requests due while it was on, the ones answered 5xx or not at all (429s
// are answers), their p99, and the seconds from the lift until two
// healthy seconds in a row.
func TestFaultWindowCountsFailuresAndRecovery(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start)
	// Seconds 0-1 healthy; 2-4 (the fault, on at 2.0, off at 4.5): half
	// the buys 503 after 300 ms, a quarter refused with 429; second 5
	// still failing one in ten; seconds 6 and 7 healthy, then 8 empty.
	for s := range 8 {
		for i := range 40 {
			due := start.Add(time.Duration(s)*time.Second + time.Duration(i)*20*time.Millisecond)
			lat, out := 10*time.Millisecond, string(result.Accepted)
			switch {
			case s >= 2 && s <= 4 && i%2 == 0:
				lat, out = 300*time.Millisecond, "unavailable"
			case s >= 2 && s <= 4 && i%4 == 1:
				out = string(result.Overloaded)
			case s == 5 && i%10 == 0:
				out = string(result.Failed)
			}
			r.done(EndpointSeckill, out, due, due.Add(lat))
		}
	}
	f := result.FaultStat{OnS: 2, OffS: 4.5}
	r.faultWindow(&f)
	if f.Requests != 120 || f.Failures != 60 || f.FailureRate != 0.5 {
		t.Errorf("window: %d requests, %d failed (%.2f); want 120, 60 (0.50)", f.Requests, f.Failures, f.FailureRate)
	}
	if f.P99 < 297 || f.P99 > 303 {
		t.Errorf("window p99 %.1f ms, want about 300", f.P99)
	}
	if f.RecoveredS != 1.5 {
		t.Errorf("recovered %.1f s after the lift, want 1.5 (second 6 is the first of two healthy ones)", f.RecoveredS)
	}

	// A fault lifted at 5 whose platform never has two healthy seconds
	// with requests before the end has not recovered.
	late := result.FaultStat{OnS: 5, OffS: 7.2}
	r.faultWindow(&late)
	if late.RecoveredS != -1 {
		t.Errorf("recovered %.1f s after a lift with one healthy second left, want -1", late.RecoveredS)
	}
}
