// Command bench is `make bench`: it measures ways of taking one unit of a
// hot item's stock, in one run on this machine, against the ceiling of
// redis-benchmark running our reservation script straight on Redis:
//
//   - ceiling: redis-benchmark EVALSHA of the Reserve script, no Go at all;
//   - Reserve through the inventory service (gRPC → Go → Lua), the hot path;
//   - Reserve through the Go Redis adapter, without gRPC;
//   - Postgres conditional UPDATE on one hot row (optimistic, the naive way);
//   - Postgres SELECT … FOR UPDATE then UPDATE (pessimistic).
//
// Every strategy runs with the same number of concurrent clients for the
// same time, and each is printed as a ratio to the ceiling.
//
// Then (-ratelimit, on by default; about 15 s) it replays one bursty
// arrival trace through each kind of rate limiter and the adaptive
// concurrency limit (package ratebench), prints their table and writes
// the chart page -ratelimit-html. -inventory=false skips the first part.
//
// Last (-buckets, on by default) it measures one sale's reservations with
// its stock in 1, 2 and 4 buckets on a three-primary Redis Cluster
// (buckets.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/ratebench"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/inventory"
	invapp "github.com/flashsale/flashsale/services/inventory/app"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// result is one strategy's measurement.
type result struct {
	name     string
	perSec   float64
	p50, p99 time.Duration // zero when the tool does not report them
}

func main() {
	duration := flag.Duration("duration", 8*time.Second, "how long each strategy runs")
	clients := flag.Int("clients", 64, "concurrent clients per strategy")
	inventory := flag.Bool("inventory", true, "measure the inventory strategies")
	rateLimit := flag.Bool("ratelimit", true, "replay the bursty trace through the rate limiters")
	buckets := flag.Bool("buckets", true, "measure one sale's stock in 1, 2 and 4 buckets on a Redis Cluster (buckets.go)")
	rateHTML := flag.String("ratelimit-html", "loadtest/out/ratelimit.html", "where the rate limiters' chart page goes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *duration, *clients, *inventory, *rateLimit, *rateHTML)
	if err == nil && *buckets {
		err = bucketScaling(ctx, *duration, *clients)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, d time.Duration, clients int, inventory, rateLimit bool, rateHTML string) error {
	stack, err := localstack.Start(ctx, localstack.Config{Databases: []string{"bench"}})
	if err != nil {
		return err
	}
	defer stack.Close()
	if inventory {
		if err := inventoryStrategies(ctx, stack, d, clients); err != nil {
			return err
		}
	}
	if rateLimit {
		return rateLimiters(ctx, stack.RedisAddr, rateHTML)
	}
	return nil
}

// rateLimiters replays ratebench's trace through every limiter, prints
// the table and writes the chart page to path.
func rateLimiters(ctx context.Context, redisAddr, path string) error {
	fmt.Printf("\n## Rate limiters under one bursty trace\n\n")
	rep, err := ratebench.Run(ctx, ratebench.DefaultConfig(redisAddr))
	if err != nil {
		return err
	}
	ratebench.PrintTable(os.Stdout, rep)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ratebench.WriteHTML(f, rep); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("\nChart: %s\n", path)
	return nil
}

// inventoryStrategies measures the ways of taking a unit of stock against
// the redis-benchmark ceiling and prints their table.
func inventoryStrategies(ctx context.Context, stack *localstack.Stack, d time.Duration, clients int) error {
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr, PoolSize: clients})
	defer rdb.Close()
	store := invredis.NewStore(rdb)

	fmt.Printf("Each strategy: %d concurrent clients for %s, on %d CPUs.\n\n", clients, d, cpus())
	var results []result

	c, err := loadtest.MeasureCeiling(ctx, stack.RedisAddr, d, clients)
	if err != nil {
		return err
	}
	ceiling := result{name: "ceiling: " + c.Name, perSec: c.PerSec}
	results = append(results, ceiling)

	svc, err := throughService(ctx, stack.RedisAddr, store, d, clients)
	if err != nil {
		return err
	}
	results = append(results, svc)

	// The adapter on the plain client (a round trip per call) and on the
	// auto-pipeliner the service uses (concurrent calls share pipelines).
	for i, a := range []struct {
		name  string
		store *invredis.Store
	}{
		{"Reserve through the Go Redis adapter (no gRPC)", store},
		{"Reserve through the Go Redis adapter, auto-pipelined (no gRPC)", invredis.NewStore(redisclient.Coalesced(rdb))},
	} {
		adapter, err := throughAdapter(ctx, a.name, a.store, int64(3+i), d, clients)
		if err != nil {
			return err
		}
		results = append(results, adapter)
	}

	pool, err := postgres.Dial(ctx, stack.PostgresURL("bench"), int32(clients))
	if err != nil {
		return err
	}
	defer pool.Close()
	for _, s := range []pgStrategy{conditionalUpdate, selectForUpdate} {
		r, err := postgresDecrement(ctx, pool, s, d, clients)
		if err != nil {
			return err
		}
		results = append(results, r)
	}

	fmt.Printf("| strategy | reservations/s | ratio to ceiling | p50 | p99 |\n|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		lat := func(v time.Duration) string {
			if v == 0 {
				return "n/a"
			}
			return v.Round(10 * time.Microsecond).String()
		}
		fmt.Printf("| %s | %.0f | %.3f | %s | %s |\n", r.name, r.perSec, r.perSec/ceiling.perSec, lat(r.p50), lat(r.p99))
	}
	return nil
}

func cpus() int { return runtime.NumCPU() }

// benchActivity preheats an activity whose stock and limit never run out
// within a run, so every call does the full reservation.
func benchActivity(ctx context.Context, store *invredis.Store, id int64) error {
	_, err := store.Preheat(ctx, id, 1<<50, 1<<50, 1)
	return err
}

// drive runs op from clients goroutines for d and measures each call.
func drive(ctx context.Context, name string, d time.Duration, clients int, op func(ctx context.Context, worker int, i int64) error) (result, error) {
	// Calls get ctx without a deadline and the loop checks the time
	// itself, so no call is cut short mid-flight and counted as an error.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hists := make([]*hdrhistogram.Histogram, clients)
	var ops atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range clients {
		h := hdrhistogram.New(1, 10_000_000, 3)
		hists[w] = h
		wg.Go(func() {
			for i := int64(0); ctx.Err() == nil && time.Since(t0) < d; i++ {
				s := time.Now()
				if err := op(ctx, w, i); err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				_ = h.RecordValue(max(time.Since(s).Microseconds(), 1))
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil {
		return result{}, fmt.Errorf("%s: %w", name, firstErr)
	}
	all := hdrhistogram.New(1, 10_000_000, 3)
	for _, h := range hists {
		all.Merge(h)
	}
	us := func(q float64) time.Duration { return time.Duration(all.ValueAtQuantile(q)) * time.Microsecond }
	return result{name: name, perSec: float64(ops.Load()) / elapsed.Seconds(), p50: us(50), p99: us(99)}, nil
}

// orderID makes distinct order and user ids per worker and call.
func orderID(worker int, i int64) int64 { return int64(worker+1)<<40 | i }

func throughService(ctx context.Context, redisAddr string, store *invredis.Store, d time.Duration, clients int) (result, error) {
	const activity = 2
	if err := benchActivity(ctx, store, activity); err != nil {
		return result{}, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	svcCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- invapp.Run(svcCtx, invapp.Config{GRPCListener: lis, AdminListener: adm, RedisAddr: redisAddr,
			RedisPoolSize: clients, Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() { stop(); <-done }()
	cc, err := rpc.Dial(lis.Addr().String())
	if err != nil {
		return result{}, err
	}
	defer cc.Close()
	client := inventoryv1.NewInventoryServiceClient(cc)
	deadline := timestamppb.New(time.Now().Add(time.Hour))
	return drive(ctx, "Reserve through the inventory service (gRPC)", d, clients, func(ctx context.Context, w int, i int64) error {
		id := orderID(w, i)
		_, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{ActivityId: activity, UserId: id, Quantity: 1,
			OrderId: id, IdempotencyKey: strconv.FormatInt(id, 36), ExpiresAt: deadline})
		return err
	})
}

func throughAdapter(ctx context.Context, name string, store *invredis.Store, activity int64, d time.Duration, clients int) (result, error) {
	if err := benchActivity(ctx, store, activity); err != nil {
		return result{}, err
	}
	deadline := time.Now().Add(time.Hour)
	return drive(ctx, name, d, clients, func(ctx context.Context, w int, i int64) error {
		id := orderID(w, i)
		_, err := store.Reserve(ctx, inventory.ReserveRequest{ActivityID: activity, UserID: id, Quantity: 1,
			OrderID: id, IdempotencyKey: strconv.FormatInt(id, 36), ExpiresAt: deadline})
		return err
	})
}

// pgStrategy is one way of taking a unit from a hot Postgres row.
type pgStrategy struct {
	name string
	take func(ctx context.Context, pool *pgxpool.Pool) error
}

var conditionalUpdate = pgStrategy{
	name: "Postgres conditional UPDATE, one hot row",
	take: func(ctx context.Context, pool *pgxpool.Pool) error {
		_, err := pool.Exec(ctx, "UPDATE bench_stock SET stock = stock - 1 WHERE id = 1 AND stock >= 1")
		return err
	},
}

var selectForUpdate = pgStrategy{
	name: "Postgres SELECT … FOR UPDATE + UPDATE, one hot row",
	take: func(ctx context.Context, pool *pgxpool.Pool) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		var stock int64
		if err := tx.QueryRow(ctx, "SELECT stock FROM bench_stock WHERE id = 1 FOR UPDATE").Scan(&stock); err != nil {
			return err
		}
		if stock >= 1 {
			if _, err := tx.Exec(ctx, "UPDATE bench_stock SET stock = $1 WHERE id = 1", stock-1); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	},
}

func postgresDecrement(ctx context.Context, pool *pgxpool.Pool, s pgStrategy, d time.Duration, clients int) (result, error) {
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS bench_stock;
		CREATE TABLE bench_stock (id int PRIMARY KEY, stock bigint NOT NULL CHECK (stock >= 0));
		INSERT INTO bench_stock VALUES (1, 1000000000000)`); err != nil {
		return result{}, err
	}
	return drive(ctx, s.name, d, clients, func(ctx context.Context, _ int, _ int64) error { return s.take(ctx, pool) })
}
