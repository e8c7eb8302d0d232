package local_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
)

// With Environ the services read the process environment's FLASHSALE_*
// settings as their binaries do (make up, make demo): a payment window
// set there is the one an order gets; a bad value stops the platform
// with a message naming it. Without Environ (the tests) they keep their
// defaults.
func TestEnvironReachesTheServices(t *testing.T) {
	t.Setenv("FLASHSALE_PAYMENT_WINDOW", "7m")
	for _, tt := range []struct {
		environ bool
		window  time.Duration
	}{{true, 7 * time.Minute}, {false, 15 * time.Minute}} {
		p, err := local.Up(context.Background(), stack, local.Options{Environ: tt.environ})
		if err != nil {
			t.Fatal(err)
		}
		c := client{tb: t, base: p.GatewayURL}
		admin := c.MustToken("1", "admin")
		act := mustSale(t, c, admin, 1)
		buyer := c.MustToken("777", "user")
		var placed api.SeckillAccepted
		c.MustDo(http.MethodPost, "/api/v1/seckill/orders", buyer, map[string]string{"Idempotency-Key": "w"},
			fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act), http.StatusAccepted, &placed)
		var o api.Order
		for deadline := time.Now().Add(30 * time.Second); o.ExpiresAt == nil || o.CreatedAt == nil; time.Sleep(50 * time.Millisecond) {
			c.MustDo(http.MethodGet, "/api/v1/orders/"+placed.OrderID, buyer, nil, "", http.StatusOK, &o)
			if time.Now().After(deadline) {
				t.Fatalf("order %s never showed its times", placed.OrderID)
			}
		}
		if got := o.ExpiresAt.Sub(*o.CreatedAt); got != tt.window {
			t.Errorf("Environ %v: payment window %s, want %s", tt.environ, got, tt.window)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}

	t.Setenv("FLASHSALE_PAYMENT_WINDOW", "soon")
	if _, err := local.Up(context.Background(), stack, local.Options{Environ: true}); err == nil || !strings.Contains(err.Error(), "FLASHSALE_PAYMENT_WINDOW") {
		t.Fatalf("a bad setting: %v, want an error naming FLASHSALE_PAYMENT_WINDOW", err)
	}
}
