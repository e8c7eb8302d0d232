package app_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/channelsim"
	"github.com/flashsale/flashsale/services/payment/app"
)

const (
	partiallyRefunded = orderv1.OrderStatus_ORDER_STATUS_PARTIALLY_REFUNDED
	orderRefunded     = orderv1.OrderStatus_ORDER_STATUS_REFUNDED
)

// MustCoupon creates a coupon template of amount off from threshold and
// claims one coupon of it for user.
func (p *platform) MustCoupon(tb testing.TB, user, threshold, amount int64) int64 {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	tmpl, err := p.marketing.CreateCouponTemplate(ctx, &marketingv1.CreateCouponTemplateRequest{
		Threshold: threshold, Amount: amount, Total: 1, PerUserLimit: 1,
		ValidFrom: timestamppb.New(now.Add(-time.Hour)), ValidUntil: timestamppb.New(now.Add(time.Hour)),
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

// couponStatus is the status of the user's coupon.
func (p *platform) couponStatus(tb testing.TB, user, couponID int64) marketingv1.CouponStatus {
	tb.Helper()
	resp, err := p.marketing.ListCoupons(context.Background(), &marketingv1.ListCouponsRequest{UserId: user})
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range resp.GetCoupons() {
		if c.GetCouponId() == couponID {
			return c.GetStatus()
		}
	}
	tb.Fatalf("user %d has no coupon %d", user, couponID)
	return 0
}

// MustPaidRegularOrder buys quantities[i] units of fresh products at
// prices[i] with the coupon (0: none), pays through channel and waits
// until the order is PAID.
func (p *platform) MustPaidRegularOrder(tb testing.TB, user, coupon int64, channel string, prices, quantities []int64) *orderv1.Order {
	tb.Helper()
	ctx := context.Background()
	req := &orderv1.RegularOrderRequest{UserId: user, CouponId: coupon, IdempotencyKey: "refund-cart"}
	for i, price := range prices {
		prod, err := p.product.CreateProduct(ctx, &productv1.CreateProductRequest{Title: "Mug", Price: price, Stock: 100})
		if err != nil {
			tb.Fatal(err)
		}
		req.Lines = append(req.Lines, &orderv1.RegularOrderLine{SkuId: prod.GetSkuId(), Quantity: quantities[i]})
	}
	o, err := p.order.CreateRegularOrder(ctx, req)
	if err != nil {
		tb.Fatal(err)
	}
	p.MustBuyerPays(tb, p.MustPay(tb, order{ID: o.GetOrderId(), UserID: user}, channel))
	waitFor(tb, "the order paid", func() bool { return p.orderStatus(tb, order{ID: o.GetOrderId(), UserID: user}) == paid })
	return p.mustOrder(tb, o.GetOrderId())
}

func (p *platform) mustOrder(tb testing.TB, id int64) *orderv1.Order {
	tb.Helper()
	o, err := p.order.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: id})
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// refundKeys numbers the idempotency keys of refund, so that each of its
// calls is a request of its own.
var refundKeys atomic.Int64

// refund asks to refund quantity units of each line of lines, under a
// key no other request has.
func (p *platform) refund(o *orderv1.Order, user int64, lines map[int64]int64) (*orderv1.RefundOrderResponse, error) {
	return p.refundWithKey(o, user, "refund-"+strconv.FormatInt(refundKeys.Add(1), 10), lines)
}

// refundWithKey asks to refund quantity units of each line of lines under
// the idempotency key.
func (p *platform) refundWithKey(o *orderv1.Order, user int64, key string, lines map[int64]int64) (*orderv1.RefundOrderResponse, error) {
	req := &orderv1.RefundOrderRequest{OrderId: o.GetOrderId(), UserId: user, IdempotencyKey: key}
	// Highest line first: the answer lists the lines by line id whatever
	// order the request names them in, so the first answer and a retry's
	// (read back from the store) are the same.
	for _, id := range slices.Sorted(maps.Keys(lines)) {
		req.Lines = slices.Insert(req.Lines, 0, &orderv1.RefundLine{LineId: id, Quantity: lines[id]})
	}
	return p.order.RefundOrder(context.Background(), req)
}

// mustRefundDone refunds as refundWithKey does (under a fresh key when key
// is empty) and returns the answer once the refund stands SUCCEEDED. A
// PENDING first answer is the contract's, not a failure: the payment call
// outlasted its timeout (a loaded machine makes that happen) and the
// refund sweep finishes the refund, so it asks again under the key until
// the refund is done.
func (p *platform) mustRefundDone(tb testing.TB, o *orderv1.Order, user int64, key string, lines map[int64]int64) *orderv1.RefundOrderResponse {
	tb.Helper()
	if key == "" {
		key = "refund-" + strconv.FormatInt(refundKeys.Add(1), 10)
	}
	var r *orderv1.RefundOrderResponse
	waitFor(tb, "refund SUCCEEDED", func() bool {
		var err error
		if r, err = p.refundWithKey(o, user, key, lines); err != nil {
			tb.Fatalf("refund under key %q: %v", key, err)
		}
		return r.GetStatus() == "SUCCEEDED"
	})
	return r
}

// tradeRefunded is what the channel refunded of the payment's trade.
func (p *platform) tradeRefunded(tb testing.TB, channel string, paymentID int64) int64 {
	tb.Helper()
	tr, ok := p.sim.Trade(channel, formatID(paymentID))
	if !ok {
		tb.Fatalf("no trade of payment %d at %s", paymentID, channel)
	}
	var sum int64
	for _, r := range tr.Refunds {
		sum += r.Amount
	}
	if sum != tr.Refunded {
		tb.Fatalf("trade of payment %d: refunds add up to %d, the trade says %d", paymentID, sum, tr.Refunded)
	}
	return tr.Refunded
}

// pendingRefunds counts the order's refunds that are not finished.
func (p *platform) pendingRefunds(tb testing.TB, orderID int64) int {
	tb.Helper()
	var n int
	if err := p.orders.QueryRow(context.Background(), `SELECT count(*) FROM order_refunds WHERE order_id = $1 AND status = 'PENDING'`,
		orderID).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestRefunds(t *testing.T) {
	p := MustPlatform(t, nil)

	t.Run("a coupon order refunded line by line", func(t *testing.T) {
		user := users.Add(1)
		// 3 × 10.00 and 1 × 50.00 with 5.17 off: the coupon splits into
		// 1.93 (rounded down from 1.93875) and 3.24 (3.23125 plus the cent
		// left), and the mugs' 1.93 over their units as 0.65, 0.64, 0.64.
		coupon := p.MustCoupon(t, user, 50_00, 5_17)
		o := p.MustPaidRegularOrder(t, user, coupon, "alipay", []int64{10_00, 50_00}, []int64{3, 1})
		mugs, vase := o.GetLines()[0], o.GetLines()[1]
		if mugs.GetDiscount() != 1_93 || vase.GetDiscount() != 3_24 || o.GetPayable() != 74_83 {
			t.Fatalf("order lines %v, want discounts 1.93 and 3.24, payable 74.83", o.GetLines())
		}
		if got := p.couponStatus(t, user, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_USED {
			t.Fatalf("coupon %s before the refunds, want USED", got)
		}
		steps := []struct {
			name       string
			line       *orderv1.OrderLine
			quantity   int64
			wantAmount int64
			wantStatus orderv1.OrderStatus
		}{
			{"one of three mugs", mugs, 1, 9_35, partiallyRefunded},
			{"the other two mugs", mugs, 2, 9_36 + 9_36, partiallyRefunded},
			{"the vase", vase, 1, 46_76, orderRefunded},
		}
		var sum int64
		for _, st := range steps {
			r := p.mustRefundDone(t, o, user, "", map[int64]int64{st.line.GetLineId(): st.quantity})
			if r.GetAmount() != st.wantAmount || len(r.GetLines()) != 1 || r.GetLines()[0].GetAmount() != st.wantAmount ||
				r.GetOrder().GetStatus() != st.wantStatus {
				t.Errorf("%s: refund %+v, want %d SUCCEEDED and the order %s", st.name, r, st.wantAmount, st.wantStatus)
			}
			sum += r.GetAmount()
			if got := p.tradeRefunded(t, "alipay", o.GetPayment().GetPaymentId()); got != sum {
				t.Errorf("%s: the channel refunded %d, want %d", st.name, got, sum)
			}
		}
		if sum != o.GetPayable() || sum != mugs.GetPayable()+vase.GetPayable() {
			t.Errorf("refunds add up to %d, want the %d paid", sum, o.GetPayable())
		}
		after := p.mustOrder(t, o.GetOrderId())
		if after.GetStatus() != orderRefunded || after.GetRefunded() != o.GetPayable() {
			t.Errorf("order %s refunded %d, want REFUNDED %d", after.GetStatus(), after.GetRefunded(), o.GetPayable())
		}
		if got := p.paymentStatus(t, o.GetPayment().GetPaymentId()); got != refunded {
			t.Errorf("payment %s, want REFUNDED", got)
		}
		if got := p.couponStatus(t, user, coupon); got != marketingv1.CouponStatus_COUPON_STATUS_AVAILABLE {
			t.Errorf("coupon %s after the full refund, want AVAILABLE", got)
		}
		if _, err := p.refund(o, user, map[int64]int64{vase.GetLineId(): 1}); errcode.Of(err) != errcode.Conflict {
			t.Errorf("refund of a refunded order: %v, want CONFLICT", err)
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{7_77, 1_00}, []int64{3, 1})
		line := o.GetLines()[0].GetLineId()
		if _, err := p.refund(o, user, map[int64]int64{line: 2}); err != nil {
			t.Fatal(err)
		}
		before := p.mustOrder(t, o.GetOrderId())
		unpaid, err := p.order.CreateRegularOrder(context.Background(), &orderv1.RegularOrderRequest{
			UserId: user, IdempotencyKey: "unpaid", Lines: []*orderv1.RegularOrderLine{{SkuId: o.GetLines()[1].GetSkuId(), Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			order *orderv1.Order
			user  int64
			lines map[int64]int64
			want  errcode.Code
		}{
			{"more units than are left", o, user, map[int64]int64{line: 2}, errcode.Conflict},
			{"a good line with an over-refunded one", o, user, map[int64]int64{o.GetLines()[1].GetLineId(): 1, line: 3}, errcode.Conflict},
			{"a line of another order", o, user, map[int64]int64{unpaid.GetLines()[0].GetLineId(): 1}, errcode.InvalidArgument},
			{"no lines", o, user, nil, errcode.InvalidArgument},
			{"zero units", o, user, map[int64]int64{line: 0}, errcode.InvalidArgument},
			{"someone else's order", o, user + 1_000_000, map[int64]int64{line: 1}, errcode.Forbidden},
			{"an unpaid order", unpaid, user, map[int64]int64{unpaid.GetLines()[0].GetLineId(): 1}, errcode.Conflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := p.refund(tt.order, tt.user, tt.lines); errcode.Of(err) != tt.want {
					t.Errorf("refund: %v, want %s", err, tt.want)
				}
			})
		}
		after := p.mustOrder(t, o.GetOrderId())
		if after.GetStatus() != before.GetStatus() || after.GetRefunded() != before.GetRefunded() ||
			after.GetLines()[0].GetRefundedQuantity() != 2 || after.GetLines()[1].GetRefundedQuantity() != 0 {
			t.Errorf("after the refusals: %v, want unchanged %v", after, before)
		}
		if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != before.GetRefunded() {
			t.Errorf("the channel refunded %d, want %d", got, before.GetRefunded())
		}
	})

	t.Run("concurrent refunds of one line", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, p.MustCoupon(t, user, 0, 1_01), "unionpay", []int64{3_33}, []int64{5})
		line := o.GetLines()[0]
		var mu sync.Mutex
		var won, sum int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				r, err := p.refund(o, user, map[int64]int64{line.GetLineId(): 1})
				switch {
				case err == nil:
					mu.Lock()
					won++
					sum += r.GetAmount()
					mu.Unlock()
				case errcode.Of(err) != errcode.Conflict:
					t.Errorf("refund: %v", err)
				}
			})
		}
		wg.Wait()
		if won != line.GetQuantity() || sum != line.GetPayable() {
			t.Errorf("%d refunds for %d, want %d for the line's %d", won, sum, line.GetQuantity(), line.GetPayable())
		}
		waitFor(t, "every refund finished", func() bool { return p.pendingRefunds(t, o.GetOrderId()) == 0 })
		if got := p.tradeRefunded(t, "unionpay", o.GetPayment().GetPaymentId()); got != o.GetPayable() {
			t.Errorf("the channel refunded %d, want %d", got, o.GetPayable())
		}
		if after := p.mustOrder(t, o.GetOrderId()); after.GetStatus() != orderRefunded || after.GetLines()[0].GetRefundedQuantity() != 5 {
			t.Errorf("order %s with %d units refunded, want REFUNDED with 5", after.GetStatus(), after.GetLines()[0].GetRefundedQuantity())
		}
	})

	t.Run("a flash-sale order refunded in full restores the purchase limit", func(t *testing.T) {
		orders := p.MustOrders(t, 2)
		o, other := orders[0], orders[1]
		// The other buyer cancels, so a unit is left to buy again.
		if _, err := p.order.CancelOrder(context.Background(), &orderv1.CancelOrderRequest{OrderId: other.ID, UserId: other.UserID}); err != nil {
			t.Fatal(err)
		}
		pay := p.MustPay(t, o, "alipay")
		p.MustBuyerPays(t, pay)
		waitFor(t, "the order paid", func() bool { return p.orderStatus(t, o) == paid })
		again := func(key string) error {
			_, err := p.order.PlaceSeckillOrder(context.Background(), &orderv1.PlaceSeckillOrderRequest{
				UserId: o.UserID, ActivityId: o.ActivityID, Quantity: 1, IdempotencyKey: key})
			return err
		}
		if err := again("before the refund"); errcode.Of(err) != errcode.LimitExceeded {
			t.Fatalf("buying again before the refund: %v, want LIMIT_EXCEEDED", err)
		}
		m := p.mustOrder(t, o.ID)
		r := p.mustRefundDone(t, m, o.UserID, "", map[int64]int64{m.GetLines()[0].GetLineId(): 1})
		if r.GetAmount() != o.Payable || r.GetOrder().GetStatus() != orderRefunded {
			t.Fatalf("refund: %+v; want %d, the order REFUNDED", r, o.Payable)
		}
		if err := again("after the refund"); err != nil {
			t.Errorf("buying again after the refund: %v", err)
		}
	})

	t.Run("a refund the channel could not take is finished by the sweep", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{12_34}, []int64{2})
		if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{Down: true}); err != nil {
			t.Fatal(err)
		}
		r, err := p.refund(o, user, map[int64]int64{o.GetLines()[0].GetLineId(): 2})
		if err != nil || r.GetStatus() != "PENDING" || r.GetAmount() != 24_68 || r.GetOrder().GetStatus() != orderRefunded {
			t.Fatalf("refund while the channel is down: %+v, %v; want 24.68 PENDING, the order REFUNDED", r, err)
		}
		// The sweep keeps trying while the channel is down; nothing is
		// refunded twice meanwhile.
		time.Sleep(300 * time.Millisecond)
		if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != 0 || p.pendingRefunds(t, o.GetOrderId()) != 1 {
			t.Fatalf("the channel refunded %d while down, want 0 and the refund pending", got)
		}
		if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sweep finished the refund", func() bool { return p.pendingRefunds(t, o.GetOrderId()) == 0 })
		if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != 24_68 {
			t.Errorf("the channel refunded %d, want 24.68", got)
		}
		if got := p.paymentStatus(t, o.GetPayment().GetPaymentId()); got != refunded {
			t.Errorf("payment %s, want REFUNDED", got)
		}
	})
}

// TestRefundAnswersWithinTheCallersBudget: a channel far slower than the
// caller's budget (and its own client's timeout, set long here, so that
// the budget is the only bound) costs the buyer a PENDING answer within
// the budget, never an expired call: the refund is recorded, its money
// goes back later through the sweep, once.
func TestRefundAnswersWithinTheCallersBudget(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.ChannelTimeout = time.Minute })
	user := users.Add(1)
	o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{7_77}, []int64{1})
	if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{LatencyMS: 20_000}); err != nil {
		t.Fatal(err)
	}
	// The caller gives the refund four seconds; the channel needs
	// twenty. What follows the recorded refund gets its share of the
	// four, and the answer the rest (a second, ample on a loaded
	// machine): PENDING, not DEADLINE_EXCEEDED.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	r, err := p.order.RefundOrder(ctx, &orderv1.RefundOrderRequest{
		OrderId: o.GetOrderId(), UserId: user, IdempotencyKey: "slow-channel",
		Lines: []*orderv1.RefundLine{{LineId: o.GetLines()[0].GetLineId(), Quantity: 1}},
	})
	if err != nil || r.GetStatus() != "PENDING" || r.GetAmount() != 7_77 || r.GetOrder().GetStatus() != orderRefunded {
		t.Fatalf("refund through a channel slower than the budget: %+v, %v; want 7.77 PENDING, the order REFUNDED", r, err)
	}
	if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{}); err != nil {
		t.Fatal(err)
	}
	// The sweep finishes it, and the abandoned call and the sweep's
	// retry return the money once between them.
	waitFor(t, "the sweep finished the refund", func() bool { return p.pendingRefunds(t, o.GetOrderId()) == 0 })
	if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != 7_77 {
		t.Errorf("the channel refunded %d, want 7.77", got)
	}
}

// sameRefund reports whether two answers are the same refund: id,
// amount, status and lines.
func sameRefund(a, b *orderv1.RefundOrderResponse) bool {
	if a.GetRefundId() != b.GetRefundId() || a.GetAmount() != b.GetAmount() || a.GetStatus() != b.GetStatus() ||
		len(a.GetLines()) != len(b.GetLines()) {
		return false
	}
	for i, l := range a.GetLines() {
		m := b.GetLines()[i]
		if l.GetLineId() != m.GetLineId() || l.GetQuantity() != m.GetQuantity() || l.GetAmount() != m.GetAmount() {
			return false
		}
	}
	return true
}

// TestRefundRetries is a buyer's client retrying refunds with its
// Idempotency-Key (docs/api.md, "Refunds"): a retry answers the first
// refund as it stands and returns no more money, whenever it arrives and
// however many arrive at once; the key with other lines is refused.
func TestRefundRetries(t *testing.T) {
	p := MustPlatform(t, nil)

	t.Run("a retry after the refund completed answers it", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, 0, "alipay", []int64{10_00, 25_00}, []int64{3, 1})
		mugs, vase := o.GetLines()[0], o.GetLines()[1]
		first := p.mustRefundDone(t, o, user, "mug", map[int64]int64{mugs.GetLineId(): 2})
		if first.GetAmount() != 20_00 {
			t.Fatalf("first refund: %+v; want 20.00", first)
		}
		again, err := p.refundWithKey(o, user, "mug", map[int64]int64{mugs.GetLineId(): 2})
		if err != nil || !sameRefund(again, first) || again.GetOrder().GetStatus() != partiallyRefunded {
			t.Fatalf("retry: %+v, %v; want the first refund %+v and the order PARTIALLY_REFUNDED", again, err, first)
		}
		// The rest of the order, and retries of both refunds once the
		// order is REFUNDED (nothing is left to refund: a new request
		// would be a CONFLICT, a retry is not).
		rest, err := p.refundWithKey(o, user, "rest", map[int64]int64{mugs.GetLineId(): 1, vase.GetLineId(): 1})
		if err != nil || rest.GetOrder().GetStatus() != orderRefunded {
			t.Fatalf("refund of the rest: %+v, %v; want the order REFUNDED", rest, err)
		}
		for _, retry := range []struct {
			key   string
			lines map[int64]int64
			want  *orderv1.RefundOrderResponse
		}{
			{"rest", map[int64]int64{vase.GetLineId(): 1, mugs.GetLineId(): 1}, rest},
			{"mug", map[int64]int64{mugs.GetLineId(): 2}, first},
		} {
			got, err := p.refundWithKey(o, user, retry.key, retry.lines)
			if err != nil || !sameRefund(got, retry.want) || got.GetOrder().GetStatus() != orderRefunded ||
				got.GetOrder().GetRefunded() != o.GetPayable() {
				t.Errorf("retry of %q after the order was refunded: %+v, %v; want %+v with the order REFUNDED",
					retry.key, got, err, retry.want)
			}
		}
		if got := p.tradeRefunded(t, "alipay", o.GetPayment().GetPaymentId()); got != o.GetPayable() {
			t.Errorf("the channel refunded %d, want the %d paid once", got, o.GetPayable())
		}
	})

	t.Run("the key with other lines is refused", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{5_00, 8_00}, []int64{4, 1})
		a, b := o.GetLines()[0].GetLineId(), o.GetLines()[1].GetLineId()
		first, err := p.refundWithKey(o, user, "k", map[int64]int64{a: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, lines := range []map[int64]int64{{a: 2}, {b: 1}, {a: 1, b: 1}} {
			if _, err := p.refundWithKey(o, user, "k", lines); errcode.Of(err) != errcode.InvalidArgument {
				t.Errorf("the key again for %v: %v, want INVALID_ARGUMENT", lines, err)
			}
		}
		// Without a key there is no refund to answer a retry with.
		if _, err := p.refundWithKey(o, user, "", map[int64]int64{a: 1}); errcode.Of(err) != errcode.InvalidArgument {
			t.Errorf("refund without a key: %v, want INVALID_ARGUMENT", err)
		}
		after := p.mustOrder(t, o.GetOrderId())
		if after.GetRefunded() != first.GetAmount() || after.GetLines()[0].GetRefundedQuantity() != 1 || after.GetLines()[1].GetRefundedQuantity() != 0 {
			t.Errorf("after the refusals: %v, want only the first refund's unit refunded", after)
		}
		if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != first.GetAmount() {
			t.Errorf("the channel refunded %d, want %d", got, first.GetAmount())
		}
	})

	t.Run("duplicates at once make one refund", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, p.MustCoupon(t, user, 0, 1_01), "unionpay", []int64{3_33}, []int64{5})
		line := o.GetLines()[0].GetLineId()
		const copies = 10
		answers := make([]*orderv1.RefundOrderResponse, copies)
		var wg sync.WaitGroup
		for i := range copies {
			wg.Go(func() {
				r, err := p.refundWithKey(o, user, "tap-tap", map[int64]int64{line: 2})
				if err != nil {
					t.Errorf("copy %d: %v", i, err)
				}
				answers[i] = r
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i, r := range answers {
			if r.GetRefundId() != answers[0].GetRefundId() || r.GetAmount() != answers[0].GetAmount() {
				t.Errorf("copy %d answered refund %d of %d, copy 0 refund %d of %d: want one refund",
					i, r.GetRefundId(), r.GetAmount(), answers[0].GetRefundId(), answers[0].GetAmount())
			}
		}
		waitFor(t, "the refund finished", func() bool { return p.pendingRefunds(t, o.GetOrderId()) == 0 })
		if got := p.tradeRefunded(t, "unionpay", o.GetPayment().GetPaymentId()); got != answers[0].GetAmount() {
			t.Errorf("the channel refunded %d, want the refund's %d once", got, answers[0].GetAmount())
		}
		if after := p.mustOrder(t, o.GetOrderId()); after.GetLines()[0].GetRefundedQuantity() != 2 || after.GetRefunded() != answers[0].GetAmount() {
			t.Errorf("order with %d units refunded for %d, want 2 units for %d",
				after.GetLines()[0].GetRefundedQuantity(), after.GetRefunded(), answers[0].GetAmount())
		}
	})

	t.Run("a retry answers the refund's status as it stands", func(t *testing.T) {
		user := users.Add(1)
		o := p.MustPaidRegularOrder(t, user, 0, "wechat", []int64{6_00}, []int64{2})
		line := o.GetLines()[0].GetLineId()
		if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{Down: true}); err != nil {
			t.Fatal(err)
		}
		first, err := p.refundWithKey(o, user, "late", map[int64]int64{line: 1})
		if err != nil || first.GetStatus() != "PENDING" {
			t.Fatalf("refund while the channel is down: %+v, %v; want PENDING", first, err)
		}
		again, err := p.refundWithKey(o, user, "late", map[int64]int64{line: 1})
		if err != nil || !sameRefund(again, first) {
			t.Fatalf("retry while the channel is down: %+v, %v; want the first refund, PENDING", again, err)
		}
		if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sweep finished the refund", func() bool { return p.pendingRefunds(t, o.GetOrderId()) == 0 })
		done, err := p.refundWithKey(o, user, "late", map[int64]int64{line: 1})
		if err != nil || done.GetRefundId() != first.GetRefundId() || done.GetStatus() != "SUCCEEDED" {
			t.Fatalf("retry after the sweep: %+v, %v; want refund %d SUCCEEDED", done, err, first.GetRefundId())
		}
		if got := p.tradeRefunded(t, "wechat", o.GetPayment().GetPaymentId()); got != first.GetAmount() {
			t.Errorf("the channel refunded %d, want %d", got, first.GetAmount())
		}
	})
}

// TestRefundKeySurvivesRestart retries a refund against an order service
// started after the one that made it: the key is kept with the refund in
// Postgres, not in a process.
func TestRefundKeySurvivesRestart(t *testing.T) {
	p := MustPlatform(t, nil)
	user := users.Add(1)
	o := p.MustPaidRegularOrder(t, user, 0, "alipay", []int64{4_20}, []int64{3})
	lines := map[int64]int64{o.GetLines()[0].GetLineId(): 1}
	first := p.mustRefundDone(t, o, user, "before-restart", lines)
	p.runOrder(t, mustListen(t), mustListen(t))
	again, err := p.refundWithKey(o, user, "before-restart", lines)
	if err != nil || !sameRefund(again, first) {
		t.Fatalf("retry after the restart: %+v, %v; want the first refund %+v", again, err, first)
	}
	if after := p.mustOrder(t, o.GetOrderId()); after.GetLines()[0].GetRefundedQuantity() != 1 {
		t.Errorf("%d units refunded, want 1", after.GetLines()[0].GetRefundedQuantity())
	}
	if got := p.tradeRefunded(t, "alipay", o.GetPayment().GetPaymentId()); got != first.GetAmount() {
		t.Errorf("the channel refunded %d, want %d", got, first.GetAmount())
	}
}
