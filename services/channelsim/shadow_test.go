package channelsim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/flashsale/flashsale/services/channelsim"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// callAs is call with the pressure-test header when marked.
func (f *fixture) callAs(tb testing.TB, marked bool, method, path string, body, out any) int {
	tb.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, f.url+path, rd)
	if marked {
		req.Header.Set(wire.PressureTestHeader, "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// A marked merchant request opens a trade in the channel's shadow twin:
// the same merchant ref marked and unmarked names two trades, each class
// sees only its own (query, wallet, statement), and the marked trade's
// notification says pressure_test under the signature.
func TestPressureTestTradesAreKeptApart(t *testing.T) {
	f := MustSimulator(t)
	var real, marked wire.Trade
	if st := f.callAs(t, false, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "77", Amount: 100}, &real); st != 200 {
		t.Fatalf("real create: %d", st)
	}
	// The same ref with another amount would conflict in one class; in
	// the other it is a trade of its own.
	if st := f.callAs(t, true, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "77", Amount: 250}, &marked); st != 200 {
		t.Fatalf("marked create: %d", st)
	}
	if marked.TradeNo == real.TradeNo || marked.Amount != 250 {
		t.Fatalf("marked trade %+v, real %+v", marked, real)
	}
	var got wire.Trade
	if st := f.callAs(t, false, "GET", "/alipay/payments?merchant_ref=77", nil, &got); st != 200 || got.TradeNo != real.TradeNo {
		t.Fatalf("real query: %d %+v", st, got)
	}
	if st := f.callAs(t, false, "POST", "/alipay/wallet/"+marked.TradeNo, nil, nil); st != 404 {
		t.Fatalf("a real payer paid a marked trade: %d", st)
	}
	if st := f.callAs(t, true, "POST", "/alipay/wallet/"+marked.TradeNo, nil, &got); st != 200 || got.Status != wire.TradePaid {
		t.Fatalf("marked pay: %d %+v", st, got)
	}
	waitFor(t, "the marked notification", func() bool { n, _, _ := f.merch.notifications(); return len(n) == 1 })
	n, bad, _ := f.merch.notifications()
	if bad != 0 || !n[0].PressureTest || n[0].TradeNo != marked.TradeNo {
		t.Fatalf("notification %+v (bad signatures %d), want the marked trade's, marked", n[0], bad)
	}
	var st wire.Statement
	f.callAs(t, false, "GET", "/alipay/statement", nil, &st)
	if len(st.Trades) != 0 {
		t.Fatalf("the real statement lists %d trades, want none paid", len(st.Trades))
	}
	f.callAs(t, true, "GET", "/alipay/statement", nil, &st)
	if len(st.Trades) != 1 || st.Trades[0].TradeNo != marked.TradeNo {
		t.Fatalf("the marked statement: %+v", st.Trades)
	}
	if tr, ok := f.sim.Trade("alipay", "77"); !ok || tr.Status != wire.TradeWaitPay {
		t.Fatalf("the real trade changed: %+v", tr)
	}
}

// A stub of the channels (Config.Stub), run beside live ones for
// pressure tests, serves only marked requests: every unmarked one is
// refused 403 FORBIDDEN and opens, pays or lists nothing, while a marked
// buy is served as the simulator serves it.
func TestStubServesPressureTestsOnly(t *testing.T) {
	f := MustSimulator(t, func(c *channelsim.Config) { c.Stub = true })
	var refused wire.Error
	if st := f.callAs(t, false, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "5", Amount: 100}, &refused); st != http.StatusForbidden || refused.Code != wire.CodeForbidden {
		t.Fatalf("unmarked create at a stub: %d %+v, want 403 %s", st, refused, wire.CodeForbidden)
	}
	if _, ok := f.sim.Trade("alipay", "5"); ok {
		t.Fatal("the refused request opened a trade")
	}
	var marked wire.Trade
	if st := f.callAs(t, true, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "5", Amount: 100}, &marked); st != 200 {
		t.Fatalf("marked create at a stub: %d", st)
	}
	for _, path := range []string{"/alipay/payments?merchant_ref=5", "/alipay/statement"} {
		if st := f.callAs(t, false, "GET", path, nil, nil); st != http.StatusForbidden {
			t.Errorf("unmarked GET %s at a stub: %d, want 403", path, st)
		}
	}
	if st := f.callAs(t, false, "POST", "/alipay/wallet/"+marked.TradeNo, nil, nil); st != http.StatusForbidden {
		t.Fatalf("an unmarked payer at a stub's wallet: %d, want 403", st)
	}
	var paid wire.Trade
	if st := f.callAs(t, true, "POST", "/alipay/wallet/"+marked.TradeNo, nil, &paid); st != 200 || paid.Status != wire.TradePaid {
		t.Fatalf("marked pay at a stub: %d %+v", st, paid)
	}
	waitFor(t, "the stub's notification", func() bool { n, _, _ := f.merch.notifications(); return len(n) == 1 })
	if n, _, _ := f.merch.notifications(); !n[0].PressureTest {
		t.Fatalf("the stub's notification %+v is not marked", n[0])
	}
}
