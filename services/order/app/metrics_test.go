package app_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/order/app"
)

// lagLine matches the consumer-lag gauge of the order-writer group.
var lagLine = regexp.MustCompile(`(?m)^order_consumer_lag_messages\{group="order-writer",topic="orders.placed"\} (\d+)$`)

// MustLag scrapes the order service's admin port for the consumer lag.
func MustLag(tb testing.TB, admin string) int64 {
	tb.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := lagLine.FindSubmatch(body)
	if m == nil {
		tb.Fatalf("no consumer lag in the metrics:\n%s", body)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// The lag gauge counts a stored but uncommitted batch, and drops to zero
// once the batch is committed.
func TestMetricsReportConsumerLag(t *testing.T) {
	// The first batch that stores an order announces itself on held and
	// waits for release; later ones find held full and go on.
	held, release := make(chan struct{}, 1), make(chan struct{})
	var admin string
	p := MustPlatform(t, func(c *app.Config) {
		admin = c.AdminListener.Addr().String()
		c.ConsumerAfterWrite = func(ctx context.Context, stored int) error {
			if stored > 0 {
				select {
				case held <- struct{}{}:
					<-release
				default:
				}
			}
			return nil
		}
	})
	MustDrain(t)
	a := p.MustActivity(t, 10, 2, -time.Minute)
	MustPlace(t, p, newUsers(1), a.GetActivityId(), "lag-1")
	<-held
	if got := MustLag(t, admin); got < 1 {
		t.Errorf("lag while a batch is held = %d, want at least 1", got)
	}
	close(release)
	MustDrain(t)
	if got := MustLag(t, admin); got != 0 {
		t.Errorf("lag after the commit = %d, want 0", got)
	}
}
