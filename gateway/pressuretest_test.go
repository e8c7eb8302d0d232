package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/shadow"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// markRecorder is a product service that records whether each call
// arrived marked as pressure-test traffic.
type markRecorder struct {
	productv1.UnimplementedProductServiceServer
	mu     sync.Mutex
	marked []bool
}

func (m *markRecorder) GetProduct(ctx context.Context, in *productv1.GetProductRequest) (*productv1.Product, error) {
	m.mu.Lock()
	m.marked = append(m.marked, shadow.Is(ctx))
	m.mu.Unlock()
	return &productv1.Product{SkuId: in.GetSkuId(), Title: "t", Price: 1}, nil
}

// ListActivities answers one activity titled after the call's traffic:
// the pressure test's catalogue for a marked call, the real one else.
func (m *markRecorder) ListActivities(ctx context.Context, _ *productv1.ListActivitiesRequest) (*productv1.ListActivitiesResponse, error) {
	title := "real sale"
	if shadow.Is(ctx) {
		title = "pressure-test sale"
	}
	return &productv1.ListActivitiesResponse{Activities: []*productv1.Activity{{ActivityId: 1, SkuId: 1, Title: title}}}, nil
}

func (m *markRecorder) calls() []bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]bool(nil), m.marked...)
}

// serveMarkRecorder serves a markRecorder on a platform gRPC server over TCP.
func serveMarkRecorder(t *testing.T) (*markRecorder, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &markRecorder{}
	srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
	productv1.RegisterProductServiceServer(srv, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, lis.Addr().String()
}

// An admin gets a load-test token; a request carrying it in
// X-Pressure-Test reaches the product service marked, over real HTTP and
// gRPC, and is counted apart from real requests. The header with anything
// else (a made-up value, a buyer's or an admin's bearer token, a
// load-test token signed with another key or expired, the header twice)
// is refused with FORBIDDEN before any downstream call; the load-test
// token is no bearer token; only admins get one.
func TestPressureTestHeaderMarksOrRefuses(t *testing.T) {
	rec, addr := serveMarkRecorder(t)
	tg := MustGateway(t, gatewayConfig{productAddr: addr})
	admin, buyer := tg.token(t, 1, "admin"), tg.token(t, 2, "user")
	product := "/api/v1/products/42"

	if got := tg.do(t, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: buyer}); got.status != http.StatusForbidden {
		t.Fatalf("a buyer asked for a load-test token: %d %s", got.status, got.body)
	}
	var issued struct {
		Token, Header string
		ExpiresAt     string `json:"expires_at"`
	}
	tg.do(t, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: admin, body: `{"ttl_seconds": 600}`}).decode(t, &issued)
	if issued.Token == "" || issued.Header != shadow.Header {
		t.Fatalf("issued %+v", issued)
	}
	if exp, err := time.Parse(time.RFC3339, issued.ExpiresAt); err != nil || exp.Sub(tg.clock.Now()) > 601*time.Second {
		t.Fatalf("expires_at %q (%v), want in 10 minutes", issued.ExpiresAt, err)
	}

	marked := tg.do(t, request{method: http.MethodGet, path: product, header: map[string]string{shadow.Header: issued.Token}})
	real := tg.do(t, request{method: http.MethodGet, path: product})
	if marked.status != http.StatusOK || real.status != http.StatusOK {
		t.Fatalf("marked %d %s, real %d %s", marked.status, marked.body, real.status, real.body)
	}
	if got := fmt.Sprint(rec.calls()); got != "[true false]" {
		t.Fatalf("the product service saw marks %s, want [true false]", got)
	}

	otherKey := signToken(t, jwt.SigningMethodHS256, []byte("another key, another key, another"), jwt.MapClaims{
		"sub": jsonID(tg.user(1)), "role": "loadtest", "exp": tg.clock.Now().Add(time.Hour).Unix()})
	expired := signToken(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": jsonID(tg.user(1)), "role": "loadtest", "exp": tg.clock.Now().Add(-time.Minute).Unix()})
	for name, value := range map[string]string{
		"a made-up value": "1", "a buyer's token": buyer, "an admin's token": admin,
		"another key": otherKey, "expired": expired, "empty": "",
	} {
		hr, _ := http.NewRequest(http.MethodGet, tg.url+product, nil)
		hr.Header[shadow.Header] = []string{value}
		if name == "empty" {
			hr.Header[shadow.Header] = []string{issued.Token, issued.Token} // twice
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s in %s: status %d, want 403", name, shadow.Header, resp.StatusCode)
		}
	}
	got := tg.do(t, request{method: http.MethodGet, path: product, header: map[string]string{shadow.Header: "forged"}})
	if got.code(t) != "FORBIDDEN" || !strings.Contains(string(got.body), "load-test token") {
		t.Fatalf("a forged header: %d %s", got.status, got.body)
	}
	if n := len(rec.calls()); n != 2 {
		t.Fatalf("refused requests reached the product service: %d calls, want 2", n)
	}
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders", token: issued.Token}); got.code(t) != "UNAUTHENTICATED" {
		t.Fatalf("a load-test token as a bearer token: %d %s", got.status, got.body)
	}

	metrics := string(tg.do(t, request{method: http.MethodGet, path: "/metrics"}).body)
	for _, want := range []string{
		`gateway_http_shadow_requests_total{route="GET /api/v1/products/{sku_id}",status="200",traffic="shadow"} 1`,
		`gateway_http_shadow_requests_total{route="GET /api/v1/products/{sku_id}",status="403",traffic="shadow"} 0`,
		`gateway_http_requests_total{route="GET /api/v1/products/{sku_id}",status="200"} 1`,
	} {
		if strings.HasSuffix(want, " 0") {
			if strings.Contains(metrics, strings.TrimSuffix(want, " 0")) {
				t.Errorf("/metrics counts refused headers as pressure-test traffic: %q", want)
			}
			continue
		}
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A pressure test pauses while the platform is degraded: at any level
// above normal a marked request on a buyer's route is refused with 429
// OVERLOADED before any service sees it, real requests are served, an
// admin route still takes the mark, and back at normal the test resumes.
func TestPressureTestPausesWhileDegraded(t *testing.T) {
	rec, addr := serveMarkRecorder(t)
	tg := MustGateway(t, gatewayConfig{productAddr: addr})
	admin := tg.token(t, 1, "admin")
	loadTest := tg.loadTestToken(t, admin)
	product := "/api/v1/products/42"
	marked := func() answer {
		return tg.do(t, request{method: http.MethodGet, path: product, header: map[string]string{shadow.Header: loadTest}})
	}
	setLevel := func(l gateway.Level) {
		s := tg.gw.Settings()
		s.Degrade = l
		tg.gw.Apply(s)
	}

	setLevel(gateway.LevelProtect)
	got := marked()
	mustRefusedOverloaded(t, got)
	if ra := got.header.Get("Retry-After"); ra != "5" || !strings.Contains(string(got.body), "paused") {
		t.Errorf("paused: Retry-After %q, body %s", ra, got.body)
	}
	if real := tg.do(t, request{method: http.MethodGet, path: product}); real.status != http.StatusOK {
		t.Errorf("a real request while degraded: %d %s", real.status, real.body)
	}
	if got := tg.do(t, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: admin,
		header: map[string]string{shadow.Header: loadTest}}); got.status != http.StatusCreated && got.status != http.StatusOK {
		t.Errorf("a marked admin request while degraded: %d %s, want it served", got.status, got.body)
	}
	setLevel(gateway.LevelNormal)
	if got := marked(); got.status != http.StatusOK {
		t.Errorf("marked, back at normal: %d %s", got.status, got.body)
	}
	if got := fmt.Sprint(rec.calls()); got != "[false true]" {
		t.Errorf("the product service saw marks %s, want [false true] (the paused request never reached it)", got)
	}
	if got := tg.metric(t, `gateway_admission_refused_total{reason="pressure_test",route="GET /api/v1/products/{sku_id}"}`); got != 1 {
		t.Errorf("refusals counted: %v, want 1", got)
	}
}

// Pressure-test traffic leaves nothing behind that real buyers get: the
// activity list a degraded gateway answers from is the last real one,
// not the pressure test's; a marked catalogue answer is kept by no shared
// cache (Vary on the mark, no-store), while a real one stays public; and
// the degrade controller's p99 reads real buys only, so a slow pressure
// test cannot switch routes off for the sale.
func TestPressureTestLeavesNothingForRealBuyers(t *testing.T) {
	_, addr := serveMarkRecorder(t)
	tg := MustGateway(t, gatewayConfig{productAddr: addr})
	admin := tg.token(t, 1, "admin")
	loadTest := tg.loadTestToken(t, admin)
	mark := map[string]string{shadow.Header: loadTest}
	list := "/api/v1/activities"

	real := tg.do(t, request{method: http.MethodGet, path: list})
	marked := tg.do(t, request{method: http.MethodGet, path: list, header: mark})
	if !strings.Contains(string(real.body), "real sale") || !strings.Contains(string(marked.body), "pressure-test sale") {
		t.Fatalf("lists: real %d %s, marked %d %s", real.status, real.body, marked.status, marked.body)
	}
	if cc, vary := real.header.Get("Cache-Control"), real.header.Get("Vary"); cc != "public, max-age=1" || vary != shadow.Header {
		t.Errorf("real list: Cache-Control %q, Vary %q; want public, max-age=1 and Vary %s", cc, vary, shadow.Header)
	}
	if cc, vary := marked.header.Get("Cache-Control"), marked.header.Get("Vary"); cc != "no-store" || vary != shadow.Header {
		t.Errorf("marked list: Cache-Control %q, Vary %q; want no-store and Vary %s", cc, vary, shadow.Header)
	}

	s := tg.gw.Settings()
	s.Degrade = gateway.LevelProtect
	tg.gw.Apply(s)
	if got := tg.do(t, request{method: http.MethodGet, path: list}); got.status != http.StatusOK || !strings.Contains(string(got.body), "real sale") {
		t.Fatalf("a real list while degraded: %d %s, want the last real list", got.status, got.body)
	}
	s.Degrade = gateway.LevelNormal
	tg.gw.Apply(s)

	buyer := tg.token(t, 2, "user")
	before := gateway.DegradeAnswers(tg.gw)
	buy := seckill(buyer, "k", `{}`)
	buy.header[shadow.Header] = loadTest
	if got := tg.do(t, buy); got.status != http.StatusBadRequest {
		t.Fatalf("a marked buy without a body: %d %s, want 400", got.status, got.body)
	}
	if got := gateway.DegradeAnswers(tg.gw) - before; got != 0 {
		t.Errorf("the degrade controller counted %d marked buys, want 0", got)
	}
	if got := tg.do(t, seckill(buyer, "k", `{}`)); got.status != http.StatusBadRequest {
		t.Fatalf("a real buy without a body: %d %s, want 400", got.status, got.body)
	}
	if got := gateway.DegradeAnswers(tg.gw) - before; got != 1 {
		t.Errorf("the degrade controller counted %d real buys, want 1", got)
	}
}

// TestLoadTestTokenBodyMayBeLeftOut: the body of a load-test token's
// request is optional however it is left out (no body, Content-Length 0,
// or a chunked body of no bytes, as some clients send), and a body that
// is there is still decoded strictly.
func TestLoadTestTokenBodyMayBeLeftOut(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	admin := tg.token(t, 1, "admin")
	if got := tg.do(t, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: admin}); got.status != http.StatusCreated {
		t.Errorf("no body: %d %s, want 201", got.status, got.body)
	}
	if got := tg.do(t, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: admin, body: `{"ttl":1}`}); got.status != http.StatusBadRequest {
		t.Errorf("an unknown field: %d %s, want 400", got.status, got.body)
	}
	// Go's client never sends an empty chunked body: written by hand.
	conn, err := net.Dial("tcp", strings.TrimPrefix(tg.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /admin/v1/load-test-tokens HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer %s\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", admin)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"token"`) {
		t.Errorf("an empty chunked body: %d %s, want 201 with a token", resp.StatusCode, body)
	}
}
