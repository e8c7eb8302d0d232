package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/shadow"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/payment/app"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// A pressure test beside live channels pays through their stub (the 挡板
// of docs/pressure-test.md): its trade opens at the stub, never at the
// live channels, its buyer pays at the stub's wallet, and the stub's
// notification settles it in the shadow ledger and the shadow order.
// A real payment beside it goes to the live channels, and what the stub
// signs settles none: its secret is not the live one.
func TestPressureTestsPayThroughTheStub(t *testing.T) {
	p := MustPlatformWithStub(t, func(c *app.Config) { c.ChannelsLive = true })
	ctx := context.Background()
	marked := shadow.With(ctx)

	o := p.mustOrdersIn(t, marked, 1)[0]
	pay, err := p.payment.Pay(marked, &paymentv1.PayRequest{OrderId: o.ID, UserId: o.UserID, Channel: "alipay"})
	if err != nil {
		t.Fatalf("a pressure test's pay beside a stub: %v", err)
	}
	if !strings.HasPrefix(pay.GetPayUrl(), p.payConfig.StubChannelsURL+"/") {
		t.Fatalf("pay URL %s, want the stub's (%s)", pay.GetPayUrl(), p.payConfig.StubChannelsURL)
	}
	ref := strconv.FormatInt(pay.GetPaymentId(), 10)
	if st := markedQuery(t, p.simURL, ref); st != http.StatusNotFound {
		t.Fatalf("the live channels asked about the pressure test's trade: %d, want 404 (never opened there)", st)
	}
	wallet, _ := http.NewRequest(http.MethodPost, pay.GetPayUrl(), nil)
	wallet.Header.Set(wire.PressureTestHeader, "1")
	resp, err := http.DefaultClient.Do(wallet)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the pressure test's buyer at the stub's wallet: %d", resp.StatusCode)
	}
	waitFor(t, "the pressure test's order paid", func() bool {
		return p.orderStatusIn(t, marked, o) == orderv1.OrderStatus_ORDER_STATUS_PAID
	})
	got, err := p.payment.GetPayment(marked, &paymentv1.GetPaymentRequest{PaymentId: pay.GetPaymentId()})
	if err != nil || got.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
		t.Fatalf("the pressure test's payment: %v, %v; want SUCCEEDED", got.GetStatus(), err)
	}

	real := p.MustOrders(t, 1)[0]
	rp := p.MustPay(t, real, "alipay")
	if !strings.HasPrefix(rp.GetPayUrl(), p.simURL+"/") {
		t.Fatalf("a real payment's pay URL %s, want the live channels' (%s)", rp.GetPayUrl(), p.simURL)
	}
	tr, ok := p.sim.Trade("alipay", strconv.FormatInt(rp.GetPaymentId(), 10))
	if !ok {
		t.Fatal("the real trade is not at the live channels")
	}
	for _, marked := range []bool{false, true} {
		body, _ := json.Marshal(wire.Notification{
			NotifyID: "forged", Channel: "alipay", TradeNo: tr.TradeNo, MerchantRef: tr.MerchantRef,
			Amount: tr.Amount, Status: wire.TradePaid, PaidAt: time.Now(), PressureTest: marked,
		})
		_, err := p.payment.HandleCallback(ctx, &paymentv1.CallbackRequest{
			Channel: "alipay", Body: body, Signature: wire.Sign([]byte(stubChannels[0].Secret), body),
		})
		if !marked && status.Code(err) != codes.Unauthenticated {
			t.Errorf("a real trade's notification signed by the stub: %v, want UNAUTHENTICATED", err)
		}
		if st := p.paymentStatus(t, rp.GetPaymentId()); st != paymentv1.PaymentStatus_PAYMENT_STATUS_PAYING {
			t.Fatalf("the real payment after a notification the stub signed (marked %v): %v, want PAYING", marked, st)
		}
	}
	p.MustBuyerPays(t, rp)
	waitFor(t, "the real order paid", func() bool { return p.orderStatus(t, real) == orderv1.OrderStatus_ORDER_STATUS_PAID })
}

// markedQuery asks the channels at base about the pressure test's trade
// of merchant ref, and returns the answer's status.
func markedQuery(tb testing.TB, base, ref string) int {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/alipay/payments?merchant_ref="+ref, nil)
	req.Header.Set(wire.PressureTestHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
