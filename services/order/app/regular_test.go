package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	"github.com/flashsale/flashsale/services/order/app"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
)

// regularPlatform is the platform with the marketing service beside it.
type regularPlatform struct {
	*platform
	marketing marketingv1.MarketingServiceClient
	// mktConn is the connection behind marketing, for the order
	// service's own client in tests that run it in process.
	mktConn *grpc.ClientConn
}

// MustRegularPlatform starts marketing, then the platform with order
// pointed at it; configure, when not nil, changes the order service's
// settings, and opts hook into it.
func MustRegularPlatform(tb testing.TB, configure func(*app.Config), opts ...app.Option) *regularPlatform {
	tb.Helper()
	grpcLis, adminLis := servicetest.MustListen(tb), servicetest.MustListen(tb)
	servicetest.MustRun(tb, adminLis, func(ctx context.Context) error {
		return marketingapp.Run(ctx, marketingapp.Config{GRPCListener: grpcLis, AdminListener: adminLis,
			PostgresURL: stack.PostgresURL("marketing"), NodeID: localstack.NodeID()})
	})
	p := MustPlatform(tb, func(c *app.Config) {
		c.MarketingAddr = grpcLis.Addr().String()
		if configure != nil {
			configure(c)
		}
	}, opts...)
	conn := localstack.MustDial(tb, grpcLis.Addr().String())
	return &regularPlatform{platform: p, marketing: marketingv1.NewMarketingServiceClient(conn), mktConn: conn}
}

// MustProducts creates products at the prices, stock units each.
func (p *regularPlatform) MustProducts(tb testing.TB, stock int64, prices ...int64) []int64 {
	tb.Helper()
	var skus []int64
	for _, price := range prices {
		prod, err := p.product.CreateProduct(context.Background(), &productv1.CreateProductRequest{Title: "Mug", Price: price, Stock: stock})
		if err != nil {
			tb.Fatal(err)
		}
		skus = append(skus, prod.GetSkuId())
	}
	return skus
}

// stockOf returns the products' stock.
func (p *regularPlatform) stockOf(tb testing.TB, skus ...int64) []int64 {
	tb.Helper()
	var out []int64
	for _, sku := range skus {
		prod, err := p.product.GetProduct(context.Background(), &productv1.GetProductRequest{SkuId: sku})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, prod.GetStock())
	}
	return out
}

func payables(o *orderv1.Order) []int64 {
	var out []int64
	for _, l := range o.GetLines() {
		out = append(out, l.GetPayable())
	}
	return out
}

func TestRegularCheckout(t *testing.T) {
	p := MustRegularPlatform(t, nil)
	ctx := context.Background()
	skus := p.MustProducts(t, 10, 30_00, 40_00, 50_00)
	now := p.clock.Now()
	window := func() (*timestamppb.Timestamp, *timestamppb.Timestamp) {
		return timestamppb.New(now.Add(-time.Hour)), timestamppb.New(now.Add(24 * time.Hour))
	}
	from, until := window()
	// Spend 99 take 9 on these SKUs only, so other tests' carts are not
	// affected.
	if _, err := p.marketing.CreatePromotion(ctx, &marketingv1.CreatePromotionRequest{
		Kind: marketingv1.PromotionKind_PROMOTION_KIND_FULL_REDUCTION, SkuIds: skus,
		Tiers: []*marketingv1.Tier{{Threshold: 99_00, Off: 9_00}}, StartsAt: from, EndsAt: until,
	}); err != nil {
		t.Fatal(err)
	}
	tmpl, err := p.marketing.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Threshold: 100_00, Amount: 10_00, Total: 10, PerUserLimit: 2, ValidFrom: from, ValidUntil: until,
	})
	if err != nil {
		t.Fatal(err)
	}
	user := newUsers(1)
	coupon, err := p.marketing.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim-1"})
	if err != nil {
		t.Fatal(err)
	}
	req := &orderv1.RegularOrderRequest{UserId: user, CouponId: coupon.GetCouponId(), IdempotencyKey: "cart-1",
		Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 1}, {SkuId: skus[1], Quantity: 1}, {SkuId: skus[2], Quantity: 1}}}

	q, err := p.order.QuoteRegularOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// docs/marketing.md: 30+40+50, spend 99 take 9, then 10 off 111.
	want := []int64{30_00 - 2_25 - 2_50, 40_00 - 3_00 - 3_33, 50_00 - 3_75 - 4_17}
	if got := payables(q); fmt.Sprint(got) != fmt.Sprint(want) || q.GetPayable() != 101_00 || q.GetOrderId() != 0 {
		t.Fatalf("quote payables %v (order %d, id %d), want %v (101.00, no id)", got, q.GetPayable(), q.GetOrderId(), want)
	}

	o, err := p.order.CreateRegularOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING_PAYMENT || o.GetKind() != orderv1.OrderKind_ORDER_KIND_REGULAR ||
		fmt.Sprint(payables(o)) != fmt.Sprint(want) || o.GetCouponId() != coupon.GetCouponId() || len(o.GetPromotions()) != 2 {
		t.Fatalf("created order = %v, want a PENDING_PAYMENT REGULAR order priced as the quote with 2 promotions and the coupon", o)
	}
	stored, err := p.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: o.GetOrderId(), UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(payables(stored)) != fmt.Sprint(want) || len(stored.GetPromotions()) != 2 || stored.GetCouponId() != coupon.GetCouponId() {
		t.Fatalf("stored order = %v, want it as created", stored)
	}
	p.clock.Advance(2 * time.Second) // past the catalog's cache
	if got := p.stockOf(t, skus...); fmt.Sprint(got) != "[9 9 9]" {
		t.Fatalf("stock after the order = %v, want [9 9 9]", got)
	}

	// Retries with the key answer the first order and take nothing more,
	// even many at once.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			again, err := p.order.CreateRegularOrder(ctx, req)
			if err != nil || again.GetOrderId() != o.GetOrderId() {
				t.Errorf("retry = %v, %v; want order %d", again.GetOrderId(), err, o.GetOrderId())
			}
		})
	}
	wg.Wait()
	// The key names that cart: another cart under it is refused.
	reused := &orderv1.RegularOrderRequest{UserId: user, CouponId: coupon.GetCouponId(), IdempotencyKey: "cart-1",
		Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 2}, {SkuId: skus[1], Quantity: 1}, {SkuId: skus[2], Quantity: 1}}}
	if _, err := p.order.CreateRegularOrder(ctx, reused); errcode.Of(err) != errcode.InvalidArgument {
		t.Fatalf("the key again with another cart = %v, want INVALID_ARGUMENT", err)
	}

	// The coupon is used: another cart with it is refused, and neither
	// its stock nor anything else is held.
	other := &orderv1.RegularOrderRequest{UserId: user, CouponId: coupon.GetCouponId(), IdempotencyKey: "cart-2",
		Lines: []*orderv1.RegularOrderLine{{SkuId: skus[2], Quantity: 3}}}
	if _, err := p.order.CreateRegularOrder(ctx, other); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("second order with a used coupon = %v, want CONFLICT", err)
	}
	// More than the stock: SOLD_OUT, all or nothing.
	greedy := &orderv1.RegularOrderRequest{UserId: user, IdempotencyKey: "cart-3",
		Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 1}, {SkuId: skus[1], Quantity: 10}}}
	if _, err := p.order.CreateRegularOrder(ctx, greedy); errcode.Of(err) != errcode.SoldOut {
		t.Fatalf("order above the stock = %v, want SOLD_OUT", err)
	}
	p.clock.Advance(2 * time.Second)
	if got := p.stockOf(t, skus...); fmt.Sprint(got) != "[9 9 9]" {
		t.Fatalf("stock after retries and refusals = %v, want [9 9 9]", got)
	}
	// A coupon below its threshold is refused before anything is taken.
	second, err := p.marketing.ClaimCoupon(ctx, &marketingv1.ClaimCouponRequest{UserId: user, TemplateId: tmpl.GetTemplateId(), IdempotencyKey: "claim-2"})
	if err != nil {
		t.Fatal(err)
	}
	small := &orderv1.RegularOrderRequest{UserId: user, CouponId: second.GetCouponId(), IdempotencyKey: "cart-4",
		Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 1}}}
	if _, err := p.order.CreateRegularOrder(ctx, small); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("order below the coupon's threshold = %v, want CONFLICT", err)
	}
}

func TestRegularOrderRefusals(t *testing.T) {
	p := MustRegularPlatform(t, nil)
	ctx := context.Background()
	skus := p.MustProducts(t, 5, 10_00)
	user := newUsers(1)
	tests := []struct {
		name string
		req  *orderv1.RegularOrderRequest
		want errcode.Code
	}{
		{"no key", &orderv1.RegularOrderRequest{UserId: user, Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 1}}}, errcode.InvalidArgument},
		{"no lines", &orderv1.RegularOrderRequest{UserId: user, IdempotencyKey: "k"}, errcode.InvalidArgument},
		{"unknown sku", &orderv1.RegularOrderRequest{UserId: user, IdempotencyKey: "k",
			Lines: []*orderv1.RegularOrderLine{{SkuId: 12345, Quantity: 1}}}, errcode.NotFound},
		{"unknown coupon", &orderv1.RegularOrderRequest{UserId: user, IdempotencyKey: "k", CouponId: 999,
			Lines: []*orderv1.RegularOrderLine{{SkuId: skus[0], Quantity: 1}}}, errcode.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.order.CreateRegularOrder(ctx, tt.req); errcode.Of(err) != tt.want {
				t.Fatalf("create = %v, want %s", err, tt.want)
			}
		})
	}
}
