package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// bucketCounts are the splits of one sale's stock bucketScaling measures.
var bucketCounts = []int{1, 2, 4}

// bucketScaling measures one sale's reservations per second with its
// stock in 1, 2 and 4 buckets (docs/stock-reservation.md, "A sale beyond
// one Redis primary") on a Redis Cluster of three primaries of its own,
// through the Go Redis adapter on the auto-pipelined cluster client, as
// the inventory service runs it. Every call is a new buyer, so the
// buyers spread over the buckets; the stock never runs out, so no
// transfer runs. It prints each figure as a ratio to the one bucket's,
// measured in the same run, beside the CPU the busiest primary spent per
// reservation: on a machine whose cores the client and all three
// primaries share, the throughput shows the client's limit, and the
// busiest primary's CPU per reservation what splitting takes off the
// primary that caps a sale (its one core over that is the sale's
// ceiling).
func bucketScaling(ctx context.Context, d time.Duration, clients int) error {
	stack, err := localstack.Start(ctx, localstack.Config{RedisCluster: true, NoBroker: true})
	if err != nil {
		return err
	}
	defer stack.Close()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: stack.RedisClusterAddrs, PoolSize: clients})
	defer cc.Close()
	store := invredis.NewStore(redisclient.Coalesced(cc))

	fmt.Printf("\n## One sale's stock in buckets on a %d-primary Redis Cluster\n\n", len(stack.RedisClusterAddrs))
	fmt.Printf("Reserve through the Go Redis adapter, auto-pipelined: %d concurrent clients for %s each, on %d CPUs shared by the client and every primary.\n\n",
		clients, d, cpus())
	var results []result
	var busiest []float64
	for i, n := range bucketCounts {
		activity := int64(100 + i)
		if _, err := store.Preheat(ctx, activity, 1<<40, 1<<40, n); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Hour)
		before, err := primaryCPU(ctx, cc)
		if err != nil {
			return err
		}
		t0 := time.Now()
		r, err := drive(ctx, fmt.Sprintf("%d bucket(s)", n), d, clients, func(ctx context.Context, w int, i int64) error {
			id := orderID(w, i)
			_, err := store.Reserve(ctx, inventory.ReserveRequest{ActivityID: activity, UserID: id, Quantity: 1,
				OrderID: id, IdempotencyKey: strconv.FormatInt(id, 36), ExpiresAt: deadline})
			return err
		})
		if err != nil {
			return err
		}
		after, err := primaryCPU(ctx, cc)
		if err != nil {
			return err
		}
		var top float64
		for addr, cpu := range after {
			top = max(top, (cpu-before[addr])/time.Since(t0).Seconds())
		}
		results = append(results, r)
		busiest = append(busiest, top)
	}
	// The busiest primary's CPU per reservation bounds the sale: a
	// primary has one core for scripts, so the sale's ceiling is one
	// second of CPU over it.
	fmt.Printf("| buckets | reservations/s | ratio to 1 bucket | busiest primary's CPU per reservation | the sale's ceiling, ratio to 1 bucket | p50 | p99 |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|\n")
	perCall := func(i int) float64 { return busiest[i] / results[i].perSec }
	for i, r := range results {
		fmt.Printf("| %s | %.0f | %.2f | %.1f µs | %.2f | %s | %s |\n", r.name, r.perSec, r.perSec/results[0].perSec,
			perCall(i)*1e6, perCall(0)/perCall(i), r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	}
	return nil
}

// primaryCPU reads each primary's CPU seconds so far (INFO cpu: user and
// system), by address: the work a sale puts on its busiest primary is
// what caps it.
func primaryCPU(ctx context.Context, cc *goredis.ClusterClient) (map[string]float64, error) {
	var mu sync.Mutex
	out := map[string]float64{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		var sum float64
		for _, line := range strings.Split(info, "\r\n") {
			name, v, ok := strings.Cut(line, ":")
			if ok && (name == "used_cpu_user" || name == "used_cpu_sys") {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("INFO cpu %s: %w", line, err)
				}
				sum += f
			}
		}
		mu.Lock()
		out[c.Options().Addr] = sum
		mu.Unlock()
		return nil
	})
	return out, err
}
