// Command shadow audits and cleans up the pressure-test (全链路压测) side
// of the platform's stores (docs/pressure-test.md):
//
//	go run ./loadtest/cmd/shadow -audit -clean \
//	  -product postgres://.../product -orders postgres://.../orders \
//	  -payment postgres://.../payment -marketing postgres://.../marketing \
//	  -redis 127.0.0.1:6379
//
// -audit prints the leakage audit and fails on a leak; -clean then
// empties the shadow schemas, deletes the shadow Redis keys (on every
// primary of a cluster: -redis-cluster); the shadow topics stay (see
// shadow.Clean).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/flashsale/flashsale/loadtest/shadow"
	"github.com/flashsale/flashsale/platform/redisclient"
)

func main() {
	var (
		s                     shadow.Stores
		redisAddr             string
		cluster, audit, clean bool
	)
	flag.StringVar(&s.Product, "product", "", "the product database's URL")
	flag.StringVar(&s.Orders, "orders", "", "the orders database's URL")
	flag.StringVar(&s.Payment, "payment", "", "the payment database's URL")
	flag.StringVar(&s.Marketing, "marketing", "", "the marketing database's URL")
	flag.StringVar(&redisAddr, "redis", "", "Redis host:port (a list of nodes with -redis-cluster)")
	flag.BoolVar(&cluster, "redis-cluster", false, "Redis is a cluster")
	flag.BoolVar(&audit, "audit", false, "print the leakage audit; exit 1 on a leak")
	flag.BoolVar(&clean, "clean", false, "delete the shadow data")
	flag.Parse()
	if err := run(s, redisAddr, cluster, audit, clean); err != nil {
		fmt.Fprintln(os.Stderr, "shadow:", err)
		os.Exit(1)
	}
}

func run(s shadow.Stores, redisAddr string, cluster, audit, clean bool) error {
	if !audit && !clean {
		return fmt.Errorf("nothing to do: -audit, -clean or both")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if redisAddr != "" {
		rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: redisAddr, Cluster: cluster}, 4)
		if err != nil {
			return err
		}
		defer rdb.Close()
		s.Redis = rdb
	}
	if audit {
		if s.Product == "" || s.Orders == "" || s.Payment == "" {
			return fmt.Errorf("-audit needs -product, -orders and -payment")
		}
		r, err := shadow.Audit(ctx, s)
		if err != nil {
			return err
		}
		fmt.Print(r)
		if !r.Clean() {
			return fmt.Errorf("the audit found leaks")
		}
	}
	if clean {
		c, err := shadow.Clean(ctx, s)
		if err != nil {
			return err
		}
		fmt.Printf("shadow data removed: %d tables emptied, %d keys deleted\n", c.Tables, c.Keys)
	}
	return nil
}
