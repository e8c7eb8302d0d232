package local_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/shadow"
)

// With PressureStub the simulator stands for live channels and a
// pressure test pays through the stub beside it, end to end over HTTP:
// the marked buyer's pay URL is the stub's, the stub's notification
// comes back through the gateway's callback route, and the marked order
// is PAID; a real buyer on the same platform pays at the simulator.
func TestPressureTestPaysThroughTheStub(t *testing.T) {
	p, err := local.Up(context.Background(), stack, local.Options{PressureStub: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if p.StubURL == "" || p.StubURL == p.ChannelsURL {
		t.Fatalf("stub at %q beside the simulator at %q", p.StubURL, p.ChannelsURL)
	}
	c := client{tb: t, base: p.GatewayURL}
	admin := c.MustToken("1", "admin")
	var lt struct{ Token string }
	c.MustDo(http.MethodPost, "/admin/v1/load-test-tokens", admin, nil, "", http.StatusCreated, &lt)
	for i, marked := range []bool{true, false} {
		header, base := map[string]string{}, p.ChannelsURL
		if marked {
			header[shadow.Header], base = lt.Token, p.StubURL
		}
		act := mustSaleWith(t, c, admin, 1, header)
		buyer := c.MustToken(fmt.Sprint(881+i), "user")
		var placed api.SeckillAccepted
		c.MustDo(http.MethodPost, "/api/v1/seckill/orders", buyer, with(header, "Idempotency-Key", "s"),
			fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act), http.StatusAccepted, &placed)
		status := func() string {
			var o api.Order
			c.MustDo(http.MethodGet, "/api/v1/orders/"+placed.OrderID, buyer, header, "", http.StatusOK, &o)
			return o.Status
		}
		waitUntil(t, "the order stored", func() bool { return status() == "PENDING_PAYMENT" })
		var pay api.Payment
		c.MustDo(http.MethodPost, "/api/v1/orders/"+placed.OrderID+"/pay", buyer, header, `{"channel":"alipay"}`, http.StatusOK, &pay)
		if !strings.HasPrefix(pay.PayURL, base+"/") {
			t.Fatalf("marked %v: pay URL %s, want one at %s", marked, pay.PayURL, base)
		}
		wallet, _ := http.NewRequest(http.MethodPost, pay.PayURL, nil)
		for k, v := range header {
			wallet.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(wallet)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("marked %v: the wallet answered %d", marked, resp.StatusCode)
		}
		waitUntil(t, "the order paid", func() bool { return status() == "PAID" })
	}
}

// with is header and one more.
func with(header map[string]string, k, v string) map[string]string {
	out := maps.Clone(header)
	out[k] = v
	return out
}

// waitUntil polls cond for up to 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
	}
}
