package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/gateway"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// MustEvents writes order events to topic, keyed by order id.
func MustEvents(tb testing.TB, topic string, events ...*orderv1.OrderEvent) {
	tb.Helper()
	w := pkafka.NewWriter(stack.KafkaBrokers, topic, pkafka.ByKey)
	defer w.Close()
	msgs := make([]kafkago.Message, len(events))
	for i, e := range events {
		b, err := proto.Marshal(e)
		if err != nil {
			tb.Fatal(err)
		}
		msgs[i] = kafkago.Message{Key: []byte(strconv.FormatInt(e.GetOrderId(), 10)), Value: b}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		tb.Fatal(err)
	}
}

// The screen's stream needs an admin or a screen token, its page none,
// and ends once its token expires; the stream adds up the events from
// the topic's first offset, dropping repeats (the relay publishes at
// least once), and carries the payment service's outcomes per channel.
func TestScreenSumsTheOrderEventsOnce(t *testing.T) {
	topic := mustEventsTopic(t, 2)
	at := timestamppb.Now()
	stored := func(id int64) *orderv1.OrderEvent {
		return &orderv1.OrderEvent{OrderId: id, Type: orderv1.OrderEvent_TYPE_STORED, Kind: "SECKILL", ActivityId: 7, Amount: 99_00, At: at}
	}
	paid := func(id int64, channel string) *orderv1.OrderEvent {
		return &orderv1.OrderEvent{OrderId: id, Type: orderv1.OrderEvent_TYPE_PAID, Kind: "SECKILL", ActivityId: 7, Amount: 99_00, Channel: channel, At: at}
	}
	// Written before the screen starts: it must read them from the start.
	MustEvents(t, topic, stored(1), stored(2), stored(3), paid(1, "alipay"), paid(2, "wechat"))
	// A pressure-test order's events on the real topic (a producer's
	// bug) are no real sale's: the screen skips them.
	w := pkafka.NewWriter(stack.KafkaBrokers, topic, pkafka.ByKey)
	for _, e := range []*orderv1.OrderEvent{stored(4), paid(4, "alipay")} {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMessages(context.Background(), kafkago.Message{Key: []byte("4"), Value: b,
			Headers: []kafkago.Header{{Key: shadow.KafkaHeader, Value: []byte("1")}}}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE payment_payments_total counter\n"+
			`payment_payments_total{channel="alipay",status="succeeded"} 1`+"\n"+
			`payment_payments_total{channel="alipay",status="failed"} 3`+"\n"+
			`payment_payments_total{channel="wechat",status="succeeded"} 1`+"\n")
	}))
	defer payments.Close()
	opts := devMode()
	opts.Screen = &gateway.ScreenOptions{Brokers: stack.KafkaBrokers, Topic: topic, PaymentMetrics: []string{payments.URL}}
	tg := MustGateway(t, gatewayConfig{opts: opts})
	runScreen(t, tg)

	page := tg.do(t, request{method: http.MethodGet, path: gateway.ScreenPath})
	if page.status != http.StatusOK || !strings.Contains(string(page.body), `id="gmv"`) {
		t.Fatalf("GET %s = %d, want the page", gateway.ScreenPath, page.status)
	}
	for _, tt := range []struct {
		token string
		code  string
	}{{"", "UNAUTHENTICATED"}, {tg.token(t, 5, "user"), "FORBIDDEN"}} {
		if got := tg.do(t, request{method: http.MethodGet, path: gateway.ScreenEventsPath, token: tt.token}).code(t); got != tt.code {
			t.Errorf("stream with token %q: %s, want %s", tt.token, got, tt.code)
		}
	}

	// A display's token, minted by an admin, reads the same figures.
	onDisplay := MustStream(t, tg, mustScreenToken(t, tg, tg.token(t, 1, "admin")))
	snaps := MustStream(t, tg, tg.token(t, 1, "admin"))
	waitOn := func(snaps <-chan gateway.ScreenSnapshot, what string, ok func(gateway.ScreenSnapshot) bool) gateway.ScreenSnapshot {
		t.Helper()
		for s := range snaps {
			if ok(s) {
				return s
			}
		}
		t.Fatalf("the stream ended before %s", what)
		return gateway.ScreenSnapshot{}
	}
	wait := func(what string, ok func(gateway.ScreenSnapshot) bool) gateway.ScreenSnapshot {
		t.Helper()
		return waitOn(snaps, what, ok)
	}
	firstEvents := func(s gateway.ScreenSnapshot) bool { return s.PaidOrders == 2 && s.StoredOrders == 3 }
	if got := waitOn(onDisplay, "the first events on the display's stream", firstEvents); got.GMV != 2*99_00 {
		t.Errorf("the display's snapshot = %+v, want GMV 19800", got)
	}
	first := wait("the first events", firstEvents)
	if first.GMV != 2*99_00 || first.Degrade != "normal" || !slices.Contains(first.Stale, "stock") {
		t.Errorf("snapshot = %+v, want GMV 19800, level normal, stock stale (no product service)", first)
	}

	// A repeat of a paid event, a refund of part of an order and an
	// expiry, while the screen runs.
	MustEvents(t, topic, paid(1, "alipay"),
		&orderv1.OrderEvent{OrderId: 2, Type: orderv1.OrderEvent_TYPE_REFUNDED, Kind: "SECKILL", ActivityId: 7, Amount: 40_00, Ref: 9, At: at},
		&orderv1.OrderEvent{OrderId: 3, Type: orderv1.OrderEvent_TYPE_EXPIRED, Kind: "SECKILL", ActivityId: 7, At: at})
	last := wait("the later events", func(s gateway.ScreenSnapshot) bool { return s.Expired == 1 && s.Refunded == 40_00 })
	if last.PaidOrders != 2 || last.GMV != 2*99_00-40_00 || last.Duplicates != 1 || last.Events != 8 {
		t.Errorf("snapshot = %+v, want 2 paid, GMV 15800, 1 repeat of 8 events", last)
	}
	var channels []string
	for _, c := range last.Channels {
		channels = append(channels, fmt.Sprintf("%s %d %d %d/%d", c.Channel, c.PaidOrders, c.Paid, deref(c.Succeeded), deref(c.Failed)))
	}
	if want := []string{"alipay 1 9900 1/3", "wechat 1 9900 1/0"}; !slices.Equal(channels, want) {
		t.Errorf("channels = %q, want %q", channels, want)
	}
	if len(last.Sales) != 1 || last.Sales[0].ActivityID != "7" || last.Sales[0].Stored != 3 || last.Sales[0].Paid != 2 {
		t.Errorf("sales = %+v, want activity 7 with 3 stored, 2 paid", last.Sales)
	}

	// A screen token is retired by its expiry: the display's stream,
	// open since, ends at the next snapshot after it.
	tg.clock.Advance(gateway.DefaultScreenTTL)
	mustEnd(t, onDisplay, "the display's stream outlived its token")
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// mustEventsTopic creates a topic of order events of its own for the test.
func mustEventsTopic(t *testing.T, partitions int) string {
	t.Helper()
	topic := fmt.Sprintf("events-%s-%d", t.Name(), time.Now().UnixNano())
	if err := pkafka.EnsureTopics(context.Background(), stack.KafkaBrokers, partitions, stack.KafkaDurability, topic); err != nil {
		t.Fatal(err)
	}
	return topic
}

// runScreen runs tg's big screen until the test ends.
func runScreen(t *testing.T, tg *testGateway) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.gw.RunScreen(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// mustEnd waits up to 30 s for stream to end, failing with why.
func mustEnd(t *testing.T, stream <-chan gateway.ScreenSnapshot, why string) {
	t.Helper()
	ended := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-stream:
		case <-ended:
			t.Fatal(why)
		}
	}
}

// MustStream opens the screen's stream with token and returns its
// snapshots as they come; the channel closes when the stream ends.
func MustStream(tb testing.TB, tg *testGateway, token string) <-chan gateway.ScreenSnapshot {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url+gateway.ScreenEventsPath, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan gateway.ScreenSnapshot)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var s gateway.ScreenSnapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				tb.Errorf("frame %q: %v", data, err)
				return
			}
			select {
			case out <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// mustScreenToken mints a screen token as admin, checking the answer: 201,
// a day's life, and the page's path with the token in its fragment.
func mustScreenToken(t *testing.T, tg *testGateway, admin string) string {
	t.Helper()
	got := tg.do(t, request{method: http.MethodPost, path: gateway.ScreenTokensPath, token: admin})
	if got.status != http.StatusCreated {
		t.Fatalf("POST %s = %d %s, want 201", gateway.ScreenTokensPath, got.status, got.body)
	}
	var issued struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		Path      string `json:"path"`
	}
	got.decode(t, &issued)
	expires := tg.clock.Now().Add(gateway.DefaultScreenTTL)
	if issued.Token == "" || issued.Path != gateway.ScreenPath+"#token="+issued.Token || issued.ExpiresAt != expires.UTC().Format(time.RFC3339) {
		t.Fatalf("issued %+v, want a token, its path and expiry %s", issued, expires)
	}
	// Its claims: the screen role, that expiry, and a subject that is no
	// user id, which a gateway older than the role refuses (it took any
	// role on a buyer's route).
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(issued.Token, &claims); err != nil {
		t.Fatal(err)
	}
	sub, _ := claims["sub"].(string)
	if exp, _ := claims["exp"].(float64); claims["role"] != "screen" || int64(exp) != expires.Unix() || !strings.HasPrefix(sub, "screen-") {
		t.Fatalf("claims %v, want role screen, exp %d and a subject screen-<admin>", claims, expires.Unix())
	}
	return issued.Token
}

// A screen token reads the big screen and nothing else: a display on a
// wall holds no token that buys, reads a buyer's orders, changes the
// catalogue or mints tokens. Only an admin mints one, within its TTL's
// bounds, and a role the gateway does not know is taken nowhere.
func TestScreenTokenReadsTheScreenOnly(t *testing.T) {
	opts := devMode()
	opts.Screen = &gateway.ScreenOptions{Brokers: stack.KafkaBrokers, Topic: "unread"}
	tg := MustGateway(t, gatewayConfig{opts: opts})
	admin := tg.token(t, 1, "admin")
	for _, tt := range []struct {
		name, token, body string
		want              int
		code              string
	}{
		{"a buyer", tg.token(t, 5, "user"), ``, http.StatusForbidden, "FORBIDDEN"},
		{"no life", admin, `{"ttl_seconds": 0}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"past the longest", admin, fmt.Sprintf(`{"ttl_seconds": %d}`, int64(gateway.MaxScreenTTL/time.Second)+1), http.StatusBadRequest, "INVALID_ARGUMENT"},
	} {
		if got := tg.do(t, request{method: http.MethodPost, path: gateway.ScreenTokensPath, token: tt.token, body: tt.body}); got.status != tt.want || got.code(t) != tt.code {
			t.Errorf("minting, %s: %d %s, want %d %s", tt.name, got.status, got.body, tt.want, tt.code)
		}
	}
	screen := mustScreenToken(t, tg, admin)
	for _, r := range []request{
		{method: http.MethodGet, path: "/api/v1/orders", token: screen},
		{method: http.MethodGet, path: "/api/v1/coupons", token: screen},
		{method: http.MethodPost, path: "/admin/v1/products", token: screen, body: `{}`},
		{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: screen},
		{method: http.MethodPost, path: gateway.ScreenTokensPath, token: screen},
		{method: http.MethodGet, path: "/api/v1/orders", token: tg.token(t, 5, "root")},
		{method: http.MethodGet, path: gateway.ScreenEventsPath, token: tg.token(t, 5, "root")},
	} {
		if got := tg.do(t, r); got.status != http.StatusForbidden || got.code(t) != "FORBIDDEN" {
			t.Errorf("%s %s: %d %s, want 403 FORBIDDEN", r.method, r.path, got.status, got.body)
		}
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

// The access log names the caller's role beside its id, and does so for a
// caller whose role the route refuses: a display's requests are told from
// its admin's, and a screen token tried on an order list is named in its
// line (sampled as 4xx lines are).
func TestAccessLogNamesTheCallersRole(t *testing.T) {
	logs, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	opts := devMode()
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	opts.Screen = &gateway.ScreenOptions{Brokers: stack.KafkaBrokers, Topic: "unread"}
	tg := MustGateway(t, gatewayConfig{opts: opts})
	admin := tg.token(t, 1, "admin")
	screen := mustScreenToken(t, tg, admin)
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders", token: screen}); got.status != http.StatusForbidden {
		t.Fatalf("a screen token on the order list: %d %s, want 403", got.status, got.body)
	}
	type line struct {
		Msg    string `json:"msg"`
		Route  string `json:"route"`
		Status int    `json:"status"`
		UserID int64  `json:"user_id"`
		Role   string `json:"role"`
	}
	written, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	var got []line
	for l := range strings.Lines(string(written)) {
		var ln line
		if err := json.Unmarshal([]byte(l), &ln); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if ln.Msg == "http request" {
			got = append(got, ln)
		}
	}
	want := []line{
		{"http request", "POST " + gateway.ScreenTokensPath, http.StatusCreated, tg.user(1), "admin"},
		{"http request", "GET /api/v1/orders", http.StatusForbidden, tg.user(1), "screen"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("access log\n got %+v\nwant %+v", got, want)
	}
}

// An operator retires the screen tokens issued up to a time (a display's
// address leaked) without rotating the JWT secret: such a token is refused
// 401 on the stream and a stream it opened ends at the next snapshot; no
// token is minted while it would be born retired; a token minted since,
// and an admin's, still read the screen. A gateway started with the time
// (the environment's) refuses the token too.
func TestRetiredScreenTokensAreRefused(t *testing.T) {
	topic := mustEventsTopic(t, 1)
	opts := devMode()
	opts.Screen = &gateway.ScreenOptions{Brokers: stack.KafkaBrokers, Topic: topic}
	tg := MustGateway(t, gatewayConfig{opts: opts})
	runScreen(t, tg)
	admin := tg.token(t, 1, "admin")
	leaked := mustScreenToken(t, tg, admin)
	onWall := MustStream(t, tg, leaked)
	if _, ok := <-onWall; !ok {
		t.Fatal("the stream ended before its first snapshot")
	}

	tg.clock.Advance(time.Minute)
	s := tg.gw.Settings()
	s.ScreenRetiredUntil = tg.clock.Now()
	tg.gw.Apply(s)
	mustEnd(t, onWall, "the stream outlived its retired token")
	if got := tg.do(t, request{method: http.MethodGet, path: gateway.ScreenEventsPath, token: leaked}); got.status != http.StatusUnauthorized || got.code(t) != "UNAUTHENTICATED" {
		t.Errorf("a retired token on the stream: %d %s, want 401 UNAUTHENTICATED", got.status, got.body)
	}
	if got := tg.do(t, request{method: http.MethodPost, path: gateway.ScreenTokensPath, token: admin}); got.status != http.StatusConflict || got.code(t) != "CONFLICT" {
		t.Errorf("minting in the retired second: %d %s, want 409 CONFLICT", got.status, got.body)
	}
	tg.clock.Advance(time.Second)
	for who, token := range map[string]string{"a token minted since": mustScreenToken(t, tg, admin), "an admin": admin} {
		if _, ok := <-MustStream(t, tg, token); !ok {
			t.Errorf("%s: the stream ended before its first snapshot", who)
		}
	}

	opts.ScreenRetiredUntil = s.ScreenRetiredUntil
	started := MustGateway(t, gatewayConfig{opts: opts})
	// On a buyer's route, not the stream: a token still live there is
	// 403 for its role, where a stream would hold the request open.
	if got := started.do(t, request{method: http.MethodGet, path: "/api/v1/orders", token: leaked}); got.status != http.StatusUnauthorized || got.code(t) != "UNAUTHENTICATED" {
		t.Errorf("a retired token on a gateway started with the time: %d %s, want 401 UNAUTHENTICATED", got.status, got.body)
	}
}
