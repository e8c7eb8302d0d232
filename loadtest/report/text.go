// Package report writes a load-test run for people: the text report on
// the terminal, report.json (the result as it is), and report.html, a
// self-contained page of tables and inline SVG charts whose template is
// report.html.tmpl, embedded.
package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// Print writes the replay's text report: phases, features,
// endpoints by outcome with latency percentiles, sales, follow-ups and the
// capacity figure.
func Print(w io.Writer, res *result.Replay) {
	fmt.Fprintf(w, "\nReplay %s against %s: %d users, %.1fs\n", res.Scenario, res.Target, res.Users, res.ElapsedS)
	if res.PressureTest {
		fmt.Fprintln(w, "Pressure test (全链路压测): every request marked, the sale in shadow storage")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nphase\tkind\tfrom\tto\tpeak/s\tsent\tanswered/s\tanswered p99 ms\tsold out p99 ms\trefused (429)\trefused p99 ms\tstatus")
	for _, p := range res.Phases {
		seckill := "\t\t\t\t"
		if p.Kind == scenario.PhaseSeckill && p.Status == "ran" {
			soldOut := "-"
			if p.SoldOut > 0 {
				soldOut = fmt.Sprintf("%.1f", p.SoldOutP99)
			}
			seckill = fmt.Sprintf("%.0f\t%.1f\t%s\t%d\t%.1f", p.AnsweredPerS, p.AnsweredP99, soldOut, p.Refused, p.RefusedP99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0fs\t%.0fs\t%.0f\t%d\t%s\t%s\n", p.Name, p.Kind, p.StartS, p.EndS, p.PeakRPS, p.Sent, seckill, p.Status)
	}
	tw.Flush()
	if t := res.GatewayTimes; t != nil {
		fmt.Fprintln(w, "Flash-sale answers timed inside the gateway (its histogram, the whole run; the client's figures above add the wait for a connection and a core):")
		for _, f := range []struct {
			name string
			t    *result.Timing
		}{{"refused (429)", t.Refused}, {"sold out", t.SoldOut}} {
			if f.t != nil {
				fmt.Fprintf(w, "  %-13s %d, p50 %s, p99 %s\n", f.name, f.t.Count, atMost(f.t.P50Ms), atMost(f.t.P99Ms))
			}
		}
	}
	fmt.Fprintln(w, "\nOptional endpoints:")
	for _, f := range res.Features {
		status := "available"
		if !f.Available {
			status = f.Reason
		}
		fmt.Fprintf(w, "  %-11s %-40s %s\n", f.Name, f.Endpoint, status)
	}
	for _, f := range res.Faults {
		fmt.Fprintf(w, "  fault %s: %s\n", f.Fault, f.Status)
	}
	printFaultWindows(w, res.Faults)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nendpoint\toutcome\tcount\tp50 ms\tp90 ms\tp99 ms\tp999 ms\tmax ms\t")
	for _, e := range res.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", e.Endpoint, e.Outcome, e.Count, e.P50, e.P90, e.P99, e.P999, e.Max)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nFlash sales:")
	for _, a := range res.Activities {
		s := res.Sales[a.Key]
		challenge := ""
		if a.Challenge {
			challenge = fmt.Sprintf("  challenge (refused by the wall %d)", s.Counts[result.Walled])
		}
		fmt.Fprintf(w, "  %-14s stock %6d  limit %d  accepted %6d  replays %5d  sold out %7d  limited %6d  not active %6d  rate limited %6d  overloaded %6d  errors %d%s\n",
			a.Key, a.Stock, a.PerUserLimit, a.Accepted, s.Counts[result.Replayed], s.Counts[result.SoldOut], s.Counts[result.LimitExceeded],
			s.Counts[result.NotActive], s.Counts[result.RateLimited], s.Counts[result.Overloaded], s.Counts[result.Failed], challenge)
	}
	printBots(w, res.Bots)
	f := res.FollowUps
	fmt.Fprintf(w, "Buyers after the sale: paid %d (of them %d late, %d twice; failed %d), cancelled %d (failed %d), asked refunds %d (failed %d), abandoned %d, late payers cut off by the drain %d, skipped (endpoint not available) %d\n",
		f.Paid, f.LatePaid, f.Duplicated, f.PayFailed, f.Cancelled, f.CancelFailed, f.Refunded, f.RefundFailed, f.Abandoned, f.LateCutOff, f.Skipped)
	if c := res.Coupons; c.Templates > 0 {
		fmt.Fprintf(w, "Coupons: %d templates, %d claimed (%d refused), %d used in checkouts, %d refused below threshold\n",
			c.Templates, c.Claimed, c.ClaimFailed, c.Used, c.Refused)
	}
	printPayments(w, res)
	c := res.Capacity
	if c.PerSec == 0 {
		fmt.Fprintf(w, "\nCapacity: no %ds window of flash-sale answers had p99 ≤ %.0f ms\n", c.Window, c.P99Bound)
	} else {
		fmt.Fprintf(w, "\nCapacity: %.0f flash-sale requests/s answered with p99 %.1f ms (best %ds window from t=%ds, bound p99 ≤ %.0f ms)\n",
			c.PerSec, c.P99, c.Window, c.From, c.P99Bound)
	}
	if res.Ceiling != nil && res.Ceiling.PerSec > 0 {
		fmt.Fprintf(w, "Ceiling: %s %.0f/s in the same run; ratio %.3f\n", res.Ceiling.Name, res.Ceiling.PerSec, c.PerSec/res.Ceiling.PerSec)
	}
	if len(res.Caches) > 0 {
		fmt.Fprintln(w, cacheLine(res.Caches))
	}
}

// printBots writes what the bots' requests were answered: by the wall
// that refused them (the error code), overall and by trick.
func printBots(w io.Writer, b *result.BotStats) {
	if b == nil {
		return
	}
	total, placed := b.Total()
	fmt.Fprintf(w, "Bots: %d accounts sent %d requests, %d placed; answered:", b.Accounts, total, placed)
	all := b.ByOutcome()
	for _, o := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(w, " %s %d", o, all[o])
	}
	fmt.Fprintln(w)
	for _, t := range result.BotTricks {
		got := b.Answers[t]
		if len(got) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-19s", t)
		for _, o := range slices.Sorted(maps.Keys(got)) {
			fmt.Fprintf(w, " %s %d", o, got[o])
		}
		fmt.Fprintln(w)
	}
}

// printFaultWindows writes, for each fault that ran, what the requests due
// while it was on got and how soon the platform recovered after its lift.
func printFaultWindows(w io.Writer, faults []result.FaultStat) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, f := range faults {
		if !f.Ran() {
			continue
		}
		if !header {
			fmt.Fprintf(tw, "\nfault window\ton s\toff s\trequests\t5xx or none\tshare\tp99 ms\trecovered after s\t\n")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%d\t%d\t%.1f%%\t%.1f\t%s\t\n", f.Fault, f.OnS, f.OffS, f.Requests, f.Failures,
			100*f.FailureRate, f.P99, recovered(f))
	}
	tw.Flush()
}

// recovered says how soon after its lift the platform recovered from f.
func recovered(f result.FaultStat) string {
	if f.RecoveredS < 0 {
		return "not before the end"
	}
	return fmt.Sprintf("%.1f", f.RecoveredS)
}

// printPayments writes the per-channel payment table and where the
// accepted orders ended.
func printPayments(w io.Writer, res *result.Replay) {
	if len(res.Channels) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\nchannel\topened\tpay p50 ms\tpay p99 ms\tconfirmed\twallet p50 ms\twallet p99 ms\tsucceeded\trefunded\tfailed\tpaying\t")
		for _, c := range res.Channels {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t\n", c.Channel, c.Opened, c.PayP50, c.PayP99,
				c.Confirmed, c.WalletP50, c.WalletP99, c.Final["SUCCEEDED"], c.Final["REFUNDED"], c.Final["FAILED"], c.Final["PAYING"])
		}
		tw.Flush()
	}
	if o := res.Orders; o != nil {
		fmt.Fprintf(w, "Orders at the end: %s; flash-sale units released %d\n", result.Tally(o.ByStatus), o.ReleasedUnits)
		fmt.Fprintf(w, "Payments at the end: %s; automatic refunds %d (late %d, duplicate %d); refunded in full with their order %d\n",
			result.Tally(o.Payments), o.LateRefunds+o.DuplicateRefunds, o.LateRefunds, o.DuplicateRefunds, o.BuyerRefunds)
	}
}

// PrintBurst writes the burst's outcome counts, throughput and latency.
func PrintBurst(w io.Writer, res *result.Sale) {
	total := 0
	for _, n := range res.Counts {
		total += n
	}
	fmt.Fprintf(w, "\nBuy attempts: %d in %s (%.0f req/s)\n", total, res.Elapsed.Round(time.Millisecond), res.Throughput())
	for _, o := range result.Outcomes {
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
func PrintChecks(w io.Writer, checks []result.Check) bool {
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

// atMost writes a histogram bucket's bound as the bound on a quantile.
func atMost(ms float64) string {
	if ms < 0 {
		return "over the largest bucket"
	}
	return fmt.Sprintf("≤ %g ms", ms)
}

// cacheLine is the report's line of the cache levels.
func cacheLine(levels []result.CacheLevel) string {
	line := "Catalogue cache hit ratio per level (since the services started):"
	for _, l := range levels {
		if l.Lookups == 0 {
			continue
		}
		if l.Level == "bloom" {
			line += fmt.Sprintf("  bloom refused %.0f unknown ids of %.0f", l.Refused, l.Lookups)
			continue
		}
		line += fmt.Sprintf("  %s %.1f %% of %.0f", l.Level, 100*l.Hits/l.Lookups, l.Lookups)
	}
	return line
}
