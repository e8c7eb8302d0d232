package loadtest

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// PrintBurst writes the burst's outcome counts, throughput and latency.
func PrintBurst(w io.Writer, res *BurstResult) {
	total := 0
	for _, n := range res.Counts {
		total += n
	}
	fmt.Fprintf(w, "\nBuy attempts: %d in %s (%.0f req/s)\n", total, res.Elapsed.Round(time.Millisecond), res.Throughput())
	for _, o := range Outcomes {
		n := res.Counts[o]
		fmt.Fprintf(w, "  %-14s %7d  %5.1f%%\n", o, n, 100*float64(n)/float64(max(total, 1)))
	}
	l := res.Latency
	us := func(q float64) string { return (time.Duration(l.ValueAtQuantile(q)) * time.Microsecond).String() }
	fmt.Fprintf(w, "Latency: p50 %s  p99 %s  p999 %s  max %s\n", us(50), us(99), us(99.9),
		(time.Duration(l.Max()) * time.Microsecond).String())
	if len(res.ErrorSamples) > 0 {
		fmt.Fprintf(w, "Error samples:\n  %s\n", strings.Join(res.ErrorSamples, "\n  "))
	}
}

// PrintChecks writes each check as PASS or FAIL and reports whether all
// passed.
func PrintChecks(w io.Writer, checks []Check) bool {
	ok := true
	fmt.Fprintln(w, "\nChecks:")
	for _, c := range checks {
		mark := "PASS"
		switch {
		case !c.OK:
			mark, ok = "FAIL", false
		case c.Skipped:
			mark = "SKIP"
		}
		fmt.Fprintf(w, "  %s  %s (%s)\n", mark, c.Name, c.Detail)
	}
	return ok
}
