package app_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	"github.com/flashsale/flashsale/services/order/postgres"
)

// The price of the products of these tests, and the coupon they use.
const (
	regularPrice   = 60_00
	couponOff      = 5_00
	couponMinSpend = 50_00
)

// MustCoupon claims for user a coupon of a template of its own (one
// issued), so that tests never compete for coupons.
func (p *regularPlatform) MustCoupon(tb testing.TB, user int64) int64 {
	tb.Helper()
	ctx := context.Background()
	now := p.clock.Now()
	tmpl, err := p.marketing.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Threshold: couponMinSpend, Amount: couponOff, Total: 1, PerUserLimit: 1,
		ValidFrom: timestamppb.New(now.Add(-time.Hour)), ValidUntil: timestamppb.New(now.Add(24 * time.Hour)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := p.marketing.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim"})
	if err != nil {
		tb.Fatal(err)
	}
	return c.GetCouponId()
}

// regularOrder creates a regular order of one unit of sku for user with
// the coupon (0: none), keyed by key.
func (p *regularPlatform) regularOrder(user, sku, coupon int64, key string) (*orderv1.Order, error) {
	return p.order.CreateRegularOrder(context.Background(), &orderv1.RegularOrderRequest{
		UserId: user, CouponId: coupon, IdempotencyKey: key,
		Lines: []*orderv1.RegularOrderLine{{SkuId: sku, Quantity: 1}},
	})
}

// MustRegularOrder is regularOrder that fails the test on an error.
func (p *regularPlatform) MustRegularOrder(tb testing.TB, user, sku, coupon int64, key string) *orderv1.Order {
	tb.Helper()
	o, err := p.regularOrder(user, sku, coupon, key)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// couponStatus returns the status of the user's coupon.
func (p *regularPlatform) couponStatus(tb testing.TB, user, coupon int64) marketingv1.CouponStatus {
	tb.Helper()
	resp, err := p.marketing.ListCoupons(context.Background(), &marketingv1.ListCouponsRequest{UserId: user})
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range resp.GetCoupons() {
		if c.GetCouponId() == coupon {
			return c.GetStatus()
		}
	}
	tb.Fatalf("user %d has no coupon %d", user, coupon)
	return 0
}

// MustProductsDB returns a pool on the product service's database, where
// stock is read past the product service's cache.
func MustProductsDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return mustDB(tb, "products")
}

// strayCounter counts the holds an expiry worker reports given back.
type strayCounter struct {
	order.NopObserver
	mu       sync.Mutex
	released map[string]int
}

func (c *strayCounter) StrayReleased(_ context.Context, hold string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released[hold]++
}

func (c *strayCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.released)
}

// mustDB returns a pool on the test stack's database name.
func mustDB(tb testing.TB, name string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgplatform.Dial(context.Background(), stack.PostgresURL(name), 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// productStock returns the product's stock as stored.
func productStock(tb testing.TB, db *pgxpool.Pool, sku int64) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), `SELECT stock FROM products WHERE sku_id = $1`, sku).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// regularState is where a regular order stands: its status and whether
// it is marked as having given back its stock and coupon.
type regularState struct {
	status   string
	released bool
}

func (s regularState) String() string { return fmt.Sprintf("%s (released %v)", s.status, s.released) }

// stateOf reads the order's regularState.
func stateOf(tb testing.TB, p *regularPlatform, orderID int64) regularState {
	tb.Helper()
	var s regularState
	if err := p.db.QueryRow(context.Background(), `SELECT status, released_at IS NOT NULL FROM orders WHERE order_id = $1`,
		orderID).Scan(&s.status, &s.released); err != nil {
		tb.Fatal(err)
	}
	return s
}

// flakyCatalog counts the stock releases of each order and fails the
// first release of the order failOnce names.
type flakyCatalog struct {
	order.Catalog
	failOnce atomic.Int64
	mu       sync.Mutex
	releases map[int64]int
}

var errInjected = errors.New("injected failure")

func (c *flakyCatalog) ReleaseStock(ctx context.Context, orderID int64) error {
	if c.failOnce.CompareAndSwap(orderID, 0) {
		return fmt.Errorf("release stock: %w: %w", errInjected, order.ErrUnavailable)
	}
	c.mu.Lock()
	c.releases[orderID]++
	c.mu.Unlock()
	return c.Catalog.ReleaseStock(ctx, orderID)
}

// flakyPricing fails the first coupon release of the order failOnce
// names.
type flakyPricing struct {
	order.Pricing
	failOnce atomic.Int64
}

func (p *flakyPricing) ReleaseCoupon(ctx context.Context, orderID int64) error {
	if p.failOnce.CompareAndSwap(orderID, 0) {
		return fmt.Errorf("release coupon: %w: %w", errInjected, order.ErrUnavailable)
	}
	return p.Pricing.ReleaseCoupon(ctx, orderID)
}

// regularWorker is an expiry worker run in the test on the platform's
// services, through clients that can be made to fail.
type regularWorker struct {
	*order.Expirer
	catalog *flakyCatalog
	pricing *flakyPricing
}

// newRegularWorker returns an expiry worker on the platform's database,
// product and marketing services; its flash-sale side watches a queue
// nobody fills. configure may change its settings.
func (p *regularPlatform) newRegularWorker(configure func(*order.ExpirerConfig)) *regularWorker {
	w := &regularWorker{
		catalog: &flakyCatalog{Catalog: ordergrpc.NewCatalog(p.prodConn), releases: map[int64]int{}},
		pricing: &flakyPricing{Pricing: ordergrpc.NewPricing(p.mktConn)},
	}
	store := postgres.NewStore(p.db)
	cfg := order.ExpirerConfig{
		Queue: ordergrpc.NewDueQueue(p.invConn), Orders: store, Stock: ordergrpc.NewInventory(p.invConn),
		Clock: p.clock, Activities: []int64{seedIDs.Add(1)}, Poll: 5 * time.Millisecond,
		Regular: store, Catalog: w.catalog, Pricing: w.pricing,
	}
	if configure != nil {
		configure(&cfg)
	}
	w.Expirer = order.NewExpirer(cfg)
	return w
}

func TestRegularOrderExpiresAtItsDeadlineAndGivesBackStockAndCoupon(t *testing.T) {
	p := MustRegularPlatform(t, func(c *app.Config) { c.ExpiryPoll = 10 * time.Millisecond })
	products := MustProductsDB(t)
	ctx := context.Background()
	sku := p.MustProducts(t, 10, regularPrice)[0]
	buyer, later, payer := newUsers(1), newUsers(1), newUsers(1)
	coupon, payerCoupon := p.MustCoupon(t, buyer), p.MustCoupon(t, payer)

	due := p.MustRegularOrder(t, buyer, sku, coupon, "due")
	paid := p.MustRegularOrder(t, payer, sku, payerCoupon, "paid")
	if resp, err := p.order.MarkPaid(ctx, &orderv1.MarkPaidRequest{OrderId: paid.GetOrderId(), PaymentId: 1, Channel: "alipay",
		Amount: paid.GetPayable(), PaidAt: timestamppb.New(p.clock.Now())}); err != nil || !resp.GetAccepted() {
		t.Fatalf("pay order %d: %v, %v; want accepted", paid.GetOrderId(), resp, err)
	}
	p.clock.Advance(time.Minute)
	notYet := p.MustRegularOrder(t, later, sku, 0, "not-yet")
	if got := productStock(t, products, sku); got != 7 {
		t.Fatalf("stock with three orders: got %d, want 7", got)
	}
	if got := p.couponStatus(t, buyer, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_USED {
		t.Fatalf("coupon of the unpaid order: got %s, want USED", got)
	}

	// At the first order's deadline the service's own worker expires it;
	// the sweep that does sees the later order too, and leaves it.
	p.clock.Set(due.GetExpiresAt().AsTime())
	MustEventually(t, 30*time.Second, func() (bool, string) {
		s := stateOf(t, p, due.GetOrderId())
		return s == regularState{"EXPIRED", true}, fmt.Sprintf("due order %s, want EXPIRED and released", s)
	})
	if got := productStock(t, products, sku); got != 8 {
		t.Fatalf("stock after the expiry: got %d, want 8 (the expired unit back)", got)
	}
	if got := p.couponStatus(t, buyer, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
		t.Fatalf("coupon of the expired order: got %s, want AVAILABLE", got)
	}
	tests := []struct {
		name string
		id   int64
		want regularState
	}{
		{"order due a minute later", notYet.GetOrderId(), regularState{"PENDING_PAYMENT", false}},
		{"paid order past its deadline", paid.GetOrderId(), regularState{"PAID", false}},
	}
	for _, tt := range tests {
		if got := stateOf(t, p, tt.id); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := p.couponStatus(t, payer, payerCoupon); got != marketingv1.CouponStatus_COUPON_STATUS_USED {
		t.Fatalf("coupon of the paid order: got %s, want USED", got)
	}

	// The coupon given back pays for the buyer's next order.
	again := p.MustRegularOrder(t, buyer, sku, coupon, "again")
	if again.GetCouponId() != coupon || again.GetDiscount() != couponOff {
		t.Fatalf("order with the coupon given back: coupon %d, discount %d; want %d, %d",
			again.GetCouponId(), again.GetDiscount(), coupon, couponOff)
	}
}

func TestCancelRegularOrderGivesBackStockAndCoupon(t *testing.T) {
	p := MustRegularPlatform(t, nil, app.WithoutExpiry())
	products := MustProductsDB(t)
	sku := p.MustProducts(t, 5, regularPrice)[0]
	user := newUsers(1)
	coupon := p.MustCoupon(t, user)
	o := p.MustRegularOrder(t, user, sku, coupon, "cancel-me")

	for i := range 2 { // a repeated cancel answers the same and gives back nothing more
		got, err := cancelOrder(p.platform, o.GetOrderId(), user)
		if err != nil || got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Fatalf("cancel %d: got %v, %v; want CANCELLED", i+1, got, err)
		}
		if got := productStock(t, products, sku); got != 5 {
			t.Fatalf("stock after cancel %d: got %d, want 5", i+1, got)
		}
		if got := p.couponStatus(t, user, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
			t.Fatalf("coupon after cancel %d: got %s, want AVAILABLE", i+1, got)
		}
		if got := stateOf(t, p, o.GetOrderId()); got != (regularState{"CANCELLED", true}) {
			t.Fatalf("order after cancel %d: got %s, want CANCELLED and marked released", i+1, got)
		}
	}
	// The sweep has nothing left to do for it.
	w := p.newRegularWorker(nil)
	if _, err := w.RunRegularOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := w.catalog.releases[o.GetOrderId()]; n != 0 {
		t.Fatalf("sweep releases of the cancelled order: got %d, want 0", n)
	}
}

// crashAfterRegularUpdate kills its worker right after the UPDATE that
// expires regular orders committed: the orders are EXPIRED, nothing
// given back.
type crashAfterRegularUpdate struct {
	order.RegularEnds
	crash context.CancelFunc
}

func (c crashAfterRegularUpdate) ExpireRegular(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	moved, err := c.RegularEnds.ExpireRegular(ctx, now, limit)
	c.crash()
	return moved, err
}

func TestRegularGiveBackCutShortIsFinishedByTheNextSweep(t *testing.T) {
	p := MustRegularPlatform(t, nil, app.WithoutExpiry())
	products := MustProductsDB(t)
	tests := []struct {
		name string
		// first returns the worker whose sweep of the order is cut
		// short, and the context it sweeps in.
		first func(orderID int64) (*regularWorker, context.Context)
		// wantStockHeld: the cut-short sweep left the stock taken.
		wantStockHeld bool
	}{
		{name: "worker killed after the EXPIRED update", wantStockHeld: true,
			first: func(int64) (*regularWorker, context.Context) {
				ctx, crash := context.WithCancel(context.Background())
				return p.newRegularWorker(func(c *order.ExpirerConfig) {
					c.Regular = crashAfterRegularUpdate{RegularEnds: c.Regular, crash: crash}
				}), ctx
			}},
		{name: "product fails once", wantStockHeld: true,
			first: func(orderID int64) (*regularWorker, context.Context) {
				w := p.newRegularWorker(nil)
				w.catalog.failOnce.Store(orderID)
				return w, context.Background()
			}},
		{name: "marketing fails once", wantStockHeld: false,
			first: func(orderID int64) (*regularWorker, context.Context) {
				w := p.newRegularWorker(nil)
				w.pricing.failOnce.Store(orderID)
				return w, context.Background()
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sku := p.MustProducts(t, 3, regularPrice)[0]
			user := newUsers(1)
			coupon := p.MustCoupon(t, user)
			o := p.MustRegularOrder(t, user, sku, coupon, "cut-short")
			p.clock.Set(o.GetExpiresAt().AsTime())

			first, ctx := tt.first(o.GetOrderId())
			if _, err := first.RunRegularOnce(ctx); err == nil {
				t.Fatal("the interrupted sweep: got no error, want one")
			}
			if got := stateOf(t, p, o.GetOrderId()); got != (regularState{"EXPIRED", false}) {
				t.Fatalf("after the interrupted sweep: got %s, want EXPIRED and not released", got)
			}
			wantStock := int64(3)
			if tt.wantStockHeld {
				wantStock = 2
			}
			if got := productStock(t, products, sku); got != wantStock {
				t.Fatalf("stock after the interrupted sweep: got %d, want %d", got, wantStock)
			}
			if got := p.couponStatus(t, user, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_USED {
				t.Fatalf("coupon after the interrupted sweep: got %s, want USED", got)
			}

			next := p.newRegularWorker(nil)
			if _, err := next.RunRegularOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stateOf(t, p, o.GetOrderId()); got != (regularState{"EXPIRED", true}) {
				t.Fatalf("after the next sweep: got %s, want EXPIRED and released", got)
			}
			if got := productStock(t, products, sku); got != 3 {
				t.Fatalf("stock after the next sweep: got %d, want 3 (given back once)", got)
			}
			if got := p.couponStatus(t, user, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
				t.Fatalf("coupon after the next sweep: got %s, want AVAILABLE", got)
			}
		})
	}
}

func TestRegularExpiryRacingCancelAndPaymentEndsInExactlyOneState(t *testing.T) {
	const n = 60
	p := MustRegularPlatform(t, nil, app.WithoutExpiry())
	products := MustProductsDB(t)
	ctx := context.Background()
	sku := p.MustProducts(t, n, regularPrice)[0]
	first := newUsers(n)
	orders := make([]*orderv1.Order, n)
	coupons := make([]int64, n)
	var deadline time.Time
	for i := range n {
		user := first + int64(i)
		if i%2 == 0 {
			coupons[i] = p.MustCoupon(t, user)
		}
		orders[i] = p.MustRegularOrder(t, user, sku, coupons[i], "race")
		deadline = orders[i].GetExpiresAt().AsTime()
		// Spread the deadlines, so the workers expire the orders over
		// several rounds while the buyers act.
		p.clock.Advance(time.Millisecond)
	}
	if got := productStock(t, products, sku); got != 0 {
		t.Fatalf("stock with every unit ordered: got %d, want 0", got)
	}

	workers := make([]*regularWorker, 2)
	for i := range workers {
		workers[i] = p.newRegularWorker(func(c *order.ExpirerConfig) { c.Batch = 4 })
	}
	wctx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for _, w := range workers {
		running.Go(func() { _ = w.Run(wctx) })
	}
	p.clock.Set(deadline)
	// Every third buyer pays, the others cancel, all at the deadline.
	paid := make([]bool, n)
	cancelled := make([]error, n)
	var buyers sync.WaitGroup
	for i, o := range orders {
		buyers.Go(func() {
			if i%3 != 0 {
				_, cancelled[i] = cancelOrder(p.platform, o.GetOrderId(), o.GetUserId())
				return
			}
			resp, err := p.order.MarkPaid(ctx, &orderv1.MarkPaidRequest{OrderId: o.GetOrderId(), PaymentId: int64(i + 1),
				Channel: "alipay", Amount: o.GetPayable(), PaidAt: timestamppb.New(deadline)})
			if err != nil {
				t.Errorf("pay order %d: %v", o.GetOrderId(), err)
			}
			paid[i] = resp.GetAccepted()
		})
	}
	buyers.Wait()
	MustEventually(t, time.Minute, func() (bool, string) {
		for _, o := range orders {
			if s := stateOf(t, p, o.GetOrderId()); s.status == "PENDING_PAYMENT" || (s.status != "PAID" && !s.released) {
				return false, fmt.Sprintf("order %d is %s", o.GetOrderId(), s)
			}
		}
		return true, ""
	})
	stop()
	running.Wait()

	won := map[string]int{}
	var kept int64
	for i, o := range orders {
		want := regularState{"EXPIRED", true}
		switch {
		case i%3 == 0 && paid[i]:
			want = regularState{"PAID", false}
			kept++
		case i%3 != 0 && cancelled[i] == nil:
			want = regularState{"CANCELLED", true}
		case i%3 != 0 && errcode.Of(cancelled[i]) != errcode.Conflict:
			t.Fatalf("cancel of order %d: got %v, want success or CONFLICT", o.GetOrderId(), cancelled[i])
		}
		if got := stateOf(t, p, o.GetOrderId()); got != want {
			t.Fatalf("order %d (paid %v, cancel answered %v): got %s, want %s", o.GetOrderId(), paid[i], cancelled[i], got, want)
		}
		won[want.status]++
		if coupons[i] == 0 {
			continue
		}
		wantCoupon := marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE
		if want.status == "PAID" {
			wantCoupon = marketingv1.CouponStatus_COUPON_STATUS_USED
		}
		if got := p.couponStatus(t, o.GetUserId(), coupons[i]); got != wantCoupon {
			t.Fatalf("coupon of order %d (%s): got %s, want %s", o.GetOrderId(), want.status, got, wantCoupon)
		}
	}
	if got := productStock(t, products, sku); got != n-kept {
		t.Fatalf("stock: got %d, want %d (every unit not paid for given back exactly once)", got, n-kept)
	}
	released := map[int64]int{}
	for _, w := range workers {
		for id, k := range w.catalog.releases {
			released[id] += k
		}
	}
	for i, o := range orders {
		if paid[i] && released[o.GetOrderId()] != 0 {
			t.Fatalf("paid order %d: the workers released its stock %d times, want never", o.GetOrderId(), released[o.GetOrderId()])
		}
	}
	t.Logf("final states: %v; the workers released the stock of %d orders", won, len(released))
}

// A checkout that died between taking its stock and coupon and storing
// its order leaves them held for an order that never exists, and no
// expiry ends an order that was never stored; a checkout whose stock
// came back but whose coupon release failed leaves the coupon alone. The
// expiry worker's sweep of holds gives each back once it is StrayAfter
// old, once, even when a release fails at first, and leaves alone the
// holds of a stored order and those too recent to judge.
func TestHoldsOfAnOrderNeverStoredAreGivenBack(t *testing.T) {
	p := MustRegularPlatform(t, nil, app.WithoutExpiry())
	products, coupons := MustProductsDB(t), mustDB(t, "marketing")
	ctx := context.Background()
	sku := p.MustProducts(t, 10, regularPrice)[0]
	user, loner, other := newUsers(1), newUsers(1), newUsers(1)
	coupon, lonely, othersCoupon := p.MustCoupon(t, user), p.MustCoupon(t, loner), p.MustCoupon(t, other)
	stored := p.MustRegularOrder(t, other, sku, othersCoupon, "stored")
	// What a checkout that died before its insert leaves: two units and
	// a coupon for an order id that is never stored; one whose coupon
	// alone was left, its stock given back; and one still running, a
	// unit reserved a moment ago.
	stray, lone, young := seedIDs.Add(1), seedIDs.Add(1), seedIDs.Add(1)
	catalog, pricing := ordergrpc.NewCatalog(p.prodConn), ordergrpc.NewPricing(p.mktConn)
	if err := catalog.ReserveStock(ctx, stray, []order.CartLine{{SKUID: sku, Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := pricing.ConsumeCoupon(ctx, user, coupon, stray); err != nil {
		t.Fatal(err)
	}
	if err := pricing.ConsumeCoupon(ctx, loner, lonely, lone); err != nil {
		t.Fatal(err)
	}
	if err := catalog.ReserveStock(ctx, young, []order.CartLine{{SKUID: sku, Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	// The holds of the strays and of the stored order come of age (each
	// service stamps its holds with its own clock: Postgres's for the
	// stock, the marketing service's for the coupons, both real here).
	aged := []int64{stray, lone, stored.GetOrderId()}
	if _, err := products.Exec(ctx, `UPDATE stock_reservations SET created_at = created_at - interval '11 minutes' WHERE order_id = ANY($1)`, aged); err != nil {
		t.Fatal(err)
	}
	if _, err := coupons.Exec(ctx, `UPDATE coupons SET used_at = used_at - interval '11 minutes' WHERE order_id = ANY($1)`, aged); err != nil {
		t.Fatal(err)
	}
	if got := productStock(t, products, sku); got != 6 {
		t.Fatalf("stock before the sweep: got %d, want 6", got)
	}

	strays := &strayCounter{released: map[string]int{}}
	sweeper := func() *regularWorker {
		return p.newRegularWorker(func(c *order.ExpirerConfig) {
			c.HeldStock, c.UsedCoupons = ordergrpc.NewHeldStock(p.prodConn), ordergrpc.NewUsedCoupons(p.mktConn)
			c.Observer = strays
		})
	}
	w := sweeper()
	w.catalog.failOnce.Store(stray)
	w.pricing.failOnce.Store(lone)
	if _, err := w.RunStrayHoldsOnce(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("sweep with a stock and a coupon release failing: %v, want the injected failures", err)
	}
	if got := productStock(t, products, sku); got != 6 {
		t.Fatalf("stock after the failed release: got %d, want 6", got)
	}
	if got := p.couponStatus(t, loner, lonely); got != marketingv1.CouponStatus_COUPON_STATUS_USED {
		t.Fatalf("coupon after its failed release: got %s, want USED", got)
	}
	// The failed ones again, from two goroutines of one worker at once
	// (a process runs several): one sweeps, the other stands aside.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := w.RunStrayHoldsOnce(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := w.RunStrayHoldsOnce(ctx); err != nil { // nothing left to do
		t.Fatal(err)
	}
	if got := productStock(t, products, sku); got != 8 {
		t.Fatalf("stock after the sweep: got %d, want 8 (the stray's two back; the stored order's and the young one's held)", got)
	}
	for _, c := range []struct {
		user, coupon int64
		want         marketingv1.CouponStatus
	}{
		{user, coupon, marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE},
		{loner, lonely, marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE},
		{other, othersCoupon, marketingv1.CouponStatus_COUPON_STATUS_USED},
	} {
		if got := p.couponStatus(t, c.user, c.coupon); got != c.want {
			t.Fatalf("coupon %d of user %d: got %s, want %s", c.coupon, c.user, got, c.want)
		}
	}
	if n := w.catalog.releases[stray]; n != 1 {
		t.Fatalf("the stray was released %d times by one worker, want once (its mark moved past it)", n)
	}
	if got := stateOf(t, p, stored.GetOrderId()); got != (regularState{"PENDING_PAYMENT", false}) {
		t.Fatalf("the stored order: got %s, want PENDING_PAYMENT", got)
	}
	if want := map[string]int{order.HoldStock: 1, order.HoldCoupon: 2}; !maps.Equal(strays.counts(), want) {
		t.Fatalf("holds reported given back: %v, want %v", strays.counts(), want)
	}
	// A second worker, starting afresh, gives back nothing more.
	if _, err := sweeper().RunStrayHoldsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := productStock(t, products, sku); got != 8 {
		t.Fatalf("stock after a second worker's sweep: got %d, want 8", got)
	}
}
