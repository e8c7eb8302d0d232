package local_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// TestOrderKilledMidBatchLosesAndDuplicatesNothing: buyers keep buying
// while the order service is killed between a consumer batch's write and
// its commit, and started again, with 30 ms of latency on every Postgres
// connection (the consumer's write is slow, so the window between write
// and commit is wide, as under a loaded database). Every buy that was
// accepted (202) is stored exactly once, and no more units are sold than
// the sale had.
func TestOrderKilledMidBatchLosesAndDuplicatesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, p := mustFaultyPlatform(t, ctx)
	lift, err := s.Fault(localstack.Postgres, localstack.Fault{Kind: localstack.Latency, Latency: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := client{tb: t, base: p.GatewayURL}
	admin := c.MustToken("1", "admin")
	const stock, buyers = 150, 300
	act := mustSale(t, c, admin, stock)
	tokens := make([]string, buyers)
	for i := range tokens {
		tokens[i] = c.MustToken(fmt.Sprint(1000+i), "user")
	}

	var accepted atomic.Int64
	buy := func(i int) {
		req, _ := http.NewRequest(http.MethodPost, p.GatewayURL+"/api/v1/seckill/orders",
			stringsReader(fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act)))
		req.Header.Set("Authorization", "Bearer "+tokens[i])
		req.Header.Set("Idempotency-Key", fmt.Sprintf("kill-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			accepted.Add(1)
		}
	}
	var wg sync.WaitGroup
	for i := range buyers / 2 {
		wg.Go(func() { buy(i) })
	}
	midBatch := p.KillOrder(10 * time.Second)
	wg.Wait()
	if err := p.StartOrder(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := buyers / 2; i < buyers; i++ {
		wg.Go(func() { buy(i) })
	}
	wg.Wait()
	if !midBatch {
		t.Fatal("no consumer batch was caught between its write and its commit")
	}
	if err := lift(); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(context.Background(), s.PostgresURL(local.DBOrders))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored, units int64
	deadline := time.Now().Add(time.Minute)
	for {
		err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(l.quantity), 0) FROM orders o
			JOIN order_lines l USING (order_id) WHERE o.activity_id = $1`, act).Scan(&stored, &units)
		if err != nil {
			t.Fatal(err)
		}
		if stored >= accepted.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stored != accepted.Load() || units > stock || accepted.Load() == 0 {
		t.Fatalf("%d orders stored (%d units) for %d accepted buys of %d units; want each accepted buy stored once",
			stored, units, accepted.Load(), stock)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
