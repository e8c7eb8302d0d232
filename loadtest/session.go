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

	"github.com/flashsale/flashsale/loadtest/audit"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/drive"
	"github.com/flashsale/flashsale/loadtest/report"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/shadow"
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
	// databases the audit reads; otherwise it reads through the API. A
	// pressure test's audit reads the shadow schema: they must then be
	// *postgres.Router (postgres.DialRouted).
	Orders   postgres.DB
	Payments postgres.DB
	// PressureTest runs the replay as pressure-test traffic (全链路压测,
	// docs/pressure-test.md): the session signs in as the admin, mints a
	// load-test token and sends it in X-Pressure-Test on every request of
	// the replay (the catalogue's setup, the buyers, payments, follow-ups)
	// and of the audit, so the whole sale lives in shadow storage beside
	// whatever real traffic the platform serves. The drain waits for the
	// shadow consumer group (WaitDrained under a marked context), the
	// audit reads the shadow schemas, and the replay leaves the shared
	// switches alone (drive.Options.PressureTest): channel routing and
	// faults are skipped, and so is the redis-benchmark ceiling, which
	// writes real keys.
	PressureTest bool
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
	// BeforeAudit, when set, is called with the replay's result once the
	// books have settled, before the audit: a mixed run adds the real
	// run's faults to the marked run's, whose traffic met them too.
	BeforeAudit func(*result.Replay)
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
	if cfg.PressureTest {
		if ctx, cfg, err = markSession(ctx, cfg); err != nil {
			return nil, false, err
		}
	}
	if res, err = replay(ctx, cfg); err != nil {
		return nil, false, err
	}
	books, err := waitSettled(ctx, cfg, res)
	if err != nil {
		return nil, false, err
	}
	if cfg.BeforeAudit != nil {
		cfg.BeforeAudit(res)
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

// markSession turns cfg into a pressure test's: it mints a load-test
// token as the admin the replay signs in as, marks the client with it and
// returns ctx marked, under which the drain and the audit read the shadow
// side. The token outlives the replay, its drain and the audit.
func markSession(ctx context.Context, cfg SessionConfig) (context.Context, SessionConfig, error) {
	for _, db := range []postgres.DB{cfg.Orders, cfg.Payments} {
		if _, routed := db.(*postgres.Router); db != nil && !routed {
			return ctx, cfg, fmt.Errorf("pressure test: the audit's databases must be routed (postgres.DialRouted) to read the shadow schema")
		}
	}
	admin, err := cfg.Client.DevToken(ctx, 1, "admin")
	if err != nil {
		return ctx, cfg, fmt.Errorf("pressure test: admin token: %w", err)
	}
	ttl := min(max(time.Hour, cfg.Scenario.End()+cfg.Scenario.Drain.D()+settleTimeout+10*time.Minute), 24*time.Hour)
	token, until, err := cfg.Client.MintLoadTestToken(ctx, admin, ttl)
	if err != nil {
		return ctx, cfg, fmt.Errorf("pressure test: load-test token: %w", err)
	}
	fmt.Fprintf(cfg.Out, "Pressure test (全链路压测): every request carries %s (load-test token until %s); the sale lives in shadow storage\n",
		shadow.Header, until.Format(time.RFC3339))
	cfg.Client = cfg.Client.Marked(token)
	return shadow.With(ctx), cfg, nil
}

// replay drives the scenario's load (drive.Run) inside AroundReplay.
func replay(ctx context.Context, cfg SessionConfig) (*result.Replay, error) {
	fmt.Fprintf(cfg.Out, "Replaying %s against %s\n", cfg.Scenario.Name, cfg.Target)
	opts := drive.Options{Target: cfg.Target, Progress: cfg.Out, Infra: cfg.Infra, PressureTest: cfg.PressureTest}
	if cfg.SimulatorURL != "" {
		opts.Simulator = client.New(cfg.SimulatorURL, 4)
	}
	end := func(*result.Replay) {}
	if cfg.AroundReplay != nil {
		end = cfg.AroundReplay()
	}
	res, err := drive.Run(ctx, cfg.Client, cfg.Scenario, opts)
	if res != nil {
		res.PressureTest = cfg.PressureTest
	}
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
	if res.GatewayTimes, err = ReadGatewayTimes(ctx, cfg.Target+"/metrics"); err != nil {
		fmt.Fprintf(cfg.Out, "The gateway's own answer times not read: %v\n", err)
	}
	if cfg.RedisAddr != "" && !cfg.PressureTest {
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
