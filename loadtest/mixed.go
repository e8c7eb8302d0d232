package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flashsale/flashsale/loadtest/report"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/shadow"
)

// MixedConfig is a mixed run (全链路压测 beside real traffic,
// docs/pressure-test.md): one scenario replayed twice at the same time
// against one platform, once as real traffic and once marked, then the
// checks that the two never met and the cleanup of the shadow side.
type MixedConfig struct {
	// Real and Marked are the two sessions; Marked runs as a pressure
	// test whatever its PressureTest says, and its Orders and Payments
	// must be routed (postgres.DialRouted). Real's output is live; a
	// Marked without Out is printed to Out after the real one.
	Real, Marked SessionConfig
	// Stores are the platform's stores, for the leakage audit, the stock
	// figures and the cleanup; Redis must be a client without the shadow
	// hook (its keys are named in full).
	Stores shadow.Stores
	Out    io.Writer
}

// Mixed is what a mixed run found.
type Mixed struct {
	Real, Marked     *result.Replay
	RealOK, MarkedOK bool
	// Stock holds each class's sales against its own run: the real
	// stock untouched by the marked run, the marked sales' stock in the
	// shadow side alone.
	Stock []result.Check
	// Leakage is the leakage audit after both runs settled.
	Leakage shadow.Report
	// Before is what the shadow side held before the cleanup, Cleaned
	// what the cleanup did, After what it held after (nothing).
	Before, After shadow.Contents
	Cleaned       shadow.Cleaned
}

// OK reports whether both audits passed, each class's stock is its own
// run's, nothing leaked and the cleanup left the shadow side empty.
func (m *Mixed) OK() bool {
	return m.RealOK && m.MarkedOK && m.Leakage.Clean() && allPassed(m.Stock) && m.After.Empty()
}

func allPassed(checks []result.Check) bool {
	for _, c := range checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// RunMixed runs the real and the marked session at the same time, then
// checks each class's stock against its own run, runs the leakage audit,
// counts the shadow side, cleans it and counts it again. It prints the
// marked session's report after the real one's, then the stock checks,
// the leakage audit and the cleanup's figures. An error is a run that
// could not be done; a finding is in Mixed (OK).
func RunMixed(ctx context.Context, cfg MixedConfig) (*Mixed, error) {
	cfg.Marked.PressureTest = true
	var markedOut *bytes.Buffer
	if cfg.Marked.Out == nil {
		markedOut = &bytes.Buffer{}
		cfg.Marked.Out = markedOut
	}
	// The marked traffic meets the faults the real run puts on the
	// platform (a channel down, slow or failing is down for both classes):
	// its audit counts them as its own, on its clock.
	realReplayed := make(chan *result.Replay, 1)
	around := cfg.Real.AroundReplay
	cfg.Real.AroundReplay = func() func(*result.Replay) {
		end := func(*result.Replay) {}
		if around != nil {
			end = around()
		}
		return func(res *result.Replay) {
			end(res)
			realReplayed <- res
		}
	}
	cfg.Marked.BeforeAudit = func(res *result.Replay) {
		select {
		case real := <-realReplayed:
			res.Faults = append(res.Faults, metFaults(real, res)...)
		case <-ctx.Done():
		}
	}
	m := &Mixed{}
	var realErr, markedErr error
	var wg sync.WaitGroup
	wg.Go(func() { m.Real, m.RealOK, realErr = RunSession(ctx, cfg.Real) })
	wg.Go(func() { m.Marked, m.MarkedOK, markedErr = RunSession(ctx, cfg.Marked) })
	wg.Wait()
	if markedOut != nil {
		fmt.Fprintf(cfg.Out, "\n==== The marked replay (pressure test, shadow storage) ====\n%s", markedOut)
	}
	if err := errors.Join(realErr, markedErr); err != nil {
		return nil, err
	}
	out := cfg.Out
	var err error
	for _, class := range []struct {
		res    *result.Replay
		marked bool
	}{{m.Real, false}, {m.Marked, true}} {
		c, err := stockCheck(ctx, cfg.Stores, class.res, class.marked)
		if err != nil {
			return nil, err
		}
		m.Stock = append(m.Stock, c)
	}
	fmt.Fprintln(out, "\n==== Each class's stock, against its own run ====")
	report.PrintChecks(out, m.Stock)
	if m.Leakage, err = shadow.Audit(ctx, cfg.Stores); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n==== Leakage ====\n%s", m.Leakage)
	if m.Before, err = shadow.Count(ctx, cfg.Stores); err != nil {
		return nil, err
	}
	if m.Cleaned, err = shadow.Clean(ctx, cfg.Stores); err != nil {
		return nil, err
	}
	if m.After, err = shadow.Count(ctx, cfg.Stores); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n==== Cleanup ====\nshadow side before: %d rows in %d tables, %d keys\n", m.Before.Rows, m.Before.Tables, m.Before.Keys)
	fmt.Fprintf(out, "cleanup: %d tables emptied, %d keys deleted\n", m.Cleaned.Tables, m.Cleaned.Keys)
	fmt.Fprintf(out, "shadow side after: %d rows, %d keys\n", m.After.Rows, m.After.Keys)
	return m, nil
}

// metFaults are the real run's faults as the marked run met them: on the
// marked run's clock, named as the real run's.
func metFaults(real, marked *result.Replay) []result.FaultStat {
	if real == nil {
		return nil
	}
	shift := real.StartedAt.Sub(marked.StartedAt).Seconds()
	var out []result.FaultStat
	for _, f := range real.Faults {
		if !f.Ran() {
			continue
		}
		out = append(out, result.FaultStat{Fault: "the real run's " + f.Fault, Status: "met: applied and lifted by the real run (the window figures are in its report)",
			OnS: f.OnS + shift, OffS: f.OffS + shift, RecoveredS: f.RecoveredS})
	}
	return out
}

// stockCheck holds each flash sale of one run against its class's side of
// the stores (shadow.ReadSale, the schema and key named in full): its
// stock key holds its stock less what its stored orders hold, every
// order the run was handed is stored there, and any other stored order
// held nothing (an attempt never answered about, released). For the real
// run this is "real stock untouched": a marked buy that reached a real
// key, or a marked order in a real table, would break it.
func stockCheck(ctx context.Context, s shadow.Stores, res *result.Replay, marked bool) (result.Check, error) {
	c := result.Check{Name: "real stock untouched: each real sale's stock key and orders are the real run's alone", OK: true}
	if marked {
		c.Name = "the marked sales' stock and orders are in the shadow side, the marked run's alone"
	}
	var parts []string
	for _, a := range res.Activities {
		id, err := strconv.ParseInt(a.ActivityID, 10, 64)
		if err != nil {
			return c, fmt.Errorf("stock: activity id %q: %w", a.ActivityID, err)
		}
		st, err := shadow.ReadSale(ctx, s, marked, id)
		if err != nil {
			return c, err
		}
		accepted := res.Sales[a.Key].Orders
		missing, foreign := 0, 0
		for oid := range accepted {
			n, _ := strconv.ParseInt(oid, 10, 64)
			if _, ok := st.Orders[n]; !ok {
				missing++
			}
		}
		for _, oid := range slices.Sorted(maps.Keys(st.Orders)) {
			if _, ok := accepted[strconv.FormatInt(oid, 10)]; !ok && st.Orders[oid] > 0 {
				foreign++ // held by an order the run was never handed (released ones are attempts never answered about)
			}
		}
		ok := st.HasKey && st.Remaining == a.Stock-st.Held && missing == 0
		if !ok || foreign > 0 {
			c.OK = false
		}
		parts = append(parts, fmt.Sprintf("%s: stock %d = sold %d + remaining %d (key %v); %d orders stored, %d accepted, %d missing, %d holding stock unasked",
			a.Key, a.Stock, st.Held, st.Remaining, st.HasKey, len(st.Orders), len(accepted), missing, foreign))
	}
	c.Detail = strings.Join(parts, "; ")
	return c, nil
}
