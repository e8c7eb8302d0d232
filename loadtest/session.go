// Package loadtest runs a load-test session as the demo, `make loadtest`
// and the end-to-end tests do (RunSession): the replay of a scenario
// (loadtest/drive), the wait for the platform to drain, the audit of its
// books (loadtest/audit), the figures read after it (catalogue cache
// levels, the redis-benchmark ceiling) and the reports (loadtest/report).
// The scenario, the gateway's client and the run's result are packages of
// their own (loadtest/scenario, loadtest/client, loadtest/result).
package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/loadtest/audit"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/drive"
	"github.com/flashsale/flashsale/loadtest/report"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// SessionConfig is one replay with its audit and reports, as `make demo`
// and `make loadtest` run it.
type SessionConfig struct {
	Scenario *scenario.Scenario
	Client   *client.Client
	Target   string
	// Drained, when set, waits until the platform has written every
	// accepted order (the demo watches the Kafka consumer's lag). Without
	// it the audit polls the API until every accepted order is listed.
	Drained func(ctx context.Context) error
	// Orders and Payments, when set, are the orders and payment
	// databases the audit reads; otherwise it reads through the API.
	Orders   *pgxpool.Pool
	Payments *pgxpool.Pool
	// SimulatorURL, when set, is the payment channel simulator's base
	// URL: slow and failing channel faults are set through its admin
	// API, and are reported as skipped without it.
	SimulatorURL string
	// MetricsURLs are /metrics URLs whose catalogue cache levels the
	// report sums with the gateway's (Target's /metrics): the product
	// service's admin port.
	MetricsURLs []string
	// RedisAddr, when set, is where the redis-benchmark ceiling is
	// measured after the replay, for the capacity ratio.
	RedisAddr string
	// AroundReplay, when set, is called as the replay starts; the func it
	// returns is called as the replay ends, before the drain and the
	// audit, with the replay's result (nil when the replay could not
	// start). The demo profiles the spike alone this way, and charges
	// the CPU it took to the answered buys.
	AroundReplay func() (end func(*result.Replay))
	// Infra, when set, puts the scenario's faults with a target on the
	// platform's own parts (drive.Options.Infra).
	Infra drive.Infrastructure
	// OutDir receives report.json and report.html.
	OutDir string
	Out    io.Writer
}

// settleTimeout bounds the wait for the books to settle: accepted orders
// listed, due expiries done, payments settled and refunded.
const settleTimeout = 2 * time.Minute

// RunSession replays the scenario, audits the books, writes the reports
// and returns the result; ok is false when any check failed.
func RunSession(ctx context.Context, cfg SessionConfig) (res *result.Replay, ok bool, err error) {
	if res, err = replay(ctx, cfg); err != nil {
		return nil, false, err
	}
	books, err := waitSettled(ctx, cfg, res)
	if err != nil {
		return nil, false, err
	}
	if res.Checks, err = audit.Replay(ctx, cfg.Client, res, books, cfg.Orders); err != nil {
		return nil, false, err
	}
	if err := readFigures(ctx, cfg, res); err != nil {
		return nil, false, err
	}
	report.Print(cfg.Out, res)
	ok = report.PrintChecks(cfg.Out, res.Checks)
	if cfg.OutDir != "" {
		if err := writeReports(cfg.OutDir, res); err != nil {
			return nil, false, err
		}
		fmt.Fprintf(cfg.Out, "\nReports: %s, %s\n", filepath.Join(cfg.OutDir, "report.json"), filepath.Join(cfg.OutDir, "report.html"))
	}
	return res, ok, nil
}

// replay drives the scenario's load (drive.Run) inside AroundReplay.
func replay(ctx context.Context, cfg SessionConfig) (*result.Replay, error) {
	fmt.Fprintf(cfg.Out, "Replaying %s against %s\n", cfg.Scenario.Name, cfg.Target)
	opts := drive.Options{Target: cfg.Target, Progress: cfg.Out, Infra: cfg.Infra}
	if cfg.SimulatorURL != "" {
		opts.Simulator = client.New(cfg.SimulatorURL, 4)
	}
	end := func(*result.Replay) {}
	if cfg.AroundReplay != nil {
		end = cfg.AroundReplay()
	}
	res, err := drive.Run(ctx, cfg.Client, cfg.Scenario, opts)
	end(res)
	return res, err
}

// waitSettled waits until the platform has written every accepted order
// (Drained, or the API listing them) and the books have settled, and
// returns them.
func waitSettled(ctx context.Context, cfg SessionConfig, res *result.Replay) (*audit.Books, error) {
	out := cfg.Out
	t0 := time.Now()
	if cfg.Drained != nil {
		fmt.Fprint(out, "\nWaiting for every accepted order to be written… ")
		if err := cfg.Drained(ctx); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprint(out, "\nWaiting for every accepted order to be listed by the API… ")
	}
	fmt.Fprint(out, "then for due expiries, payment callbacks and refunds… ")
	books, err := audit.WaitBooksSettled(ctx, cfg.Client, res, cfg.Payments, settleTimeout)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "done in %s\n", time.Since(t0).Round(time.Millisecond))
	return books, nil
}

// readFigures reads what the report shows beside the replay: the
// catalogue cache levels (left out, with a line, when /metrics cannot be
// read) and, with a RedisAddr, the redis-benchmark ceiling.
func readFigures(ctx context.Context, cfg SessionConfig, res *result.Replay) error {
	var err error
	if res.Caches, err = ReadCacheLevels(ctx, append([]string{cfg.Target + "/metrics"}, cfg.MetricsURLs...)); err != nil {
		// The report goes on without them: a target behind a proxy
		// that hides /metrics is no failure of the run.
		fmt.Fprintf(cfg.Out, "Catalogue cache levels not read: %v\n", err)
	}
	if cfg.RedisAddr != "" {
		fmt.Fprintln(cfg.Out, "Measuring the redis-benchmark ceiling on the same machine…")
		if res.Ceiling, err = MeasureCeiling(ctx, cfg.RedisAddr, 5*time.Second, 64); err != nil {
			return err
		}
	}
	return nil
}

// writeReports writes report.json and report.html into dir.
func writeReports(dir string, res *result.Replay) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := report.WriteJSON(filepath.Join(dir, "report.json"), res); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	if err := report.WriteHTML(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
