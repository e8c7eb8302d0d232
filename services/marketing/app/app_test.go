package app_test

import (
	"context"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	"github.com/flashsale/flashsale/services/marketing/app"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"marketing"}}, func(s *localstack.Stack) { stack = s })
}

// t0 is where the first service's clock stands.
var t0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

// started counts the services the run started; each one's manual clock
// stands that many hours after t0. -count=N runs the tests again against
// one database, so a test's promotions and coupons must not be live at
// another service's instant (an every-SKU reduction of an earlier run
// would apply to this run's cart), and, the snowflake node numbers
// wrapping (localstack.NodeID), two services must never make ids in the
// same millisecond.
var started atomic.Int64

// users hands out user ids no earlier run against the database used.
var users atomic.Int64

func init() { users.Store(time.Now().UnixMicro()) }

// window is a validity window around a service's instant that no other
// service's instant falls into.
func window(now time.Time) (from, until *timestamppb.Timestamp) {
	return timestamppb.New(now.Add(-time.Minute)), timestamppb.New(now.Add(time.Minute))
}

// MustService runs the service on free ports with a manual clock at its
// own instant until the test ends, and returns a client whose calls wait
// until it serves, and the instant.
func MustService(tb testing.TB) (marketingv1.MarketingServiceClient, time.Time) {
	tb.Helper()
	var now time.Time
	addr, _ := mustRun(tb, func(c *app.Config) { now = c.Clock.Now() })
	cc, err := rpc.Dial(addr, grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return marketingv1.NewMarketingServiceClient(cc), now
}

// mustRun runs the service on free ports with a manual clock at its own
// instant, and
// configure's changes, until the test ends or stop is called; it returns
// the gRPC address.
func mustRun(tb testing.TB, configure func(*app.Config)) (addr string, stop func()) {
	tb.Helper()
	var lis [2]net.Listener
	for i := range lis {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lis[i] = l
	}
	cfg := app.Config{GRPCListener: lis[0], AdminListener: lis[1], Clock: clock.NewManual(t0.Add(time.Duration(started.Add(1)) * time.Hour)),
		PostgresURL: stack.PostgresURL("marketing"), NodeID: localstack.NodeID()}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	tb.Cleanup(stop)
	return lis[0].Addr().String(), stop
}

func callCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// TestCheckoutFlow goes through the service's whole surface over gRPC:
// an admin creates a full reduction and a coupon template, a user claims
// a coupon, quotes a cart with it, an order consumes it and gives it
// back.
func TestCheckoutFlow(t *testing.T) {
	c, now := MustService(t)
	ctx := callCtx(t)
	from, until := window(now)
	fr, err := c.CreatePromotion(ctx, &marketingv1.CreatePromotionRequest{
		Kind:     marketingv1.PromotionKind_PROMOTION_KIND_FULL_REDUCTION,
		Tiers:    []*marketingv1.Tier{{Threshold: 99_00, Off: 9_00}},
		StartsAt: from, EndsAt: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := c.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Threshold: 100_00, Amount: 10_00, Total: 2, PerUserLimit: 1, ValidFrom: from, ValidUntil: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	user := users.Add(1)
	coupon, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim"})
	if err != nil {
		t.Fatal(err)
	}
	lines := []*marketingv1.CartLine{{SkuId: 1, Quantity: 1, UnitPrice: 30_00}, {SkuId: 2, Quantity: 1, UnitPrice: 40_00}, {SkuId: 3, Quantity: 1, UnitPrice: 50_00}}
	q, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: user, Lines: lines, CouponId: coupon.GetCouponId()})
	if err != nil {
		t.Fatal(err)
	}
	// 120 − 9 (2.25, 3.00, 3.75) = 111, which reaches the coupon's 100:
	// 10 × 27.75/111 = 2.50, × 37/111 = 3.33(3), × 46.25/111 = 4.16(6),
	// the cent left to the 50 line.
	var got []int64
	for _, l := range q.GetLines() {
		got = append(got, l.GetPayable())
	}
	want := []int64{30_00 - 2_25 - 2_50, 40_00 - 3_00 - 3_33, 50_00 - 3_75 - 4_17}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || q.GetPayable() != 101_00 {
		t.Fatalf("payable lines %v (order %d), want %v (101.00)", got, q.GetPayable(), want)
	}
	if ps := q.GetPromotions(); len(ps) != 2 || ps[0].GetId() != fr.GetPromotionId() || ps[1].GetId() != coupon.GetCouponId() {
		t.Fatalf("promotions applied = %v, want the full reduction then the coupon", ps)
	}

	const order = 555
	if _, err := c.ConsumeCoupon(ctx, &marketingv1.ConsumeCouponRequest{UserId: user, CouponId: coupon.GetCouponId(), OrderId: order}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: user, Lines: lines, CouponId: coupon.GetCouponId()}); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("quote with a used coupon = %v, want CONFLICT", err)
	}
	if _, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: user, Lines: lines, CouponId: coupon.GetCouponId(), OrderId: order}); err != nil {
		t.Fatalf("quote of the order that holds the coupon: %v", err)
	}
	rel, err := c.ReleaseCoupon(ctx, &marketingv1.ReleaseCouponRequest{OrderId: order})
	if err != nil || rel.GetCouponId() != coupon.GetCouponId() {
		t.Fatalf("release = %v, %v; want coupon %d", rel, err, coupon.GetCouponId())
	}
	list, err := c.ListCoupons(ctx, &marketingv1.ListCouponsRequest{UserId: user})
	if err != nil || len(list.GetCoupons()) != 1 || list.GetCoupons()[0].GetStatus() != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
		t.Fatalf("coupons after release = %v, %v; want the one coupon AVAILABLE", list, err)
	}
}

func TestErrorCodes(t *testing.T) {
	c, now := MustService(t)
	ctx := callCtx(t)
	from, until := window(now)
	user1 := users.Add(1)
	user2 := users.Add(1)
	tmpl, err := c.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Threshold: 50_00, Amount: 5_00, Total: 2, PerUserLimit: 1, ValidFrom: from, ValidUntil: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	coupon, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user1, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user2, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim-1"}); err != nil {
		t.Fatal(err)
	}
	small := []*marketingv1.CartLine{{SkuId: 1, Quantity: 1, UnitPrice: 49_99}}
	tests := []struct {
		name string
		call func() error
		want errcode.Code
	}{
		{"claim past the per-user limit", func() error {
			_, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user1, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim-2"})
			return err
		}, errcode.SoldOut}, // the template is exhausted first: both coupons are out
		{"claim without a key", func() error {
			_, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user1, TemplateId: tmpl.GetTemplateId()})
			return err
		}, errcode.InvalidArgument},
		{"claim of an unknown template", func() error {
			_, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user1, TemplateId: 12345, IdempotencyKey: "claim-3"})
			return err
		}, errcode.NotFound},
		{"coupon below its threshold", func() error {
			_, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: user1, Lines: small, CouponId: coupon.GetCouponId()})
			return err
		}, errcode.Conflict},
		{"someone else's coupon", func() error {
			_, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: user2, Lines: small, CouponId: coupon.GetCouponId()})
			return err
		}, errcode.NotFound},
		{"a promotion of unknown kind", func() error {
			_, err := c.CreatePromotion(ctx, &marketingv1.CreatePromotionRequest{RateBp: 9000, SkuIds: []int64{1}, StartsAt: from, EndsAt: until})
			return err
		}, errcode.InvalidArgument},
		{"an empty cart", func() error {
			_, err := c.Quote(ctx, &marketingv1.QuoteRequest{UserId: 1})
			return err
		}, errcode.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errcode.Of(tt.call()); got != tt.want {
				t.Fatalf("code = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClaimLimitOverGRPC(t *testing.T) {
	c, now := MustService(t)
	ctx := callCtx(t)
	from, until := window(now)
	user3 := users.Add(1)
	tmpl, err := c.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Amount: 1_00, Total: 100, PerUserLimit: 2,
		ValidFrom: from, ValidUntil: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[errcode.Code]int{}
	for i := range 10 {
		wg.Go(func() {
			_, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user3, TemplateId: tmpl.GetTemplateId(),
				IdempotencyKey: "claim-" + strconv.Itoa(i)})
			code := errcode.Code("OK")
			if err != nil {
				code = errcode.Of(err)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes["OK"] != 2 || codes[errcode.LimitExceeded] != 8 {
		t.Fatalf("answers %v, want 2 OK and 8 LIMIT_EXCEEDED", codes)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"defaults", map[string]string{}, ""},
		{"bad pool", map[string]string{"FLASHSALE_POSTGRES_MAX_CONNS": "0"}, "FLASHSALE_POSTGRES_MAX_CONNS"},
		{"bad node", map[string]string{"FLASHSALE_NODE_ID": "2000"}, "FLASHSALE_NODE_ID"},
		{"consul", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500", "FLASHSALE_CONSUL_TOKEN": "0f6c1d2e-9a4b-4c3d-8e7f-5a6b7c8d9e0f"}, ""},
		{"consul without its token", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500"}, "FLASHSALE_CONSUL_TOKEN"},
		{"bad consul", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul"}, "FLASHSALE_CONSUL_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"FLASHSALE_POSTGRES_URL": app.DefaultPostgresURL} // required outside development
			maps.Copy(vars, tt.env)
			env := config.FromMap(vars)
			cfg := app.ConfigFromEnv(env)
			err := env.Err()
			switch {
			case tt.wantErr == "" && (err != nil || cfg.GRPCAddr != app.DefaultGRPCAddr):
				t.Fatalf("defaults: %+v, %v", cfg, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one naming %s", err, tt.wantErr)
			}
			if got, want := cfg.Discovery.ConsulAddr, tt.env["FLASHSALE_CONSUL_ADDR"]; tt.wantErr == "" && got != want {
				t.Errorf("Discovery.ConsulAddr = %q, want %q", got, want)
			}
		})
	}
}

// TestClaimRetriesOverGRPC is a buyer's client retrying a claim with its
// Idempotency-Key: the retry answers the first coupon, even after the
// template ran out, and copies sent at once take one coupon.
func TestClaimRetriesOverGRPC(t *testing.T) {
	c, now := MustService(t)
	ctx := callCtx(t)
	from, until := window(now)
	user4 := users.Add(1)
	user5 := users.Add(1)
	tmpl, err := c.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Amount: 1_00, Total: 2, PerUserLimit: 2,
		ValidFrom: from, ValidUntil: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	claim := &marketingv1.ClaimCouponRequest{UserId: user4, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "double-tap"}
	ids := make([]int64, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			got, err := c.ClaimCoupon(ctx, claim)
			if err != nil {
				t.Errorf("copy %d: %v", i, err)
			}
			ids[i] = got.GetCouponId()
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("copy %d answered coupon %d, copy 0 coupon %d: want one coupon", i, id, ids[0])
		}
	}
	// One coupon is left for someone else; then the retry still answers.
	if _, err := c.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user5, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "k"}); err != nil {
		t.Fatalf("the other buyer's claim: %v", err)
	}
	again, err := c.ClaimCoupon(ctx, claim)
	if err != nil || again.GetCouponId() != ids[0] || again.GetStatus() != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
		t.Fatalf("retry after the template ran out = %v, %v; want coupon %d AVAILABLE", again, err, ids[0])
	}
}
