package local_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/deploy/local"
)

// TestOrderReplicaKilledTheOtherServes: with two order replicas, buyers
// buy through the gateway in three waves: both replicas up (the gateway
// spreads the buys over both), replica 1 killed as kill -9 does during
// the first wave and down for the second, and started again for the
// third. Every buyer is answered within the budget with a documented
// code, the second wave's buys are accepted by the other replica, and the
// books hold: every accepted buy is stored exactly once and every unit is
// on sale or held by a stored order.
func TestOrderReplicaKilledTheOtherServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := local.Up(ctx, stack, local.Options{OrderReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	c := client{tb: t, base: p.GatewayURL}
	admin := c.MustToken("1", "admin")
	const stock, wave, workers = 150, 60, 12
	act := mustSale(t, c, admin, stock)

	var mu sync.Mutex
	accepted := map[string]string{} // idempotency key → buyer
	// waveOf runs buyers first..first+wave-1, workers at a time, and
	// returns the answers by status; kill, when set, starts once a third
	// of them are sent, while the rest are under way.
	waveOf := func(first int, kill func()) map[int]int {
		answers := map[int]int{}
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for b := range next {
					user, key := fmt.Sprint(50_000+b), fmt.Sprintf("replica-%d", b)
					code, took := buy(p.GatewayURL, c.MustToken(user, "user"), act, key)
					mu.Lock()
					answers[code]++
					if code == http.StatusAccepted {
						accepted[key] = user
					}
					mu.Unlock()
					if took > budget {
						t.Errorf("buyer %d waited %s, more than the %s budget", b, took, budget)
					}
				}
			})
		}
		for b := first; b < first+wave; b++ {
			if b == first+wave/3 && kill != nil {
				go kill()
			}
			next <- b
		}
		close(next)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for code := range answers {
			switch code {
			case http.StatusAccepted, http.StatusConflict, http.StatusTooManyRequests, http.StatusServiceUnavailable:
			default:
				t.Errorf("answers %v: %d is not a documented answer to a buy", answers, code)
			}
		}
		return answers
	}

	killed := make(chan error, 1)
	waveDone := make(chan struct{})
	var before map[int]int
	go func() {
		defer close(waveDone)
		before = waveOf(0, func() {
			// The gateway must be sending buys to replica 1 too, or
			// killing it tests nothing: it is killed once it has
			// served one.
			for served := false; !served; {
				select {
				case <-waveDone:
					t.Errorf("replica 1 served none of the first wave's buys (replica 0: %d): the gateway does not spread over the replicas",
						placed(t, p.OrderAdminURL(0)))
					served = true
				case <-time.After(10 * time.Millisecond):
					served = placed(t, p.OrderAdminURL(1)) > 0
				}
			}
			killed <- p.KillOrderReplica(1)
		})
	}()
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	<-waveDone
	down := waveOf(wave, nil)
	if err := p.StartOrderReplica(ctx, 1); err != nil {
		t.Fatal(err)
	}
	after := waveOf(2*wave, nil)
	t.Logf("answers: both up then replica 1 killed %v; replica 1 down %v; restarted %v", before, down, after)
	if down[http.StatusAccepted] == 0 {
		t.Errorf("no buy was accepted while replica 1 was down (%v); replica 0 must serve them", down)
	}

	conn, err := pgx.Connect(ctx, stack.PostgresURL(local.DBOrders))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	keys := make([]string, 0, len(accepted))
	for k := range accepted {
		keys = append(keys, k)
	}
	// A buyer answered 503 may still hold an order (the replica died after
	// publishing it): the books count every stored order, and every
	// accepted key must be among them, once.
	var stored, units, remaining int64
	var kept, keptOnce int
	for deadline := time.Now().Add(time.Minute); ; {
		if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(q), 0),
				count(*) FILTER (WHERE k = ANY($2)), count(DISTINCT k) FILTER (WHERE k = ANY($2))
			FROM (SELECT o.idempotency_key AS k, l.quantity AS q FROM orders o
				JOIN order_lines l USING (order_id) WHERE o.activity_id = $1) s`, act, keys).Scan(&stored, &units, &kept, &keptOnce); err != nil {
			t.Fatal(err)
		}
		var a struct {
			Remaining int64 `json:"remaining"`
		}
		c.MustDo(http.MethodGet, "/api/v1/activities/"+act, "", nil, "", http.StatusOK, &a)
		remaining = a.Remaining
		if (kept >= len(keys) && remaining+units == stock) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d accepted, %d stored, %d units, %d remaining", len(keys), stored, units, remaining)
	if kept != len(keys) || keptOnce != len(keys) {
		t.Errorf("%d orders stored for the %d accepted buys (%d distinct); want each stored once", kept, len(keys), keptOnce)
	}
	if remaining+units != stock || units > stock {
		t.Errorf("remaining %d + %d units held by stored orders, want the sale's %d", remaining, units, stock)
	}
}

// placed is how many flash-sale buys the order replica at admin has
// answered, from its grpc_server_handled_total.
func placed(t *testing.T, admin string) int {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Errorf("metrics of %s: %v", admin, err)
		return 0
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpc_server_handled_total{") || !strings.Contains(line, "PlaceSeckill") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			n += int(v)
		}
	}
	return n
}

// TestOrderReplicaStartedWhilePostgresIsDownComesUp: an order replica
// started again while Postgres is down fails to start, as the process
// would, and is started once more until Postgres is back, as a supervisor
// restarts a crashed container, instead of failing the platform (the
// chaos run's order restart fell in its Postgres crash and left the
// replica down for good).
func TestOrderReplicaStartedWhilePostgresIsDownComesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	retried := make(chan struct{}, 1)
	log := slog.New(signal{msg: "order service failed to start again", c: retried})
	p, err := local.Up(ctx, stack, local.Options{OrderReplicas: 2, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if err := p.KillOrderReplica(1); err != nil {
		t.Fatal(err)
	}
	if err := stack.StopPostgres(); err != nil {
		t.Fatal(err)
	}
	postgresDown := true
	defer func() {
		if postgresDown {
			if err := stack.StartPostgres(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}()
	started := make(chan error, 1)
	go func() { started <- p.StartOrderReplica(ctx, 1) }()
	select {
	case <-retried:
	case err := <-started:
		t.Fatalf("the replica's start with Postgres down ended (%v) without being tried again", err)
	case <-ctx.Done():
		t.Fatal("the replica's start with Postgres down was never retried")
	}
	if err := stack.StartPostgres(ctx); err != nil {
		t.Fatal(err)
	}
	postgresDown = false
	if err := <-started; err != nil {
		t.Fatalf("replica 1 did not come up once Postgres was back: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("the platform failed: %v", err)
	}
}

// signal is a log handler that tells c when a warning starting with msg
// is logged.
type signal struct {
	msg string
	c   chan struct{}
}

func (s signal) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (s signal) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, s.msg) {
		select {
		case s.c <- struct{}{}:
		default:
		}
	}
	return nil
}
func (s signal) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s signal) WithGroup(string) slog.Handler      { return s }
