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
	out := cfg.Out
	fmt.Fprintf(out, "Replaying %s against %s\n", cfg.Scenario.Name, cfg.Target)
	opts := drive.Options{Target: cfg.Target, Progress: out, Infra: cfg.Infra}
	if cfg.SimulatorURL != "" {
		opts.Simulator = client.New(cfg.SimulatorURL, 4)
	}
	end := func(*result.Replay) {}
	if cfg.AroundReplay != nil {
		end = cfg.AroundReplay()
	}
	res, err = drive.Run(ctx, cfg.Client, cfg.Scenario, opts)
	end(res)
	if err != nil {
		return nil, false, err
	}
	t0 := time.Now()
	if cfg.Drained != nil {
		fmt.Fprint(out, "\nWaiting for every accepted order to be written… ")
		if err := cfg.Drained(ctx); err != nil {
			return nil, false, err
		}
	} else {
		fmt.Fprint(out, "\nWaiting for every accepted order to be listed by the API… ")
	}
	fmt.Fprint(out, "then for due expiries, payment callbacks and refunds… ")
	books, err := audit.WaitBooksSettled(ctx, cfg.Client, res, cfg.Payments, settleTimeout)
	if err != nil {
		return nil, false, err
	}
	fmt.Fprintf(out, "done in %s\n", time.Since(t0).Round(time.Millisecond))
	if res.Checks, err = audit.Replay(ctx, cfg.Client, res, books, cfg.Orders); err != nil {
		return nil, false, err
	}
	if res.Caches, err = ReadCacheLevels(ctx, append([]string{cfg.Target + "/metrics"}, cfg.MetricsURLs...)); err != nil {
		// The report goes on without them: a target behind a proxy
		// that hides /metrics is no failure of the run.
		fmt.Fprintf(out, "Catalogue cache levels not read: %v\n", err)
	}
	if cfg.RedisAddr != "" {
		fmt.Fprintln(out, "Measuring the redis-benchmark ceiling on the same machine…")
		if res.Ceiling, err = MeasureCeiling(ctx, cfg.RedisAddr, 5*time.Second, 64); err != nil {
			return nil, false, err
		}
	}
	report.Print(out, res)
	ok = report.PrintChecks(out, res.Checks)
	if cfg.OutDir != "" {
		if err := writeReports(cfg.OutDir, res); err != nil {
			return nil, false, err
		}
		fmt.Fprintf(out, "\nReports: %s, %s\n", filepath.Join(cfg.OutDir, "report.json"), filepath.Join(cfg.OutDir, "report.html"))
	}
	return res, ok, nil
}

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
