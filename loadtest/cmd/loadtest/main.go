// Command loadtest is `make loadtest SCENARIO=… TARGET=…`: it replays a
// scenario against any running gateway that serves dev tokens, audits the
// books through the API (or through Postgres when
// FLASHSALE_AUDIT_POSTGRES_URL names the orders database and
// FLASHSALE_AUDIT_PAYMENT_POSTGRES_URL the payment one) and writes the
// report. Slow and failing channel faults need the channel simulator's
// URL in FLASHSALE_CHANNELSIM_URL and are reported as skipped without it.
// With FLASHSALE_BENCH_REDIS_ADDR it also measures the redis-benchmark
// ceiling on that Redis. With -pressure-test the replay is pressure-test
// traffic (全链路压测, docs/pressure-test.md): every request carries a
// load-test token the session mints as the admin, the sale lives in
// shadow storage and the audit reads it there. It exits non-zero when a
// check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/postgres"
)

func main() {
	scenario := flag.String("scenario", "loadtest/scenarios/double11.yaml", "scenario file")
	target := flag.String("target", "http://127.0.0.1:8080", "gateway base URL")
	out := flag.String("out", "loadtest/out", "directory for report.json and report.html")
	marked := flag.Bool("pressure-test", false, "replay as pressure-test traffic: every request carries X-Pressure-Test, the sale lives in shadow storage (docs/pressure-test.md)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, *scenario, strings.TrimRight(*target, "/"), *out, *marked)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Println("\nRESULT: FAIL")
		os.Exit(1)
	}
	fmt.Println("\nRESULT: PASS")
}

func run(ctx context.Context, path, target, out string, marked bool) (bool, error) {
	env := config.FromEnv()
	e := loadtest.EnvFromConfig(env)
	if err := env.Err(); err != nil {
		return false, err
	}
	sc, err := scenario.Load(path)
	if err != nil {
		return false, err
	}
	gateway := client.New(target, 512)
	if err := loadtest.ReachGateway(ctx, gateway, target); err != nil {
		return false, err
	}
	cfg := loadtest.SessionConfig{Scenario: sc, Client: gateway, Target: target, PressureTest: marked,
		RedisAddr: e.BenchRedisAddr, SimulatorURL: e.SimulatorURL, OutDir: out, Out: os.Stdout}
	for _, db := range []struct {
		url string
		to  *postgres.DB
	}{{e.OrdersURL, &cfg.Orders}, {e.PaymentsURL, &cfg.Payments}} {
		if db.url == "" {
			continue
		}
		// A pressure test's audit reads the shadow schema, through a
		// router (it refuses a plain pool).
		if marked {
			r, err := postgres.DialRouted(ctx, db.url, 4)
			if err != nil {
				return false, err
			}
			defer r.Close()
			*db.to = r
			continue
		}
		pool, err := postgres.Dial(ctx, db.url, 4)
		if err != nil {
			return false, err
		}
		defer pool.Close()
		*db.to = pool
	}
	_, ok, err := loadtest.RunSession(ctx, cfg)
	return ok, err
}
