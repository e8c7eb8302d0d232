package local_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/postgres"
)

// mustChromium returns the path of the headless browser (make test-deps
// installs it).
func mustChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: `make test-deps` installs it (apt-get install chromium)")
	return ""
}

// screenFigures are the page's paid orders and GMV, as its elements
// carry them.
type screenFigures struct{ paid, gmv int64 }

// readScreen reads the figures the page shows now.
func readScreen(ctx context.Context) (screenFigures, error) {
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[document.getElementById("paid").dataset.value, document.getElementById("gmv").dataset.cents]`))
	if err != nil {
		return screenFigures{}, err
	}
	if len(raw) != 2 {
		return screenFigures{}, fmt.Errorf("the page's figures: %q", raw)
	}
	p, err1 := strconv.ParseInt(raw[0], 10, 64)
	g, err2 := strconv.ParseInt(raw[1], 10, 64)
	if err1 != nil || err2 != nil {
		return screenFigures{}, fmt.Errorf("the page's figures %q are not numbers", raw)
	}
	return screenFigures{p, g}, nil
}

// The big screen in a real browser, on the whole platform: headless
// Chromium opens the URL the demo prints, buyers buy and pay in rounds
// through the gateway and the channel simulator, the page's paid orders
// and GMV move after each round (pushed, the page is never reloaded),
// and at the end they equal what Postgres holds: the paid orders and
// what they paid, the audit's figures. A page opened with a token the
// stream refuses says so.
func TestBigScreenFollowsTheSale(t *testing.T) {
	p := mustUp(t)
	c := client{tb: t, base: p.GatewayURL}
	admin := c.MustToken("1", "admin")
	const rounds, perRound = 3, 4
	act := mustSale(t, c, admin, rounds*perRound)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url, err := p.ScreenURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The printed address reads the screen only: its token is no admin's
	// and no buyer's.
	_, token, _ := strings.Cut(url, "#token=")
	c.MustDo(http.MethodPost, "/admin/v1/products", token, nil, `{}`, http.StatusForbidden, nil)
	c.MustDo(http.MethodGet, "/api/v1/orders", token, nil, "", http.StatusForbidden, nil)

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(mustChromium(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate(url),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.startsWith("live")`, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the page never went live: %v", err)
	}
	// waitFor polls the page until ok holds and returns its figures.
	waitFor := func(what string, ok func(screenFigures) bool) screenFigures {
		t.Helper()
		var last screenFigures
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			f, err := readScreen(browser)
			if err != nil {
				t.Fatal(err)
			}
			if last = f; ok(f) {
				return f
			}
		}
		t.Fatalf("the page never showed %s: it shows %+v", what, last)
		return last
	}

	seen := []screenFigures{waitFor("its first figures", func(screenFigures) bool { return true })}
	for round := range rounds {
		for i := range perRound {
			user := strconv.Itoa(1000 + round*perRound + i)
			buyer := c.MustToken(user, "user")
			var placed api.SeckillAccepted
			c.MustDo(http.MethodPost, "/api/v1/seckill/orders", buyer, map[string]string{"Idempotency-Key": "screen-" + user},
				fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act), http.StatusAccepted, &placed)
			mustPay(t, c, buyer, placed.OrderID)
		}
		before := seen[len(seen)-1]
		seen = append(seen, waitFor(fmt.Sprintf("round %d's payments", round+1), func(f screenFigures) bool {
			return f.paid >= before.paid+perRound && f.gmv > before.gmv
		}))
	}

	pool, err := postgres.Dial(ctx, stack.PostgresURL(local.DBOrders), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var books screenFigures
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(payable - refunded), 0) FROM orders
		WHERE status IN ('PAID', 'PARTIALLY_REFUNDED', 'REFUNDED')`).Scan(&books.paid, &books.gmv); err != nil {
		t.Fatal(err)
	}
	if books.paid < rounds*perRound {
		t.Fatalf("Postgres holds %d paid orders, want at least the %d paid here", books.paid, rounds*perRound)
	}
	final := waitFor(fmt.Sprintf("the books' %+v", books), func(f screenFigures) bool { return f == books })
	t.Logf("the page showed %+v, ending at %+v = Postgres", seen, final)
	// A page whose token the stream refuses says so and stops asking.
	refused, cancelRefused := chromedp.NewContext(browser)
	defer cancelRefused()
	if err := chromedp.Do(refused, chromedp.Navigate(p.GatewayURL+"/screen#token="+c.MustToken("1001", "user")),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.startsWith("token refused (403")`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the page with a buyer's token never said it was refused: %v", err)
	}
}

// mustPay pays the buyer's order once it is stored: the platform opens a
// payment, the buyer confirms it at the channel simulator's pay URL, and
// the channel's signed callback marks the order paid.
func mustPay(t *testing.T, c client, buyer, orderID string) {
	t.Helper()
	mustPayWith(t, c, buyer, orderID, nil)
}

// mustPayWith is mustPay with header on each request, the wallet's
// included (a pressure test's mark), and returns the payment opened.
func mustPayWith(t *testing.T, c client, buyer, orderID string, header map[string]string) api.Payment {
	t.Helper()
	var o api.Order
	for deadline := time.Now().Add(30 * time.Second); o.Status != "PENDING_PAYMENT"; time.Sleep(50 * time.Millisecond) {
		c.MustDo(http.MethodGet, "/api/v1/orders/"+orderID, buyer, header, "", http.StatusOK, &o)
		if time.Now().After(deadline) {
			t.Fatalf("order %s is %s, never PENDING_PAYMENT", orderID, o.Status)
		}
	}
	var pay api.Payment
	c.MustDo(http.MethodPost, "/api/v1/orders/"+orderID+"/pay", buyer, header, `{}`, http.StatusOK, &pay)
	if pay.Status == "PAYING" {
		wallet := client{tb: t, base: ""}
		if !strings.HasPrefix(pay.PayURL, "http") {
			t.Fatalf("payment %+v has no pay URL", pay)
		}
		wallet.MustDo(http.MethodPost, pay.PayURL, "", header, "", http.StatusOK, nil)
	}
	return pay
}
