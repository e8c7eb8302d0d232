package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/loadtest/shadow"
	"github.com/flashsale/flashsale/platform/postgres"
	pshadow "github.com/flashsale/flashsale/platform/shadow"
)

func mustRouted(tb testing.TB, db string) *postgres.Router {
	tb.Helper()
	r, err := postgres.DialRouted(context.Background(), stack.PostgresURL(db), 4)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

// The small scenario replayed twice at once against one platform, by the
// same buyers: once as real traffic, once marked (全链路压测). Both runs'
// audits pass, each reading its own class (the marked one through the
// routed databases and a marked client); each class's stock is its own
// run's alone; the leakage audit finds nothing either way; the cleanup
// empties the shadow side and leaves the real one as it was.
func TestMixedReplayLeaksNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Buyers new to the platform (it outlives a run: -count), the same
	// ids in both classes: each class's limits, coupons and orders are
	// its own.
	first := replays.Add(1) * 1_000_000
	session := func(orders, payments postgres.DB, out *bytes.Buffer) loadtest.SessionConfig {
		sc, err := scenario.Parse([]byte(smallScenario))
		if err != nil {
			t.Fatal(err)
		}
		sc.Users.FirstID += first
		// Each class at a third of the small scenario's rates: together
		// they offer less than TestReplayAuditPasses offers alone. The
		// audits' latency-bound checks (5xx only under a fault: a call
		// that outlives the gateway's budget is a 503) are also why this
		// package's platform has raceSlowdown times the budgets
		// (race_test.go): at a third and the production budgets, the two
		// classes' herds at phone-sale's opening outlived 2 s in one run
		// in eight under -race with a busy core. Load beyond that is the
		// demo's (make demo MIXED=1), not a test's.
		for i := range sc.Phases {
			sc.Phases[i].Rate /= 3
			sc.Phases[i].RateFrom /= 3
		}
		return loadtest.SessionConfig{
			Scenario: sc, Client: client.New(platform.GatewayURL, 64), Target: platform.GatewayURL, Out: out,
			Orders: orders, Payments: payments, SimulatorURL: platform.ChannelsURL,
			Drained: func(ctx context.Context) error {
				return loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, time.Minute)
			},
		}
	}
	var realOut, markedOut, out bytes.Buffer
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	stores := shadow.Stores{
		Product: stack.PostgresURL(local.DBProduct), Orders: stack.PostgresURL(local.DBOrders),
		Payment: stack.PostgresURL(local.DBPayment), Marketing: stack.PostgresURL(local.DBMarketing), Redis: rdb,
	}
	m, err := loadtest.RunMixed(ctx, loadtest.MixedConfig{
		Real:   session(mustPool(t, local.DBOrders), mustPool(t, local.DBPayment), &realOut),
		Marked: session(mustRouted(t, local.DBOrders), mustRouted(t, local.DBPayment), &markedOut),
		Stores: stores, Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\nreal:\n%s\nmarked:\n%s", err, realOut.String(), markedOut.String())
	}
	t.Logf("\n%s", out.String())
	for _, run := range []struct {
		name string
		res  *result.Replay
		ok   bool
		out  *bytes.Buffer
	}{{"real", m.Real, m.RealOK, &realOut}, {"marked", m.Marked, m.MarkedOK, &markedOut}} {
		for _, c := range run.res.Checks {
			if !c.OK {
				t.Errorf("%s run: %s: %s", run.name, c.Name, c.Detail)
			}
		}
		if !run.ok {
			t.Errorf("%s run's audit failed; its report:\n%s", run.name, run.out.String())
		}
		// Both sold: the marked run's audit read real figures of its
		// own, not an empty shadow side. Every real sale sold; the
		// marked run yields its places to the real one at the admission
		// limit (gateway/admission.go), so one of its sales may have
		// been refused throughout, but not all.
		accepted := 0
		for _, a := range run.res.Activities {
			accepted += a.Accepted
			if a.Key != "bot-sale" && a.Accepted == 0 && run.name == "real" {
				t.Errorf("%s run: %s accepted nothing", run.name, a.Key)
			}
		}
		if accepted == 0 {
			t.Errorf("%s run: no sale accepted anything", run.name)
		}
		if run.res.FollowUps.Paid == 0 || run.res.Orders.ByStatus["PAID"] == 0 {
			t.Errorf("%s run: nothing paid (%+v, %+v)", run.name, run.res.FollowUps, run.res.Orders)
		}
	}
	// The marked run left the shared switches alone (no fault of its
	// own, no channel setup) and met the real run's faults.
	met := 0
	for _, f := range m.Marked.Faults {
		switch {
		case strings.HasPrefix(f.Status, "met: "):
			met++
		case !strings.HasPrefix(f.Status, "skipped: a pressure test"):
			t.Errorf("marked run: fault %s: %s", f.Fault, f.Status)
		}
	}
	if met != len(m.Real.Faults) {
		t.Errorf("the marked run met %d of the real run's %d faults: %+v", met, len(m.Real.Faults), m.Marked.Faults)
	}
	for _, c := range m.Stock {
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	l := m.Leakage
	if !l.Clean() {
		t.Errorf("leaks:\n%s", l)
	}
	if l.Orders[pshadow.LabelShadow] == 0 || l.Payments[pshadow.LabelShadow] == 0 || l.Orders[pshadow.LabelReal] == 0 {
		t.Errorf("the audit saw too little to prove anything: orders %v, payments %v", l.Orders, l.Payments)
	}
	if m.Before.Rows == 0 || m.Before.Keys == 0 || m.Cleaned.Tables == 0 || m.Cleaned.Keys == 0 {
		t.Errorf("the cleanup had nothing to do: before %+v, cleaned %+v", m.Before, m.Cleaned)
	}
	if !m.After.Empty() {
		t.Errorf("the shadow side after the cleanup: %+v", m.After)
	}
	// The real side is as the real run left it: its sales' books still
	// hold.
	again, err := shadow.Audit(ctx, stores)
	if err != nil {
		t.Fatal(err)
	}
	if again.Orders[pshadow.LabelReal] != l.Orders[pshadow.LabelReal] || again.Orders[pshadow.LabelShadow] != 0 {
		t.Errorf("after the cleanup: orders %v, were %v", again.Orders, l.Orders)
	}
	if !m.OK() {
		t.Error("the mixed run is not OK")
	}
	screenShowsRealOnly(t, ctx, m)
}

// screenShowsRealOnly checks that the big screen (fed from orders.events)
// did not move for the marked run: once caught up, its stored orders are
// the real tables' orders (every real order this platform stored, the
// screen reading from the topic's first offset), its succeeded payments
// are the real ledger's (every payment that ever succeeded on this
// platform's one payment service, whose counters the screen reads), and
// none of the marked sales is on it.
func screenShowsRealOnly(t *testing.T, ctx context.Context, m *loadtest.Mixed) {
	t.Helper()
	pool, ledger := mustPool(t, local.DBOrders), mustPool(t, local.DBPayment)
	admin := mustToken(t, client.New(platform.GatewayURL, 1), 1, "admin")
	var snap gateway.ScreenSnapshot
	var real, realPaid, screenPaid int64
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM public.orders").Scan(&real); err != nil {
			t.Fatal(err)
		}
		if err := ledger.QueryRow(ctx, "SELECT count(*) FROM public.payments WHERE paid_at IS NOT NULL").Scan(&realPaid); err != nil {
			t.Fatal(err)
		}
		snap = screenSnapshot(t, ctx, admin)
		screenPaid = 0
		for _, c := range snap.Channels {
			if c.Succeeded != nil {
				screenPaid += *c.Succeeded
			}
		}
		if snap.StoredOrders == real && screenPaid == realPaid || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if snap.StoredOrders != real {
		t.Errorf("the big screen shows %d stored orders, the real tables hold %d (the marked run stored %d)",
			snap.StoredOrders, real, m.Leakage.Orders[pshadow.LabelShadow])
	}
	if screenPaid != realPaid {
		t.Errorf("the big screen shows %d succeeded payments, the real ledger %d (the marked run's payments must count apart)",
			screenPaid, realPaid)
	}
	marked := map[string]bool{}
	for _, a := range m.Marked.Activities {
		marked[a.ActivityID] = true
	}
	for _, sale := range snap.Sales {
		if marked[sale.ActivityID] {
			t.Errorf("the big screen shows the marked sale %s", sale.ActivityID)
		}
	}
	t.Logf("big screen: stored %d, paid %d, GMV %d, succeeded payments %d; real tables %d orders, ledger %d succeeded",
		snap.StoredOrders, snap.PaidOrders, snap.GMV, screenPaid, real, realPaid)
}

// screenSnapshot reads one snapshot of the big screen's stream.
func screenSnapshot(t *testing.T, ctx context.Context, admin string) gateway.ScreenSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, platform.GatewayURL+gateway.ScreenEventsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var snap gateway.ScreenSnapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatal(err)
			}
			return snap
		}
	}
	t.Fatalf("no snapshot from the big screen: %v", sc.Err())
	return gateway.ScreenSnapshot{}
}
