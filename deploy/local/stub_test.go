package local_test

import (
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
	p := mustUpWith(t, local.Options{PressureStub: true})
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
		key := maps.Clone(header)
		key["Idempotency-Key"] = "s"
		c.MustDo(http.MethodPost, "/api/v1/seckill/orders", buyer, key,
			fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act), http.StatusAccepted, &placed)
		if pay := mustPayWith(t, c, buyer, placed.OrderID, header); !strings.HasPrefix(pay.PayURL, base+"/") {
			t.Fatalf("marked %v: pay URL %s, want one at %s", marked, pay.PayURL, base)
		}
		var o api.Order
		for deadline := time.Now().Add(30 * time.Second); o.Status != "PAID"; time.Sleep(50 * time.Millisecond) {
			c.MustDo(http.MethodGet, "/api/v1/orders/"+placed.OrderID, buyer, header, "", http.StatusOK, &o)
			if time.Now().After(deadline) {
				t.Fatalf("marked %v: order %s is %s, never PAID", marked, placed.OrderID, o.Status)
			}
		}
	}
}
