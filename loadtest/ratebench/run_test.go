package ratebench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// stack is the real Redis the GCRA limiter runs against.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{}, func(s *localstack.Stack) { stack = s })
}

// A short run: one burst (0.5-0.8 s) in 1.2 s of trace.
func shortRun(t *testing.T) *Report {
	t.Helper()
	cfg := DefaultConfig(stack.RedisAddr)
	cfg.Trace.Duration = 1200 * time.Millisecond
	cfg.Keys = 20_000
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRunProperties(t *testing.T) {
	rep := shortRun(t)
	cfg := rep.Config
	if got := sum(rep.Offered); got != rep.Arrivals {
		t.Fatalf("offered %d, arrivals %d", got, rep.Arrivals)
	}
	window := time.Duration(cfg.Burst) * time.Second / time.Duration(cfg.Rate)
	byName := map[string]Result{}
	for _, r := range rep.Results {
		byName[strings.SplitN(r.Name, " (", 2)[0]] = r
		if r.TotalAdmitted()+r.TotalRefused() != rep.Arrivals {
			t.Errorf("%s: admitted %d + refused %d != %d arrivals", r.Name, r.TotalAdmitted(), r.TotalRefused(), rep.Arrivals)
		}
		if r.TotalAdmitted() == 0 {
			t.Errorf("%s admitted nothing", r.Name)
		}
		if r.BytesPerKey <= 0 {
			t.Errorf("%s: %v bytes per key", r.Name, r.BytesPerKey)
		}
	}
	if len(byName) != 7 {
		t.Fatalf("limiters %v, want 7", len(byName))
	}

	// The token bucket never admits more than rate×t + burst in any span
	// t (on the virtual clock, exactly).
	tb := byName["token bucket"]
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, window, 500 * time.Millisecond, time.Second} {
		bound := int(float64(cfg.Rate)*d.Seconds()) + cfg.Burst
		if got := MaxInSpan(tb.AdmittedAt, d); got > bound {
			t.Errorf("token bucket admitted %d within %s, bound %d", got, d, bound)
		}
	}
	// The burst is far above the rate, so the bucket was emptied: refusals.
	if tb.TotalRefused() == 0 {
		t.Error("token bucket refused nothing under a 10× burst")
	}

	// The fixed window admits more than its limit within one window's
	// span (the boundary), at most twice; the sliding log never does.
	fw, sl := byName["fixed window"], byName["sliding log"]
	if fw.MostInWindow != MaxInSpan(fw.AdmittedAt, window) {
		t.Errorf("fixed window: MostInWindow %d, not its most within %s", fw.MostInWindow, window)
	}
	if got := MaxInSpan(fw.AdmittedAt, window); got <= cfg.Burst || got > 2*cfg.Burst {
		t.Errorf("fixed window: most admitted within %s = %d, want in (%d, %d]", window, got, cfg.Burst, 2*cfg.Burst)
	}
	if got := MaxInSpan(sl.AdmittedAt, window); got > cfg.Burst {
		t.Errorf("sliding log: most admitted within %s = %d, want <= %d", window, got, cfg.Burst)
	}

	// GCRA: one round trip (one EVALSHA) per decision once the script is
	// loaded, and the burst refused in part.
	g := byName["GCRA"]
	if g.RoundTrips != 1 {
		t.Errorf("GCRA: %v round trips per decision, want 1", g.RoundTrips)
	}
	if g.TotalRefused() == 0 {
		t.Error("GCRA refused nothing under a 10× burst")
	}
	// The leaky bucket's queue holds burst: a 1,000/s burst overflows it.
	if lb := byName["leaky bucket"]; lb.TotalRefused() == 0 {
		t.Error("leaky bucket refused nothing under a 10× burst")
	}
	// The adaptive limit's bound stays within the gateway's limits.
	ad := byName["adaptive concurrency"]
	for i, l := range ad.Limit {
		if l < 8 || l > 2000 {
			t.Errorf("adaptive bound %d in bucket %d, outside [8, 2000]", l, i)
		}
	}
	// In-process limiters make no round trips.
	for _, name := range []string{"fixed window", "sliding log", "sliding counter", "token bucket", "leaky bucket", "adaptive concurrency"} {
		if byName[name].RoundTrips != 0 {
			t.Errorf("%s: %v round trips", name, byName[name].RoundTrips)
		}
	}

	var table, page bytes.Buffer
	PrintTable(&table, rep)
	if got := strings.Count(table.String(), "\n| "); got != 1+7 {
		t.Errorf("table has %d rows, want a header and 7 limiters:\n%s", got, table.String())
	}
	if err := WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	// Three charts: offered and the 7 limiters; the 6 rate limiters;
	// the adaptive limit's offered, admitted, refused and bound.
	if got := strings.Count(page.String(), `<polyline class="series"`); got != 8+6+4 {
		t.Errorf("page has %d chart lines, want 18", got)
	}
}
