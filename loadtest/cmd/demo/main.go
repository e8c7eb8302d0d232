// Command demo is `make demo`: it starts the whole platform on this machine,
// replays a Double-11 scenario (loadtest/scenarios/double11.yaml by
// default) against it over HTTP, waits until every accepted order has been
// written and every due order has expired, audits the books, measures the redis-benchmark ceiling and
// prints the report (text here; JSON and HTML under -out). It exits
// non-zero when a check fails. It prints the big screen's address
// (docs/big-screen.md) once the platform is up; with -keep (or
// FLASHSALE_DEMO_KEEP_UP=true, `make demo KEEP=1`) the platform stays up
// after the report, screen and all, until Ctrl-C.
//
// With -pressure-test the replay is pressure-test traffic (全链路压测,
// docs/pressure-test.md): every request carries a load-test token, the
// sale lives in shadow storage and its audit reads it there; the leakage
// audit follows. With -mixed (`make demo MIXED=1`) the scenario is
// replayed twice at the same time, as real and as marked traffic, on the
// one platform: both audits, each class's stock against its own run, the
// leakage audit, then the cleanup of the shadow side, counted before and
// after.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway"
	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/loadtest/shadow"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	orderapp "github.com/flashsale/flashsale/services/order/app"
)

// defaultPaymentWindow is the demo's payment window for a scenario that
// names none (platform.payment_window): short enough that abandoned
// orders expire during the replay.
const defaultPaymentWindow = 20 * time.Second

// exit is the process's status, set by realMain so that its deferred
// calls (the profile, the platform's shutdown) run before the exit.
var exit int

func main() {
	serve.TuneGC()
	realMain()
	os.Exit(exit)
}

func realMain() {
	scenario := flag.String("scenario", "loadtest/scenarios/double11.yaml", "scenario file")
	out := flag.String("out", "loadtest/out", "directory for report.json and report.html")
	ceiling := flag.Bool("ceiling", true, "measure the redis-benchmark ceiling after the replay")
	var pr probes
	flag.StringVar(&pr.cpuProfile, "cpuprofile", "", "write a CPU profile of the replay (platform and load generator, without start-up, drain and audit) here")
	flag.BoolVar(&pr.flight, "flight", false, "run the flight recorder: the execution trace of the seconds before a call that ran out of its deadline goes to OUT/flight (docs/operations.md; it costs about 8 % more CPU)")
	flag.BoolVar(&pr.statements, "pgstat", false, "load pg_stat_statements into Postgres and print the statements it spent the most time on during the replay, lock waits included (docs/operations.md)")
	keep := flag.Bool("keep", false, "keep the platform (and the big screen) up after the report until Ctrl-C (default: FLASHSALE_DEMO_KEEP_UP)")
	var m mode
	flag.BoolVar(&m.marked, "pressure-test", false, "replay as pressure-test traffic: every request carries X-Pressure-Test, the sale lives in shadow storage (docs/pressure-test.md)")
	flag.BoolVar(&m.mixed, "mixed", false, "replay the scenario as real and as pressure-test traffic at once, then the leakage audit and the shadow cleanup (docs/pressure-test.md)")
	flag.BoolVar(&m.stub, "stub", false, "with -pressure-test or -mixed: the simulator stands for live channels and the pressure test pays through a stub beside it, as in production (docs/pressure-test.md)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := config.FromEnv()
	keepUp := *keep || env.Bool("FLASHSALE_DEMO_KEEP_UP", false)
	if err := env.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		exit = 1
		return
	}
	if ok, err := run(ctx, *scenario, *out, *ceiling, pr, keepUp, m); !errors.Is(err, errReported) {
		verdict(ok, err)
	}
}

// errReported is run's answer when it has printed the verdict itself.
var errReported = errors.New("verdict printed")

// verdict prints the demo's verdict and sets the exit status.
func verdict(ok bool, err error) {
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		exit = 1
	case !ok:
		fmt.Println("\nRESULT: FAIL")
		exit = 1
	default:
		fmt.Println("\nRESULT: PASS")
	}
}

// probes are what the demo measures beside the report: a CPU profile
// of the replay, the flight recorder, Postgres's statements.
type probes struct {
	cpuProfile         string
	flight, statements bool
}

// mode is what the demo replays: real traffic (the default), marked
// traffic alone, or both at once.
type mode struct{ marked, mixed, stub bool }

// run starts the platform, replays the scenario and audits it. With
// keep it prints the verdict itself and then waits for ctx (Ctrl-C) with
// the platform up, returning errReported.
func run(ctx context.Context, path, out string, ceiling bool, pr probes, keep bool, m mode) (bool, error) {
	sc, err := scenario.Load(path)
	if err != nil {
		return false, err
	}
	// Unpaid orders expire within the replay, so the report shows
	// expiries and late payments refunded.
	env := config.FromEnv()
	window := defaultPaymentWindow
	if sc.Platform.PaymentWindow > 0 {
		window = sc.Platform.PaymentWindow.D()
	}
	window = env.Duration("FLASHSALE_PAYMENT_WINDOW", window)
	env.Check(window > 0, "FLASHSALE_PAYMENT_WINDOW=%s: must be positive", window)
	// The gateway asks the scenario's challenge difficulty unless
	// FLASHSALE_CHALLENGE_DIFFICULTY says otherwise, and its bots'
	// device is on the blocklist (the config centre's fallback: the
	// demo runs no Consul).
	difficulty := gateway.DefaultChallengeBits
	if sc.Platform.ChallengeDifficulty > 0 {
		difficulty = sc.Platform.ChallengeDifficulty
	}
	difficulty = int(env.Int("FLASHSALE_CHALLENGE_DIFFICULTY", int64(difficulty)))
	// Services log warnings and errors unless FLASHSALE_LOG_LEVEL says
	// otherwise (debug shows each move of the admission limits).
	level := slog.LevelWarn
	levelName := env.String("FLASHSALE_LOG_LEVEL", "warn")
	env.Check(level.UnmarshalText([]byte(levelName)) == nil, "FLASHSALE_LOG_LEVEL=%q: not a level (debug, info, warn, error)", levelName)
	adjustGateway := func(c *gwapp.Config) {
		c.ChallengeBits = difficulty
		if d := sc.Bots.BlockedDevice; d != "" {
			c.Blocklist.Devices = append(c.Blocklist.Devices, d)
		}
	}
	if err := env.Err(); err != nil {
		return false, err
	}
	// Services log to a file next to the report: the terminal keeps the
	// live display and the results.
	if err := os.MkdirAll(out, 0o755); err != nil {
		return false, err
	}
	logPath := filepath.Join(out, "platform.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return false, err
	}
	defer logFile.Close()
	log := telemetry.NewLogger(logFile, level)
	fmt.Printf("Platform logs (%s and above): %s\n", strings.ToLower(level.String()), logPath)
	flightDir := filepath.Join(out, "flight")
	if err := os.RemoveAll(flightDir); err != nil {
		return false, err
	}
	stopFlight := func() {}
	if pr.flight {
		if stopFlight, err = telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: flightDir, Name: "platform", Logger: log}); err != nil {
			return false, err
		}
		defer stopFlight()
	}
	fmt.Println("Starting redis-server, postgres and the Kafka-protocol broker…")
	stackCfg := local.StackConfig(log)
	// Faults on the platform's own parts cross fault proxies on the real
	// wire; a scenario without them runs on direct connections.
	stackCfg.Faults = sc.HasInfraFaults()
	stackCfg.Statements = pr.statements
	stack, err := localstack.Start(ctx, stackCfg)
	if err != nil {
		return false, err
	}
	defer stack.Close()
	// The services read FLASHSALE_* as their binaries do (for example
	// FLASHSALE_ADMISSION_SECKILL_MAX=0 measures the overload scenario
	// without admission); the payment window is the scenario's unless
	// FLASHSALE_PAYMENT_WINDOW says otherwise.
	if m.stub && !m.marked && !m.mixed {
		return false, errors.New("-stub needs -pressure-test or -mixed: it is where a pressure test pays")
	}
	p, err := local.Up(ctx, stack, local.Options{Logger: log, Environ: true, OrderReplicas: sc.Platform.OrderReplicas,
		AdjustOrder: func(c *orderapp.Config) { c.PaymentWindow = window }, AdjustGateway: adjustGateway,
		PressureStub: m.stub})
	if err != nil {
		return false, err
	}
	defer p.Close()
	fmt.Printf("Platform up: gateway %s, channel simulator %s, payment window %s, %d order replica(s)\n",
		p.GatewayURL, p.ChannelsURL, window, p.OrderReplicas())
	if p.StubURL != "" {
		fmt.Printf("Pressure tests pay through the stub of the channels at %s; the simulator stands for live channels\n", p.StubURL)
	}
	screen, err := p.ScreenURL(ctx)
	if err != nil {
		return false, err
	}
	fmt.Printf("Big screen (大屏), live during the replay: %s\n", screen)

	pool, err := postgres.Dial(ctx, stack.PostgresURL(local.DBOrders), 4)
	if err != nil {
		return false, err
	}
	defer pool.Close()
	payments, err := postgres.Dial(ctx, stack.PostgresURL(local.DBPayment), 4)
	if err != nil {
		return false, err
	}
	defer payments.Close()
	cfg := loadtest.SessionConfig{
		Scenario: sc, Client: client.New(p.GatewayURL, 512), Target: p.GatewayURL,
		Drained: func(ctx context.Context) error {
			return loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, 2*time.Minute)
		},
		Orders: pool, Payments: payments, SimulatorURL: p.ChannelsURL, OutDir: out, Out: os.Stdout,
		MetricsURLs: []string{p.ProductMetricsURL},
		Infra:       infra{stack: stack, platform: p},
	}
	if ceiling {
		cfg.RedisAddr = stack.RedisAddr
	}
	if cfg.AroundReplay, err = measureReplay(pr.cpuProfile, stack); err != nil {
		return false, err
	}
	if pr.statements {
		cfg.AroundReplay = around(cfg.AroundReplay, measureStatements(ctx, stack.PostgresURL("postgres"), os.Stdout))
	}
	var ok bool
	asLoadGenerator(ctx, func(ctx context.Context) {
		if m.marked || m.mixed {
			ok, err = pressureTest(ctx, stack, cfg, m)
		} else {
			_, ok, err = loadtest.RunSession(ctx, cfg)
		}
	})
	stopFlight() // a snapshot still being written is then in the list
	printFlight(flightDir)
	if !keep || ctx.Err() != nil {
		return ok, err
	}
	verdict(ok, err)
	fmt.Printf("\nThe platform stays up: big screen %s, gateway %s. Ctrl-C stops it.\n", screen, p.GatewayURL)
	select {
	case <-ctx.Done():
	case <-p.Failed():
		fmt.Fprintln(os.Stderr, "demo: a service of the platform failed")
		exit = 1
	}
	return ok, errReported
}

// printFlight lists the flight recorder's snapshots, if the replay left
// any: each holds the seconds before a call that ran out of its deadline.
func printFlight(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "*.trace"))
	if len(names) == 0 {
		return
	}
	fmt.Printf("\nExecution traces of the seconds before a call that ran out of its deadline (one a minute at most; docs/operations.md):\n")
	for _, n := range names {
		fmt.Printf("  %s\n", n)
	}
	fmt.Printf("  where goroutines waited for a core: go tool trace -pprof=sched FILE > sched.pprof && go tool pprof -top sched.pprof\n")
}

// infra puts a scenario's faults on the platform this command started:
// wire faults through the stack's proxies, kills of Redis and Postgres
// (restarted when the fault lasts out: Redis from its AOF, Postgres with
// crash recovery), of the order service (between a consumer batch's
// write and its commit) and of an order replica (as kill -9, while the
// others serve).
type infra struct {
	stack    *localstack.Stack
	platform *local.Platform
}

func (i infra) Fault(ctx context.Context, f scenario.Fault) (func(context.Context) error, error) {
	if f.Mode == scenario.FaultKill {
		switch f.Target {
		case "redis":
			return func(ctx context.Context) error { return i.stack.RestartRedis(ctx) }, i.stack.KillRedis()
		case "postgres":
			return func(ctx context.Context) error { return i.stack.StartPostgres(ctx) }, i.stack.StopPostgres()
		case "order":
			i.platform.KillOrder(2 * time.Second)
			return i.platform.StartOrder, nil
		case "order-replica":
			return func(ctx context.Context) error { return i.platform.StartOrderReplica(ctx, scenario.FaultReplica) },
				i.platform.KillOrderReplica(scenario.FaultReplica)
		}
		return nil, fmt.Errorf("cannot kill %s", f.Target)
	}
	lift, err := i.stack.Fault(localstack.Target(f.Target), localstack.Fault{
		Kind: localstack.FaultKind(f.Mode), Latency: f.Latency.D(), Jitter: f.Jitter.D(), RateKB: f.RateKB,
	})
	if err != nil {
		return nil, err
	}
	return func(context.Context) error { return lift() }, nil
}

// pressureTest runs the marked replay (m.marked) or the mixed run
// (m.mixed) of cfg's scenario on the demo's stack: the marked session
// audits through routed databases, on a client of its own, its reports
// under <out>/pressure-test. With -stub the marked replay pays through
// the stub beside the simulator, which stands for live channels.
func pressureTest(ctx context.Context, stack *localstack.Stack, cfg loadtest.SessionConfig, m mode) (bool, error) {
	orders, err := postgres.DialRouted(ctx, stack.PostgresURL(local.DBOrders), 4)
	if err != nil {
		return false, err
	}
	defer orders.Close()
	payments, err := postgres.DialRouted(ctx, stack.PostgresURL(local.DBPayment), 4)
	if err != nil {
		return false, err
	}
	defer payments.Close()
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	stores := shadow.Stores{
		Product: stack.PostgresURL(local.DBProduct), Orders: stack.PostgresURL(local.DBOrders),
		Payment: stack.PostgresURL(local.DBPayment), Marketing: stack.PostgresURL(local.DBMarketing), Redis: rdb,
	}
	marked := cfg
	marked.PressureTest, marked.Orders, marked.Payments = true, orders, payments
	if !m.mixed {
		_, ok, err := loadtest.RunSession(ctx, marked)
		if err != nil {
			return false, err
		}
		report, err := shadow.Audit(ctx, stores)
		if err != nil {
			return false, err
		}
		fmt.Printf("\n%s", report)
		return ok && report.Clean(), nil
	}
	marked.Client = client.New(cfg.Target, 512)
	marked.AroundReplay, marked.Out = nil, nil
	marked.OutDir = filepath.Join(cfg.OutDir, "pressure-test")
	fmt.Println("Mixed run: the real replay's live display follows; the marked replay's report is printed after it")
	res, err := loadtest.RunMixed(ctx, loadtest.MixedConfig{Real: cfg, Marked: marked, Stores: stores, Out: os.Stdout})
	if err != nil {
		return false, err
	}
	fmt.Printf("\nMixed run: real audit %s, marked audit %s, leakage %s, shadow side after the cleanup %s\n",
		passFail(res.RealOK), passFail(res.MarkedOK), passFail(res.Leakage.Clean()), passFail(res.After.Empty()))
	return res.OK(), nil
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
