package loadtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/api"
	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/audit"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/drive"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/order"
	orderapp "github.com/flashsale/flashsale/services/order/app"
)

// The whole platform runs once for this package, on the shared harness,
// exactly as `make demo` runs it, with a payment window short enough
// that the replay's abandoned orders expire and its late payers are
// refunded.
const paymentWindow = 10 * time.Second

// replays counts this run's replays, for their buyers' ids.
var replays atomic.Int64

// seckills counts this run's TestSeckillThroughHTTP, for its buyers' ids:
// the platform outlives a run (-count), and the last run's buyers have
// their orders.
var seckills atomic.Int64

var (
	stack    *localstack.Stack
	platform *local.Platform
)

func TestMain(m *testing.M) {
	localstack.RunTests(m, local.StackConfig(nil), func(s *localstack.Stack) {
		stack = s
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := local.Up(ctx, s, local.Options{
			AdjustOrder: func(c *orderapp.Config) {
				c.PaymentWindow = paymentWindow
				c.ReplayWait = raceSlowdown * order.DefaultReplayWait
			},
			AdjustGateway: func(c *gwapp.Config) {
				// As make demo runs it for the small scenario below.
				c.ChallengeBits = 8
				c.Blocklist.Devices = []string{"bot-farm"}
				c.CallTimeout = raceSlowdown * gateway.DefaultCallTimeout
			}})
		if err != nil {
			panic(err)
		}
		platform = p
	})
}

func mustToken(tb testing.TB, cl *client.Client, user int64, role string) string {
	tb.Helper()
	tok, err := cl.DevToken(context.Background(), user, role)
	if err != nil {
		tb.Fatalf("token for %d: %v", user, err)
	}
	return tok
}

// mustSale creates a product and a running flash sale and returns the
// activity id.
// salePrice is the price of mustSale's sales.
const salePrice = 3000

func mustSale(tb testing.TB, cl *client.Client, stock, limit int64) string {
	tb.Helper()
	ctx := context.Background()
	admin := mustToken(tb, cl, 1, "admin")
	sku, err := cl.CreateProduct(ctx, admin, "phone", 5000, stock)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	id, err := cl.CreateActivity(ctx, admin, api.Activity{SKUID: sku, Price: salePrice, Stock: stock, PerUserLimit: limit,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mustPool(tb testing.TB, db string) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.Dial(context.Background(), stack.PostgresURL(db), 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func code(err error) string {
	var api *client.APIError
	if errors.As(err, &api) {
		return api.Code
	}
	if err == nil {
		return "OK"
	}
	return err.Error()
}

func TestSeckillThroughHTTP(t *testing.T) {
	ctx := context.Background()
	cl := client.New(platform.GatewayURL, 8)
	act := mustSale(t, cl, 2, 1)
	aliceID := 900_000 + seckills.Add(1)*10
	alice, bob, carol := mustToken(t, cl, aliceID, "user"), mustToken(t, cl, aliceID+1, "user"), mustToken(t, cl, aliceID+2, "user")

	first, err := cl.Seckill(ctx, alice, act, 1, "alice-1", nil)
	if err != nil || first.Status != "PROCESSING" {
		t.Fatalf("alice buys: %+v, %v", first, err)
	}
	again, err := cl.Seckill(ctx, alice, act, 1, "alice-1", nil)
	if err != nil || again.OrderID != first.OrderID {
		t.Fatalf("replay with the same key: got %+v, %v; want order %s", again, err, first.OrderID)
	}
	if _, err := cl.Seckill(ctx, alice, act, 1, "alice-2", nil); code(err) != "LIMIT_EXCEEDED" {
		t.Fatalf("second unit for alice: got %s, want LIMIT_EXCEEDED", code(err))
	}
	if _, err := cl.Seckill(ctx, bob, act, 1, "bob-1", nil); err != nil {
		t.Fatalf("bob buys: %v", err)
	}
	if _, err := cl.Seckill(ctx, carol, act, 1, "carol-1", nil); code(err) != "SOLD_OUT" {
		t.Fatalf("carol after the last unit: got %s, want SOLD_OUT", code(err))
	}

	// The order is PROCESSING until the consumer writes it, then awaits
	// payment; its lines obey the API's invariants.
	var o api.Order
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err = cl.GetOrder(ctx, alice, first.OrderID)
		if err != nil {
			t.Fatalf("get order: %v", err)
		}
		if o.Status == "PENDING_PAYMENT" {
			break
		}
		if o.Status != "PROCESSING" || time.Now().After(deadline) {
			t.Fatalf("order status %s, want PROCESSING then PENDING_PAYMENT", o.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.Kind != "SECKILL" || o.UserID != strconv.FormatInt(aliceID, 10) || len(o.Lines) != 1 {
		t.Fatalf("order = %+v", o)
	}
	l := o.Lines[0]
	if l.Quantity != 1 || l.UnitPrice != 3000 || l.Amount != l.UnitPrice*l.Quantity || l.Payable != l.Amount-l.Discount || o.Payable != l.Payable || o.Total != l.Amount {
		t.Fatalf("order money does not add up: %+v", o)
	}

	if _, err := cl.GetOrder(ctx, bob, first.OrderID); code(err) != "FORBIDDEN" {
		t.Fatalf("bob reads alice's order: got %s, want FORBIDDEN", code(err))
	}
	list, err := cl.ListOrders(ctx, alice)
	if err != nil || len(list) != 1 || list[0].OrderID != first.OrderID {
		t.Fatalf("alice's orders = %+v, %v", list, err)
	}
	// Catalog reads are cached for about a second (gateway and product),
	// so the sold-out state shows within that, not at once.
	deadline = time.Now().Add(5 * time.Second)
	for {
		a, err := cl.GetActivity(ctx, act)
		if err == nil && a.Remaining == 0 && a.Status == "SOLD_OUT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity after the sale = %+v, %v; want remaining 0, SOLD_OUT", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBurstAuditPasses(t *testing.T) {
	ctx := context.Background()
	cl := client.New(platform.GatewayURL, 64)
	const stock, nUsers = 150, 600
	act := mustSale(t, cl, stock, 1)
	users := make([]client.User, nUsers)
	for i := range users {
		id := int64(10_000 + i)
		users[i] = client.User{ID: id, Token: mustToken(t, cl, id, "user")}
	}
	res, err := drive.RunBurst(ctx, cl, drive.BurstConfig{ActivityID: act, Users: users, Attempts: 2000,
		Concurrency: 64, Quantity: 1, ReplayShare: 0.1, Seed: 7}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[result.Failed] != 0 {
		t.Fatalf("%d attempts failed: %v", res.Counts[result.Failed], res.ErrorSamples)
	}
	if err := loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, time.Minute); err != nil {
		t.Fatal(err)
	}
	books, err := audit.ReadSeckillBooks(ctx, cl, mustPool(t, local.DBOrders), act)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range audit.Seckill(res, result.ActivityStat{Stock: stock, PerUserLimit: 1, Price: salePrice}, books) {
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	if got := int64(len(res.Orders)); got != stock {
		t.Errorf("accepted %d orders, want the whole stock %d (demand %d)", got, stock, res.DemandUnits)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(platform.GatewayURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
}

// smallScenario is a quick replay of every phase kind: two sales, one of
// them starting mid-run, a spike and browsing.
const smallScenario = `
name: small
seed: 5
users: {count: 300, first_id: 700000}
catalog:
  products:
    - {key: phone, title: Phone, price: 100000, stock: 1000}
    - {key: mug, title: Mug, price: 2000, stock: 1000}
  activities:
    - {key: phone-sale, product: phone, price: 50000, stock: 80, per_user_limit: 1, starts_in: 1s, lasts: 10m, challenge: true}
    - {key: mug-sale, product: mug, price: 900, stock: 60, per_user_limit: 2, starts_in: 3s, lasts: 10m}
    # The bots' own sale, which no buyer wants: its stock outlasts them,
    # so every trick meets the wall rather than the sold-out flag.
    - {key: bot-sale, product: mug, price: 900, stock: 500, per_user_limit: 1, starts_in: 0s, lasts: 10m, challenge: true}
  promotions:
    - {kind: FULL_REDUCTION, tiers: [{threshold: 50000, off: 5000}]}
    - {kind: SKU_DISCOUNT, products: [mug], rate_bp: 9000}
  coupons:
    - {threshold: 3000, amount: 500, share: 0.5}
phases:
  - {name: browse, kind: browse, start: 0s, hold: 5s, rate: 50}
  - {name: countdown, kind: countdown, start: 0s, hold: 1s, rate: 50}
  - {name: spike, kind: seckill, start: 0s, ramp: 1s, hold: 4s, rate_from: 50, rate: 300, replay_share: 0.1, activities: [phone-sale, mug-sale]}
  - {name: checkout, kind: checkout, start: 1s, hold: 3s, rate: 15, coupon_share: 0.8}
  - {name: bots, kind: bots, start: 0s, hold: 3s, rate: 40, activities: [bot-sale]}
bots: {accounts: 5, blocked_device: bot-farm}
payment: {pay_share: 0.6, cancel_share: 0.2, late_share: 0.2, duplicate_share: 0.2, refund_share: 0.5, stranger_share: 0.1,
          delay: [100ms, 200ms], channels: {alipay: 1, wechat: 1}}
faults:
  - {channel: alipay, mode: down, at: 1s, lasts: 1s}
  - {channel: wechat, mode: slow, at: 2s, lasts: 1s, latency: 300ms}
  - {channel: wechat, mode: failing, at: 3s, lasts: 1s, failure_rate: 0.2}
drain: 20s
`

// A buyer passes a sale's challenge as its page does: fetch, solve, wait
// wait_ms, buy; without the challenge, or before the wait, the buy is
// refused.
func TestChallengedBuyThroughHTTP(t *testing.T) {
	ctx := context.Background()
	cl := client.New(platform.GatewayURL, 8)
	admin, alice := mustToken(t, cl, 1, "admin"), mustToken(t, cl, 801, "user")
	sku, err := cl.CreateProduct(ctx, admin, "phone", 5000, 10)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	act, err := cl.CreateActivity(ctx, admin, api.Activity{SKUID: sku, Price: 3000, Stock: 10, PerUserLimit: 1,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), ChallengeRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	device := map[string]string{api.DeviceHeader: "web-801"}
	if _, err := cl.Seckill(ctx, alice, act, 1, "a-1", device); code(err) != "CHALLENGE_REQUIRED" {
		t.Fatalf("buy without a challenge: %v, want CHALLENGE_REQUIRED", err)
	}
	c, err := cl.Challenge(ctx, alice, act, "web-801")
	received := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if c.Bits != 8 {
		t.Fatalf("challenge asks %d bits, the platform is set to 8", c.Bits)
	}
	answer, err := drive.AnswerChallenge(ctx, c, received)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(received); waited < time.Duration(c.WaitMS)*time.Millisecond {
		t.Fatalf("answered after %s, before the challenge's wait of %d ms", waited, c.WaitMS)
	}
	if !api.SolvesChallenge(answer[api.ChallengeHeader], answer[api.ChallengeAnswerHeader], c.Bits) {
		t.Fatalf("answer %v does not solve the challenge", answer)
	}
	answer[api.DeviceHeader] = "web-801"
	if _, err := cl.Seckill(ctx, alice, act, 1, "a-2", answer); err != nil {
		t.Fatalf("buy with the answered challenge: %v", err)
	}
}

func TestReplayAuditPasses(t *testing.T) {
	ctx := context.Background()
	sc, err := scenario.Parse([]byte(smallScenario))
	if err != nil {
		t.Fatal(err)
	}
	// Buyers new to the platform, which outlives a run of this test
	// (-count): the last run's have claimed their coupons and met their
	// limits.
	sc.Users.FirstID += replays.Add(1) * 1_000_000
	cl := client.New(platform.GatewayURL, 64)
	dir := t.TempDir()
	var ended *result.Replay
	res, ok, err := loadtest.RunSession(ctx, loadtest.SessionConfig{
		Scenario: sc, Client: cl, Target: platform.GatewayURL, OutDir: dir, Out: io.Discard,
		Orders: mustPool(t, local.DBOrders), Payments: mustPool(t, local.DBPayment), SimulatorURL: platform.ChannelsURL,
		Drained: func(ctx context.Context) error {
			return loadtest.WaitDrained(ctx, stack.KafkaBrokers, local.ConsumerGroup, local.TopicOrdersPlaced, time.Minute)
		},
		AroundReplay: func() func(*result.Replay) {
			return func(res *result.Replay) { ended = res }
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ended != res {
		t.Error("AroundReplay's end was not handed the session's result")
	}
	// The answered buys, counted by second, are the buys of every
	// outcome but rate-limited and failed, counted by outcome.
	var answered int64
	for _, e := range res.Endpoints {
		if e.Endpoint == drive.EndpointSeckill && e.Outcome != string(result.RateLimited) && e.Outcome != string(result.Overloaded) && e.Outcome != string(result.Failed) {
			answered += e.Count
		}
	}
	if got := res.SeckillAnswered(); got == 0 || int64(got) != answered {
		t.Errorf("answered buys: got %d, want %d (and some)", got, answered)
	}
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	if !ok {
		t.Fatal("session not ok")
	}
	// Before mug-sale starts its buyers are told so; both sales sell out
	// (stock that cancellations give back is sold again, so a sale may
	// accept more orders than its stock; the audit above checks that
	// what is held never exceeds it).
	for _, a := range res.Activities {
		if a.Key != "bot-sale" && int64(a.Accepted) < a.Stock {
			t.Errorf("%s: accepted %d, want at least the whole stock %d", a.Key, a.Accepted, a.Stock)
		}
	}
	if res.Sales["mug-sale"].Counts[result.NotActive] == 0 {
		t.Error("no buy before mug-sale's start was answered ACTIVITY_NOT_ACTIVE")
	}
	// phone-sale's buyers passed the challenge as browsers do: none was
	// refused by the wall, and none came before the sale (the
	// challenge's wait runs to the start). Every trick of the bots was
	// tried and refused (the audit above holds that none bought).
	if s := res.Sales["phone-sale"]; s.Counts[result.Walled] != 0 || s.Counts[result.NotActive] != 0 {
		t.Errorf("phone-sale's buyers: %d refused by the wall, %d too early", s.Counts[result.Walled], s.Counts[result.NotActive])
	}
	for _, c := range res.Checks {
		if strings.HasPrefix(c.Name, "bots") {
			t.Log(c.Detail)
		}
	}
	// Strangers tried orders of every kind of follow-up (the scenario's
	// stranger_share) and were refused each time: each endpoint they
	// tried answered FORBIDDEN at least once.
	forbidden := map[string]bool{}
	for _, e := range res.Endpoints {
		if result.IsStrangerEndpoint(e.Endpoint) && e.Outcome == "forbidden" {
			forbidden[e.Endpoint] = true
		}
	}
	for _, ep := range []string{drive.EndpointOrder, drive.EndpointPay, drive.EndpointCancel, drive.EndpointRefund, drive.EndpointPayment} {
		if !forbidden[result.StrangerEndpoint(ep)] {
			t.Errorf("no stranger's %s was refused FORBIDDEN (%v)", ep, forbidden)
		}
	}
	for _, trick := range result.BotTricks {
		if len(res.Bots.Answers[trick]) == 0 {
			t.Errorf("bots: no %s tried (%v)", trick, res.Bots.Answers)
		}
	}
	for code, trick := range map[string]string{"challenge_required": result.TrickNoChallenge, "challenge_used": result.TrickReused,
		"challenge_invalid": result.TrickShared, "blocked": result.TrickBlocked, "limit_exceeded": result.TrickOverLimit} {
		if res.Bots.Answers[trick][code] == 0 {
			t.Errorf("bots: %s never answered %s (%v)", trick, code, res.Bots.Answers[trick])
		}
	}
	// A phase or follow-up whose endpoint the gateway lacks is reported
	// as skipped with the router's status, never simulated.
	for _, f := range res.Features {
		if !f.Available && !strings.HasPrefix(f.Reason, "skipped: endpoint not available (40") {
			t.Errorf("feature %s: reason %q", f.Name, f.Reason)
		}
	}
	for _, p := range res.Phases {
		if p.Kind == scenario.PhaseCheckout && p.Status != "ran" && p.Sent != 0 {
			t.Errorf("skipped phase %s sent %d requests", p.Name, p.Sent)
		}
	}
	// Every fault was applied and lifted; buyers paid (some late, some
	// twice), cancelled and abandoned; the platform expired the abandoned
	// orders and refunded the late and the duplicate money.
	for _, f := range res.Faults {
		if f.Status != "applied and lifted" {
			t.Errorf("fault %s: %s", f.Fault, f.Status)
		}
	}
	fu, st := res.FollowUps, res.Orders
	for name, n := range map[string]int64{
		"paid": fu.Paid, "paid late": fu.LatePaid, "paid twice": fu.Duplicated, "cancelled": fu.Cancelled,
		"PAID": int64(st.ByStatus["PAID"]), "EXPIRED": int64(st.ByStatus["EXPIRED"]), "CANCELLED": int64(st.ByStatus["CANCELLED"]),
		"late refunds": int64(st.LateRefunds), "duplicate refunds": int64(st.DuplicateRefunds), "released units": st.ReleasedUnits,
		"coupons used": res.Coupons.Used,
	} {
		if n == 0 {
			t.Errorf("%s: none (follow-ups %+v, orders %+v, coupons %+v)", name, fu, st, res.Coupons)
		}
	}
	for _, name := range []string{"report.json", "report.html"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
