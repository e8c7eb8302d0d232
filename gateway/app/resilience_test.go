package app_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// fakeProduct is a product service whose GetProduct the test controls:
// it fails with UNAVAILABLE while failing is set, and otherwise waits for
// release (when set) before answering.
type fakeProduct struct {
	productv1.UnimplementedProductServiceServer
	calls   atomic.Int64
	failing atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (f *fakeProduct) GetProduct(ctx context.Context, req *productv1.GetProductRequest) (*productv1.Product, error) {
	f.calls.Add(1)
	if f.failing.Load() {
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	if f.release != nil {
		f.started <- struct{}{}
		<-f.release
	}
	return &productv1.Product{SkuId: req.GetSkuId(), Title: "slow kettle", Price: 100}, nil
}

// MustFakeProduct serves f on a free port and returns its address.
func MustFakeProduct(tb testing.TB, f *fakeProduct) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer()
	productv1.RegisterProductServiceServer(srv, f)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// A failing product service opens its breaker: after BreakerMinRequests
// failures the gateway answers 503 without calling it, the state shows
// on /metrics, and the order breaker stays closed.
func TestBreakerCutsOffAFailingDownstream(t *testing.T) {
	f := &fakeProduct{}
	f.failing.Store(true)
	base := MustGateway(t, app.Config{JWTSecret: secret, ProductAddr: MustFakeProduct(t, f), OrderAddr: "127.0.0.1:1",
		BreakerMinRequests: 3, BreakerOpenFor: time.Hour})
	for i := range 10 {
		// Distinct ids: the gateway's cache never holds a failure, but
		// this keeps every request a real miss.
		status, body := call(t, http.MethodGet, base+"/api/v1/products/"+strconv.Itoa(i+1), "", "")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "UNAVAILABLE") {
			t.Fatalf("request %d: %d %s, want 503 UNAVAILABLE", i, status, body)
		}
	}
	if got := f.calls.Load(); got != 3 {
		t.Errorf("product called %d times, want 3 (then the breaker opened)", got)
	}
	_, metrics := call(t, http.MethodGet, base+"/metrics", "", "")
	for _, want := range []string{
		`gateway_circuit_breaker_state{downstream="product"} 2`,
		`gateway_circuit_breaker_state{downstream="order"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Stopping the gateway lets a request in flight finish with its answer,
// while new connections are refused.
func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	f := &fakeProduct{started: make(chan struct{}), release: make(chan struct{})}
	lis := servicetest.MustListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{JWTSecret: secret, ProductAddr: MustFakeProduct(t, f), OrderAddr: "127.0.0.1:1",
			RedisAddr: stack.RedisAddr, HTTPListener: lis, Grace: time.Minute})
	}()
	base := "http://" + lis.Addr().String()

	type result struct {
		status int
		body   string
	}
	answered := make(chan result, 1)
	go func() {
		s, b := call(t, http.MethodGet, base+"/api/v1/products/42", "", "")
		answered <- result{s, b}
	}()
	<-f.started // the request is inside the gateway, waiting on product
	cancel()
	// Shutdown closes the listener first; wait until it has.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if s, _ := call(t, http.MethodGet, base+"/healthz", "", ""); s == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway still accepts connections after the stop")
		}
	}
	close(f.release)
	got := <-answered
	if got.status != http.StatusOK || !strings.Contains(got.body, "slow kettle") {
		t.Errorf("request in flight at the stop: %d %s, want 200 with the product", got.status, got.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
