package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/testing/pgcalls"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/channelsim"
	"github.com/flashsale/flashsale/services/payment"
	"github.com/flashsale/flashsale/services/payment/app"
	"github.com/flashsale/flashsale/services/payment/channel"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
	paypostgres "github.com/flashsale/flashsale/services/payment/postgres"
)

const (
	paying    = paymentv1.PaymentStatus_PAYMENT_STATUS_PAYING
	succeeded = paymentv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED
	refunded  = paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
	paid      = orderv1.OrderStatus_ORDER_STATUS_PAID
	expired   = orderv1.OrderStatus_ORDER_STATUS_EXPIRED
	confirmed = inventoryv1.ReservationStatus_RESERVATION_STATUS_CONFIRMED
	released  = inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED
)

// refundsOf counts the ledger's refunds of a payment.
func (p *platform) refundsOf(tb testing.TB, paymentID int64) int {
	tb.Helper()
	var n int
	if err := p.ledger.QueryRow(context.Background(), `SELECT count(*) FROM refunds WHERE payment_id = $1 AND done_at IS NOT NULL`,
		paymentID).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestPayThenCallbackPaysTheOrder(t *testing.T) {
	p := MustPlatform(t, nil)
	// Every notification arrives twice: the second must change nothing.
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{NotifyDuplicateRate: 1}); err != nil {
		t.Fatal(err)
	}
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	if pay.GetStatus() != paying || pay.GetChannel() != "alipay" || pay.GetAmount() != o.Payable || pay.GetPayUrl() == "" {
		t.Fatalf("Pay = %+v, want PAYING through alipay for %d with a pay URL", pay, o.Payable)
	}
	if again := p.MustPay(t, o, "alipay"); again.GetPaymentId() != pay.GetPaymentId() {
		t.Errorf("a retry made payment %d, want the open %d", again.GetPaymentId(), pay.GetPaymentId())
	}
	p.MustBuyerPays(t, pay)
	waitFor(t, "both deliveries", func() bool { return p.sim.Stats("alipay").Delivered == 2 })
	if got := p.paymentStatus(t, pay.GetPaymentId()); got != succeeded {
		t.Errorf("payment %s, want SUCCEEDED", got)
	}
	m, err := p.order.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: o.ID})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetStatus() != paid || m.GetPayment().GetPaymentId() != pay.GetPaymentId() || m.GetPayment().GetChannel() != "alipay" {
		t.Errorf("order %s paid by %+v, want PAID by payment %d", m.GetStatus(), m.GetPayment(), pay.GetPaymentId())
	}
	if got := p.reservation(t, o); got != confirmed {
		t.Errorf("reservation %s, want CONFIRMED", got)
	}
	if n := p.refundsOf(t, pay.GetPaymentId()); n != 0 {
		t.Errorf("%d refunds, want none", n)
	}
	// Paying a paid order answers its payment.
	if again := p.MustPay(t, o, "wechat"); again.GetPaymentId() != pay.GetPaymentId() || again.GetStatus() != succeeded {
		t.Errorf("paying a paid order = %+v, want payment %d SUCCEEDED", again, pay.GetPaymentId())
	}
}

func TestCallbacksForgedAndReplayed(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "wechat")
	p.MustBuyerPays(t, pay)
	waitFor(t, "the order paid", func() bool { return p.orderStatus(t, o) == paid })
	tr, ok := p.sim.Trade("wechat", formatID(pay.GetPaymentId()))
	if !ok {
		t.Fatal("no trade at the channel")
	}
	body, _ := json.Marshal(wire.Notification{NotifyID: "n", Channel: "wechat", TradeNo: tr.TradeNo,
		MerchantRef: formatID(pay.GetPaymentId()), Amount: tr.Amount, Status: wire.TradePaid, PaidAt: *tr.PaidAt})
	tests := []struct {
		name    string
		channel string
		sig     string
		want    errcode.Code
	}{
		{"no signature", "wechat", "", errcode.Unauthenticated},
		{"signed with another channel's secret", "wechat", wire.Sign([]byte("alipay-dev-secret"), body), errcode.Unauthenticated},
		{"signed for another channel", "alipay", wire.Sign([]byte("alipay-dev-secret"), body), errcode.InvalidArgument},
		{"garbage signature", "wechat", "not-hex", errcode.Unauthenticated},
		{"replay of a genuine notification", "wechat", wire.Sign([]byte("wechat-dev-secret"), body), ""},
		{"unknown channel", "paypal", "x", errcode.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.payment.HandleCallback(context.Background(), &paymentv1.CallbackRequest{Channel: tt.channel, Body: body, Signature: tt.sig})
			got := errcode.Code("")
			if err != nil {
				got = errcode.Of(err)
			}
			if got != tt.want {
				t.Errorf("HandleCallback: %v (code %q), want %q", err, got, tt.want)
			}
		})
	}
	if got := p.paymentStatus(t, pay.GetPaymentId()); got != succeeded {
		t.Errorf("payment %s after forged and replayed callbacks, want SUCCEEDED", got)
	}
	if n := p.refundsOf(t, pay.GetPaymentId()); n != 0 {
		t.Errorf("%d refunds, want none", n)
	}
	// Someone else cannot read the payment.
	_, err := p.payment.GetPayment(context.Background(), &paymentv1.GetPaymentRequest{PaymentId: pay.GetPaymentId(), UserId: o.UserID + 1})
	if errcode.Of(err) != errcode.Forbidden {
		t.Errorf("GetPayment by another user: %v, want FORBIDDEN", err)
	}
}

func TestSecondPaymentThroughAnotherChannelIsRefunded(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	first, second := p.MustPay(t, o, "alipay"), p.MustPay(t, o, "unionpay")
	if first.GetPaymentId() == second.GetPaymentId() {
		t.Fatal("one payment for two channels")
	}
	p.MustBuyerPays(t, first)
	waitFor(t, "the order paid", func() bool { return p.orderStatus(t, o) == paid })
	p.MustBuyerPays(t, second)
	waitFor(t, "the second payment refunded", func() bool { return p.paymentStatus(t, second.GetPaymentId()) == refunded })
	if got := p.paymentStatus(t, first.GetPaymentId()); got != succeeded {
		t.Errorf("first payment %s, want SUCCEEDED", got)
	}
	if tr, _ := p.sim.Trade("unionpay", formatID(second.GetPaymentId())); tr.Status != wire.TradeRefunded {
		t.Errorf("unionpay trade %s, want REFUNDED at the channel", tr.Status)
	}
	if n := p.refundsOf(t, second.GetPaymentId()); n != 1 {
		t.Errorf("%d refunds of the second payment, want 1", n)
	}
}

func TestPaymentAfterExpiryIsRefunded(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	mustExpire(t, p, o)
	p.MustBuyerPays(t, pay)
	waitFor(t, "the late payment refunded", func() bool { return p.paymentStatus(t, pay.GetPaymentId()) == refunded })
	if got := p.orderStatus(t, o); got != expired {
		t.Errorf("order %s, want it still EXPIRED", got)
	}
	if got := p.reservation(t, o); got != released {
		t.Errorf("reservation %s, want RELEASED", got)
	}
	var reason string
	if err := p.ledger.QueryRow(context.Background(), `SELECT reason FROM refunds WHERE payment_id = $1`, pay.GetPaymentId()).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if reason != "order EXPIRED" {
		t.Errorf("refund reason %q, want %q", reason, "order EXPIRED")
	}
	_, err := p.payment.Pay(context.Background(), &paymentv1.PayRequest{OrderId: o.ID, UserId: o.UserID, Channel: "auto"})
	if errcode.Of(err) != errcode.Conflict {
		t.Errorf("paying an expired order: %v, want CONFLICT", err)
	}
}

// TestResumedRefundKeepsTheOrdersReason: the settler that heard the
// order refuse a late payment records the refusal and its reason, then
// dies before the refund; the sweep that resumes the settlement refunds
// with the order's reason, not a generic one. (Before the reason was
// recorded, this is what made TestPaymentAfterExpiryIsRefunded flaky: a
// sweep that came between the two steps of a live settler refunded with
// "order not payable".)
func TestResumedRefundKeepsTheOrdersReason(t *testing.T) {
	p := MustPlatform(t, nil)
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{NotifyDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	mustExpire(t, p, o)
	p.MustBuyerPays(t, pay)
	tr, ok := p.sim.Trade("alipay", formatID(pay.GetPaymentId()))
	if !ok || tr.Status != wire.TradePaid {
		t.Fatalf("trade %+v, %v; want it paid", tr, ok)
	}
	// What the dead settler left: SUCCEEDED, the order's refusal recorded
	// with its reason, no refund yet (one statement, so the sweep sees
	// all of it or none).
	if _, err := p.ledger.Exec(context.Background(), `UPDATE payments SET status = 'SUCCEEDED', trade_no = $2,
		paid_at = now(), order_outcome = 'REFUSED', refusal_reason = 'order EXPIRED' WHERE payment_id = $1`,
		pay.GetPaymentId(), tr.TradeNo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sweep to refund", func() bool { return p.paymentStatus(t, pay.GetPaymentId()) == refunded })
	var reason string
	if err := p.ledger.QueryRow(context.Background(), `SELECT reason FROM refunds WHERE payment_id = $1`, pay.GetPaymentId()).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if reason != "order EXPIRED" {
		t.Errorf("resumed refund reason %q, want the order's %q", reason, "order EXPIRED")
	}
}

// expire does what the expiry worker does: one conditional update from
// PENDING_PAYMENT to EXPIRED, then, if it won, the release of the stock.
func expire(p *platform, o order) error {
	tag, err := p.orders.Exec(context.Background(), `UPDATE orders SET status = 'EXPIRED', updated_at = now()
		WHERE order_id = $1 AND status = 'PENDING_PAYMENT'`, o.ID)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	_, err = p.inventory.Release(context.Background(), &inventoryv1.ReleaseRequest{ActivityId: o.ActivityID, OrderId: o.ID})
	return err
}

// mustExpire expires the order; it must win.
func mustExpire(tb testing.TB, p *platform, o order) {
	tb.Helper()
	if err := expire(p, o); err != nil {
		tb.Fatal(err)
	}
	if st := p.orderStatus(tb, o); st != expired {
		tb.Fatalf("order %s after expiring it, want EXPIRED", st)
	}
}

// tradeNo is the channel's trade of a payment.
func tradeNo(tb testing.TB, p *platform, pay *paymentv1.Payment) string {
	tr, ok := p.sim.Trade(pay.GetChannel(), formatID(pay.GetPaymentId()))
	if !ok {
		tb.Errorf("no trade for payment %d", pay.GetPaymentId())
	}
	return tr.TradeNo
}

// mustPaidCallbackLost has the buyer of a new order pay through channel,
// whose notification is lost, and checks that the payment stays PAYING
// while the sweep runs (every 20 ms) before its question is due.
func (p *platform) mustPaidCallbackLost(t *testing.T, channel string) (order, *paymentv1.Payment) {
	t.Helper()
	if err := p.sim.SetBehaviour(channel, channelsim.Behaviour{NotifyDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, channel)
	p.MustBuyerPays(t, pay)
	if got := p.sim.Stats(channel).Dropped; got != 1 {
		t.Fatalf("dropped %d notifications, want 1", got)
	}
	time.Sleep(100 * time.Millisecond)
	if got := p.paymentStatus(t, pay.GetPaymentId()); got != paying {
		t.Fatalf("payment %s before its question is due, want PAYING", got)
	}
	return o, pay
}

// TestDroppedCallbackRepairedByQuery: the sweep runs all along, but the
// payment is not asked about until a minute (QueryAfter) has passed on
// the service's clock.
func TestDroppedCallbackRepairedByQuery(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.QueryAfter = time.Minute })
	o, pay := p.mustPaidCallbackLost(t, "alipay")
	p.clock.Advance(time.Minute)
	waitFor(t, "the sweep to settle the payment", func() bool { return p.orderStatus(t, o) == paid })
	if got := p.paymentStatus(t, pay.GetPaymentId()); got != succeeded {
		t.Errorf("payment %s, want SUCCEEDED", got)
	}
	// The sweep reports its round once the round is over, which may be
	// after the order is paid.
	waitFor(t, "payment_sweep_queries_total to count the 1 question", func() bool {
		return p.metric(t, "payment_sweep_queries_total", nil) == 1
	})
}

// TestBuyerLookingRepairsADroppedCallback: the buyer paid, the callback
// was lost, and the payment's next question is an hour away. The buyer,
// back from the channel's page, looks at the payment: the next sweep asks
// the channel, and the order is paid.
func TestBuyerLookingRepairsADroppedCallback(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.QueryAfter = time.Hour })
	o, pay := p.mustPaidCallbackLost(t, "wechat")
	looked, err := p.payment.GetPayment(context.Background(), &paymentv1.GetPaymentRequest{PaymentId: pay.GetPaymentId(), UserId: o.UserID})
	if err != nil || looked.GetStatus() != paying {
		t.Fatalf("the buyer's look: %v, %v; want the payment PAYING", looked.GetStatus(), err)
	}
	waitFor(t, "the sweep to settle the payment the buyer looked at", func() bool { return p.orderStatus(t, o) == paid })
}

// One channel whose statement cannot be read does not hide the others'
// reports from the operator: the call answers every channel's report
// (the failed one's as far as it got), with the failure beside them. It
// fails only when every channel did.
func TestReconcileAnswersTheChannelsThatCouldBeRead(t *testing.T) {
	p := MustPlatform(t, nil)
	if err := p.sim.SetBehaviour("wechat", channelsim.Behaviour{Down: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := p.payment.Reconcile(context.Background(), &paymentv1.ReconcileRequest{})
	if err != nil {
		t.Fatalf("reconcile with one channel down: %v, want the others' reports", err)
	}
	var channels []string
	for _, r := range resp.GetReports() {
		channels = append(channels, r.GetChannel())
	}
	slices.Sort(channels)
	if !slices.Equal(channels, []string{"alipay", "unionpay", "wechat"}) {
		t.Errorf("reports of %v, want every channel's", channels)
	}
	if f := resp.GetFailures(); len(f) != 1 || !strings.Contains(f[0], "wechat") {
		t.Errorf("failures %q, want wechat's alone", f)
	}
	for _, ch := range []string{"alipay", "unionpay"} {
		if err := p.sim.SetBehaviour(ch, channelsim.Behaviour{Down: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.payment.Reconcile(context.Background(), &paymentv1.ReconcileRequest{}); errcode.Of(err) != errcode.Unavailable {
		t.Errorf("reconcile with every channel down: %v, want UNAVAILABLE", err)
	}
}

func TestDroppedCallbackRepairedByReconciliation(t *testing.T) {
	p := MustPlatform(t, nil)
	if err := p.sim.SetBehaviour("unionpay", channelsim.Behaviour{NotifyDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	o := p.MustOrders(t, 2)
	lost, fine := p.MustPay(t, o[0], "unionpay"), p.MustPay(t, o[1], "wechat")
	p.MustBuyerPays(t, lost)
	p.MustBuyerPays(t, fine)
	waitFor(t, "the wechat payment", func() bool { return p.orderStatus(t, o[1]) == paid })
	resp, err := p.payment.Reconcile(context.Background(), &paymentv1.ReconcileRequest{})
	if err != nil || len(resp.GetFailures()) != 0 {
		t.Fatalf("reconcile: %v, failures %q", err, resp.GetFailures())
	}
	got := map[string][]int64{}
	for _, r := range resp.GetReports() {
		got[r.GetChannel()] = r.GetRepaired()
		if n := r.GetFound()["repaired"]; n != int64(len(r.GetRepaired())) {
			t.Errorf("%s: found %d repaired, listed %v", r.GetChannel(), n, r.GetRepaired())
		}
		if len(r.GetUnknown())+len(r.GetMismatched()) > 0 {
			t.Errorf("%s: unknown %v, mismatched %v; want none", r.GetChannel(), r.GetUnknown(), r.GetMismatched())
		}
	}
	if !slices.Equal(got["unionpay"], []int64{lost.GetPaymentId()}) || len(got["wechat"]) != 0 || len(got["alipay"]) != 0 {
		t.Errorf("repaired %v, want only unionpay's payment %d", got, lost.GetPaymentId())
	}
	if st := p.orderStatus(t, o[0]); st != paid {
		t.Errorf("order %s after reconciliation, want PAID", st)
	}
	again, err := p.payment.Reconcile(context.Background(), &paymentv1.ReconcileRequest{})
	if err != nil || len(again.GetFailures()) != 0 {
		t.Fatalf("reconcile: %v, failures %q", err, again.GetFailures())
	}
	for _, r := range again.GetReports() {
		if len(r.GetRepaired()) != 0 {
			t.Errorf("a second reconciliation repaired %v on %s, want nothing", r.GetRepaired(), r.GetChannel())
		}
	}
}

func channelState(tb testing.TB, p *platform, name string) *paymentv1.Channel {
	tb.Helper()
	resp, err := p.payment.ListChannels(context.Background(), &paymentv1.ListChannelsRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range resp.GetChannels() {
		if c.GetName() == name {
			return c
		}
	}
	tb.Fatalf("no channel %s", name)
	return nil
}

func TestOutageShiftsRoutingAndBreakerRecovers(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.Router.OpenFor = time.Second })
	ctx := context.Background()
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{Down: true}); err != nil {
		t.Fatal(err)
	}
	orders := p.MustOrders(t, 14)
	// Buyers prefer alipay; while it is down every payment still goes
	// through, on the other channels, and alipay's breaker opens after
	// TripCalls (5) failures.
	opened := 0
	for i, o := range orders[:10] {
		if pay := p.MustPay(t, o, "alipay"); pay.GetChannel() == "alipay" {
			t.Fatalf("order %d paid through alipay during its outage", o.ID)
		}
		if opened == 0 && channelState(t, p, "alipay").GetBreaker() == payment.BreakerOpen {
			opened = i + 1
		}
	}
	if opened != 5 {
		t.Fatalf("alipay breaker opened after %d payments, want 5", opened)
	}
	// Back up: after OpenFor the breaker lets a probe through. Only
	// alipay is enabled, so the next payment is the probe.
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "half-open", func() bool { return channelState(t, p, "alipay").GetBreaker() == payment.BreakerHalfOpen })
	for _, ch := range []string{"wechat", "unionpay"} {
		if _, err := p.payment.UpdateChannel(ctx, &paymentv1.UpdateChannelRequest{Channel: ch, Weight: 100, Enabled: false}); err != nil {
			t.Fatal(err)
		}
	}
	if pay := p.MustPay(t, orders[10], "auto"); pay.GetChannel() != "alipay" {
		t.Errorf("probe went through %s, want alipay", pay.GetChannel())
	}
	if c := channelState(t, p, "alipay"); c.GetBreaker() != payment.BreakerClosed {
		t.Fatalf("alipay breaker %s after a good probe, want closed", c.GetBreaker())
	}
	for _, ch := range []string{"wechat", "unionpay"} {
		if _, err := p.payment.UpdateChannel(ctx, &paymentv1.UpdateChannelRequest{Channel: ch, Weight: 100, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Healthy again, the buyers' preference is honoured.
	for _, o := range orders[11:] {
		if pay := p.MustPay(t, o, "alipay"); pay.GetChannel() != "alipay" {
			t.Errorf("order %d paid through %s, want the preferred alipay", o.ID, pay.GetChannel())
		}
	}
	_, err := p.payment.UpdateChannel(ctx, &paymentv1.UpdateChannelRequest{Channel: "paypal", Weight: 1, Enabled: true})
	if errcode.Of(err) != errcode.NotFound {
		t.Errorf("UpdateChannel of an unknown channel: %v, want NOT_FOUND", err)
	}
}

// TestPaymentRacesExpiry pays many orders while an expiry races each
// payment's settlement. Whoever wins, every order ends in exactly one
// state, its reservation agrees, money that came late is refunded once,
// and the stock adds up.
func TestPaymentRacesExpiry(t *testing.T) {
	const n = 40
	p := MustPlatform(t, nil)
	orders := p.MustOrders(t, n)
	pays := make([]*paymentv1.Payment, n)
	channels := []string{"alipay", "wechat", "unionpay", "auto"}
	for i, o := range orders {
		pays[i] = p.MustPay(t, o, channels[i%len(channels)])
	}
	var wg sync.WaitGroup
	for i, o := range orders {
		// t.Fatal may not be called off the test's goroutine: these
		// report with t.Error.
		wg.Go(func() {
			if _, err := p.sim.Pay(pays[i].GetChannel(), tradeNo(t, p, pays[i])); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			// Staggered, so that the callback wins some races and the
			// expiry others.
			time.Sleep(time.Duration(i%20) * 20 * time.Millisecond)
			if err := expire(p, o); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var paidN, expiredN int
	for i, o := range orders {
		id := pays[i].GetPaymentId()
		waitFor(t, "the payment settled", func() bool {
			st := p.paymentStatus(t, id)
			return st == refunded || (st == succeeded && p.orderStatus(t, o) == paid)
		})
		st, ost, res := p.paymentStatus(t, id), p.orderStatus(t, o), p.reservation(t, o)
		switch {
		case ost == paid && st == succeeded && res == confirmed:
			paidN++
		case ost == expired && st == refunded && res == released && p.refundsOf(t, id) == 1:
			expiredN++
		default:
			t.Errorf("order %d: order %s, payment %s, reservation %s, refunds %d", o.ID, ost, st, res, p.refundsOf(t, id))
		}
	}
	stock, err := p.inventory.GetStock(context.Background(), &inventoryv1.GetStockRequest{ActivityId: orders[0].ActivityID})
	if err != nil {
		t.Fatal(err)
	}
	if got := stock.GetRemaining() + int64(paidN); got != n {
		t.Errorf("remaining %d + paid %d = %d, want the initial %d", stock.GetRemaining(), paidN, got, n)
	}
	t.Logf("%d paid, %d expired and refunded", paidN, expiredN)
}

func formatID(id int64) string { return strconv.FormatInt(id, 10) }

// A settler that read a payment before another recorded the order's answer
// may hear a different answer from the order later (a refusal once the
// buyer had the order refunded). The answer on record stands: the ledger
// keeps the first and hands it to the late one, which then refunds nothing.
func TestLateSettlerGetsTheRecordedOutcome(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	p.MustBuyerPays(t, pay)
	waitFor(t, "the payment to settle", func() bool { return p.paymentStatus(t, pay.GetPaymentId()) == succeeded })
	ledger := paypostgres.NewLedger(p.ledger)
	ctx := context.Background()
	waitFor(t, "the order's answer to be recorded", func() bool {
		got, err := ledger.Payment(ctx, pay.GetPaymentId())
		return err == nil && got.Outcome == payment.OutcomeAccepted
	})
	got, reason, err := ledger.SetOutcome(ctx, pay.GetPaymentId(), payment.OutcomeRefused, "order REFUNDED")
	if err != nil {
		t.Fatal(err)
	}
	if got != payment.OutcomeAccepted || reason != "" {
		t.Errorf("late REFUSED: recorded outcome %q (%q), want the first answer %q", got, reason, payment.OutcomeAccepted)
	}
	if n := p.refundsOf(t, pay.GetPaymentId()); n != 0 {
		t.Errorf("%d refunds, want none", n)
	}
}

// TestOnlyItsOwnPaidTradePaysAPayment: a notification signed with the
// channel's secret settles a payment only when it reports the payment's
// own trade (the trade number the channel gave when it opened it) as
// PAID. A closed or refunded trade, or another trade number, pays
// nothing; and reconciliation, holding the ledger against the statement,
// reports a payment the ledger holds paid that the channel never saw paid.
func TestOnlyItsOwnPaidTradePaysAPayment(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	tr, ok := p.sim.Trade("alipay", formatID(pay.GetPaymentId()))
	if !ok || tr.Status != wire.TradeWaitPay {
		t.Fatalf("trade %+v, %v; want one waiting for the buyer", tr, ok)
	}
	notify := func(tradeNo string, status wire.TradeStatus) error {
		body, _ := json.Marshal(wire.Notification{NotifyID: "n-" + string(status), Channel: "alipay", TradeNo: tradeNo,
			MerchantRef: formatID(pay.GetPaymentId()), Amount: tr.Amount, Status: status, PaidAt: time.Now()})
		_, err := p.payment.HandleCallback(context.Background(), &paymentv1.CallbackRequest{
			Channel: "alipay", Body: body, Signature: wire.Sign([]byte("alipay-dev-secret"), body)})
		return err
	}
	for _, tt := range []struct {
		name    string
		tradeNo string
		status  wire.TradeStatus
		want    errcode.Code
	}{
		{"a closed trade", tr.TradeNo, "CLOSED", ""},
		{"a refunded trade", tr.TradeNo, wire.TradeRefunded, ""},
		{"a status nobody knows", tr.TradeNo, "TRADE_FINISHED_MAYBE", ""},
		{"another trade number", "forged-" + tr.TradeNo, wire.TradePaid, errcode.InvalidArgument},
	} {
		got := errcode.Code("")
		if err := notify(tt.tradeNo, tt.status); err != nil {
			got = errcode.Of(err)
		}
		if got != tt.want {
			t.Errorf("%s: code %q, want %q", tt.name, got, tt.want)
		}
		if st := p.paymentStatus(t, pay.GetPaymentId()); st != paying {
			t.Errorf("%s: payment %s, want still PAYING", tt.name, st)
		}
	}
	if st := p.orderStatus(t, o); st == paid {
		t.Fatalf("order PAID by notifications that do not pay")
	}
	if got := p.metric(t, "payment_callbacks_total", map[string]string{"channel": "alipay", "result": "not_paid"}); got != 3 {
		t.Errorf("not_paid callbacks %v, want 3", got)
	}

	// The ledger says SUCCEEDED (a bug, a hand edit, a forged callback
	// before this fix) while the channel's trade is unpaid.
	if _, err := p.ledger.Exec(context.Background(), `UPDATE payments SET status = 'SUCCEEDED', paid_at = now(), order_outcome = 'ACCEPTED' WHERE payment_id = $1`,
		pay.GetPaymentId()); err != nil {
		t.Fatal(err)
	}
	resp, err := p.payment.Reconcile(context.Background(), &paymentv1.ReconcileRequest{})
	if err != nil || len(resp.GetFailures()) != 0 {
		t.Fatalf("reconcile: %v, failures %q", err, resp.GetFailures())
	}
	for _, r := range resp.GetReports() {
		if r.GetChannel() == "alipay" && !slices.Contains(r.GetUnpaid(), pay.GetPaymentId()) {
			t.Errorf("alipay reconciliation unpaid %v, want payment %d", r.GetUnpaid(), pay.GetPaymentId())
		}
	}
	if got := p.metric(t, "payment_reconcile_differences_total", map[string]string{"channel": "alipay", "kind": "unpaid_at_channel"}); got < 1 {
		t.Errorf("unpaid_at_channel differences %v, want at least 1", got)
	}
	if got := p.metric(t, "payment_reconcile_differences_total", map[string]string{"channel": "wechat", "kind": "mismatched"}); got != 0 {
		t.Errorf("wechat mismatched differences %v, want 0 (a series that starts at zero)", got)
	}
}

// A channel's signed PAID notification without a payment time still
// settles the payment, at the platform's time: the order is paid, and
// the payment is not left SUCCEEDED with no answer from the order, which
// refuses a payment without a time.
func TestPaidTradeWithoutItsTimeSettles(t *testing.T) {
	p := MustPlatform(t, nil)
	o := p.MustOrders(t, 1)[0]
	pay := p.MustPay(t, o, "alipay")
	tr, ok := p.sim.Trade("alipay", formatID(pay.GetPaymentId()))
	if !ok {
		t.Fatal("no trade at the channel")
	}
	body, _ := json.Marshal(wire.Notification{NotifyID: "n-no-time", Channel: "alipay", TradeNo: tr.TradeNo,
		MerchantRef: formatID(pay.GetPaymentId()), Amount: tr.Amount, Status: wire.TradePaid})
	if _, err := p.payment.HandleCallback(context.Background(), &paymentv1.CallbackRequest{
		Channel: "alipay", Body: body, Signature: wire.Sign([]byte("alipay-dev-secret"), body)}); err != nil {
		t.Fatalf("a PAID notification without paid_at: %v", err)
	}
	if st := p.orderStatus(t, o); st != paid {
		t.Fatalf("order %s, want PAID", st)
	}
	var outcome string
	var paidAt time.Time
	if err := p.ledger.QueryRow(context.Background(), `SELECT coalesce(order_outcome, ''), paid_at FROM payments WHERE payment_id = $1`,
		pay.GetPaymentId()).Scan(&outcome, &paidAt); err != nil || outcome != "ACCEPTED" || !paidAt.Equal(p.clock.Now()) {
		t.Fatalf("payment outcome %q paid at %v (%v), want ACCEPTED at the platform's %v", outcome, paidAt, err, p.clock.Now())
	}
}

// A channel that does not answer within its share of the pay budget is
// abandoned for the next one: the buyer, whose gateway gives the call 2 s,
// gets a payment through another channel instead of UNAVAILABLE. The
// abandoned attempt stays in the ledger as FAILED; should its trade be
// paid at the channel after all, the money goes back, since the order was
// paid through the channel that answered.
func TestSlowChannelIsAbandonedWithinThePayBudget(t *testing.T) {
	p := MustPlatform(t, nil)
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{LatencyMS: 5000}); err != nil {
		t.Fatal(err)
	}
	o := p.MustOrders(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // the gateway's call timeout
	defer cancel()
	pay, err := p.payment.Pay(ctx, &paymentv1.PayRequest{OrderId: o.ID, UserId: o.UserID, Channel: "alipay"})
	if err != nil {
		t.Fatalf("pay preferring alipay, which takes 5 s to answer: %v, want a payment through another channel", err)
	}
	if pay.GetChannel() == "alipay" {
		t.Fatalf("paid through the slow alipay")
	}
	var abandoned int64
	var status string
	if err := p.ledger.QueryRow(context.Background(), `SELECT payment_id, status FROM payments WHERE order_id = $1 AND channel = 'alipay'`,
		o.ID).Scan(&abandoned, &status); err != nil {
		t.Fatalf("the abandoned alipay attempt: %v", err)
	}
	if status != "FAILED" {
		t.Fatalf("abandoned alipay payment %s, want FAILED", status)
	}

	// Its trade's outcome is unknown, so it keeps its questions.
	var asked bool
	if err := p.ledger.QueryRow(context.Background(), `SELECT query_at IS NOT NULL FROM payments WHERE payment_id = $1`,
		abandoned).Scan(&asked); err != nil || !asked {
		t.Fatalf("the abandoned alipay payment has a next question: %v (%v), want one", asked, err)
	}

	p.MustBuyerPays(t, pay)
	waitFor(t, "the order paid", func() bool { return p.orderStatus(t, o) == paid })
	// Alipay had opened the trade after all, and the buyer pays it; its
	// notification is lost, so only the sweep's question finds it.
	if err := p.sim.SetBehaviour("alipay", channelsim.Behaviour{NotifyDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	late, err := channel.New("alipay", p.simURL, "", time.Second).Create(context.Background(),
		payment.Payment{ID: abandoned, OrderID: o.ID, Amount: o.Payable})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.Pay("alipay", late.TradeNo); err != nil {
		t.Fatal(err)
	}
	// Its next question comes (the harness asks an hour apart).
	p.clock.Advance(time.Hour + time.Second)
	waitFor(t, "the abandoned payment refunded", func() bool { return p.paymentStatus(t, abandoned) == refunded })
	if got := p.paymentStatus(t, pay.GetPaymentId()); got != succeeded {
		t.Errorf("the payment that answered is %s, want SUCCEEDED", got)
	}
	if tr, _ := p.sim.Trade("alipay", formatID(abandoned)); tr.Status != wire.TradeRefunded {
		t.Errorf("alipay trade %s, want REFUNDED at the channel", tr.Status)
	}
}

// TestPaidSinceReadsOneSnapshotInPaymentOrder: the ledger's paid payments
// for reconciliation come from the snapshot PaidSince took, a page at a
// time in payment order (time, then id), up to a bound: a payment paid
// after the snapshot, one of another channel, one created before the
// window and one never paid are not among them.
func TestPaidSinceReadsOneSnapshotInPaymentOrder(t *testing.T) {
	p := MustPlatform(t, nil)
	ctx := context.Background()
	ch := "snapshot-" + strconv.FormatInt(time.Now().UnixNano(), 36) // a channel of this run alone
	base := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	insert := func(id int64, channel string, created time.Time, paidAt *time.Time) {
		t.Helper()
		status := "PAYING"
		if paidAt != nil {
			status = "SUCCEEDED"
		}
		if _, err := p.ledger.Exec(ctx, `INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at, paid_at)
			VALUES ($1, $1, 1, $2, 100, $3, $4, $5)`, id, channel, status, created, paidAt); err != nil {
			t.Fatal(err)
		}
	}
	at := func(ms int) *time.Time { v := base.Add(time.Duration(ms) * time.Millisecond); return &v }
	first := time.Now().UnixNano() // ids of this run alone
	// Ids against payment order: payment time first, the id breaks ties.
	insert(first+5, ch, base, at(10))
	insert(first+1, ch, base, at(30))
	insert(first+3, ch, base, at(20))
	insert(first+2, ch, base, at(20))
	insert(first+4, ch, base, at(40))
	insert(first+6, ch, base, nil)                    // never paid
	insert(first+7, ch+"-other", base, at(15))        // another channel
	insert(first+8, ch, base.Add(-time.Hour), at(25)) // created before the window
	r, err := paypostgres.NewLedger(p.ledger).PaidSince(ctx, ch, base)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	insert(first+9, ch, base, at(5)) // paid after the snapshot

	var got []int64
	page := func(before time.Time, limit int) int {
		t.Helper()
		refs, err := r.Next(ctx, before, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range refs {
			got = append(got, ref.ID-first)
		}
		return len(refs)
	}
	if n := page(*at(30), 2); n != 2 { // 5, 2
		t.Errorf("first page: %d payments, want 2", n)
	}
	if n := page(*at(30), 2); n != 1 { // 3; 1 is paid at 30, not before it
		t.Errorf("second page before +30ms: %d payments, want 1", n)
	}
	page(time.Time{}, 10) // the rest: 1, 4
	if want := []int64{5, 2, 3, 1, 4}; !slices.Equal(got, want) {
		t.Errorf("read %v (ids less the run's first), want %v", got, want)
	}
}

// A settler moves a payment to SUCCEEDED and reads it back in one round
// trip: moved, then not moved (a second callback), and an unknown id
// answered ErrNotFound.
func TestSucceedIsOneRoundTrip(t *testing.T) {
	p := MustPlatform(t, nil)
	ctx := context.Background()
	calls := pgcalls.New(p.ledger)
	ledger := paypostgres.NewLedger(calls)
	id := time.Now().UnixNano() // an id of this run alone
	paidAt := time.Date(2026, 11, 11, 0, 0, 1, 0, time.UTC)
	if err := ledger.Create(ctx, payment.Payment{ID: id, OrderID: id, UserID: 1, Channel: "alipay", Amount: 990,
		Status: payment.StatusPaying, CreatedAt: paidAt.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false} {
		calls.Take()
		got, moved, err := ledger.Succeed(ctx, id, "T-"+strconv.FormatInt(id, 10), paidAt)
		if err != nil {
			t.Fatal(err)
		}
		if c := calls.Take(); len(c) != 1 {
			t.Errorf("succeed made %v, want one round trip", c)
		}
		if moved != want || got.ID != id || got.Status != payment.StatusSucceeded || got.TradeNo != "T-"+strconv.FormatInt(id, 10) || !got.PaidAt.Equal(paidAt) {
			t.Errorf("succeed = %+v, moved %v; want payment %d SUCCEEDED, trade T-%d, paid at %v, moved %v", got, moved, id, id, paidAt, want)
		}
	}
	calls.Take()
	if _, moved, err := ledger.Succeed(ctx, id+1, "T", paidAt); !errors.Is(err, payment.ErrNotFound) || moved {
		t.Errorf("succeed of an unknown payment: moved %v, err %v; want ErrNotFound", moved, err)
	}
	if c := calls.Take(); len(c) != 1 {
		t.Errorf("succeed of an unknown payment made %v, want one round trip", c)
	}
}
