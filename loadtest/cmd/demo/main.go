// Command demo is `make demo`: it starts the whole platform on this machine,
// opens a flash sale, fires a burst of buyers at it over HTTP, waits until
// every accepted order has been written, audits the books and prints the
// report. It exits non-zero when a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/platform/localstack"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/telemetry"
)

type options struct {
	users, attempts, concurrency int
	stock, limit                 int64
	replay                       float64
}

func main() {
	var o options
	flag.IntVar(&o.users, "users", 6000, "distinct buyers")
	flag.IntVar(&o.attempts, "attempts", 24000, "buy attempts in all")
	flag.IntVar(&o.concurrency, "concurrency", 200, "requests in flight")
	flag.Int64Var(&o.stock, "stock", 1000, "units in the flash sale")
	flag.Int64Var(&o.limit, "limit", 1, "units per buyer")
	flag.Float64Var(&o.replay, "replay", 0.05, "share of attempts that repeat an Idempotency-Key")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Println("\nRESULT: FAIL")
		os.Exit(1)
	}
	fmt.Println("\nRESULT: PASS")
}

func run(ctx context.Context, o options) (bool, error) {
	// Services log warnings and errors only; the report is the output.
	log := telemetry.NewLogger(os.Stderr, slog.LevelWarn)
	fmt.Println("Starting redis-server, postgres and the Kafka-protocol broker…")
	stack, err := localstack.Start(ctx, local.StackConfig(log))
	if err != nil {
		return false, err
	}
	defer stack.Close()
	p, err := local.Up(ctx, stack, local.Options{Logger: log})
	if err != nil {
		return false, err
	}
	defer p.Close()
	fmt.Printf("Platform up: gateway %s\n", p.GatewayURL)

	cl := loadtest.NewClient(p.GatewayURL, o.concurrency)
	admin, err := cl.DevToken(ctx, 1, "admin")
	if err != nil {
		return false, fmt.Errorf("admin token: %w", err)
	}
	sku, err := cl.CreateProduct(ctx, admin, "Double-11 phone", 399_900, o.stock*2)
	if err != nil {
		return false, fmt.Errorf("create product: %w", err)
	}
	now := time.Now()
	actID, err := cl.CreateActivity(ctx, admin, api.Activity{
		SKUID: sku, Price: 199_900, Stock: o.stock, PerUserLimit: o.limit,
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(30 * time.Minute),
	})
	if err != nil {
		return false, fmt.Errorf("create activity: %w", err)
	}
	fmt.Printf("Flash sale %s: %d units at 1999.00, %d per buyer\n", actID, o.stock, o.limit)

	fmt.Printf("Signing in %d buyers…\n", o.users)
	users, err := loadtest.SignIn(ctx, cl, 100_000, o.users)
	if err != nil {
		return false, err
	}

	fmt.Printf("Firing %d buy attempts, %d in flight:\n", o.attempts, o.concurrency)
	res, err := loadtest.RunBurst(ctx, cl, loadtest.BurstConfig{
		ActivityID: actID, Users: users, Attempts: o.attempts, Concurrency: o.concurrency,
		Quantity: 1, ReplayShare: o.replay, Seed: uint64(now.UnixNano()), Progress: os.Stdout,
	}, o.limit)
	if err != nil {
		return false, err
	}
	loadtest.PrintBurst(os.Stdout, res)

	fmt.Print("\nWaiting for the order consumer to drain orders.placed… ")
	t0 := time.Now()
	if err := loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, 2*time.Minute); err != nil {
		return false, err
	}
	fmt.Printf("drained in %s\n", time.Since(t0).Round(time.Millisecond))

	pool, err := postgres.Dial(ctx, stack.PostgresURL(local.DBOrders), 4)
	if err != nil {
		return false, err
	}
	defer pool.Close()
	books, err := loadtest.ReadSeckillBooks(ctx, cl, pool, actID)
	if err != nil {
		return false, err
	}
	return loadtest.PrintChecks(os.Stdout, loadtest.AuditSeckill(res, books)), nil
}
