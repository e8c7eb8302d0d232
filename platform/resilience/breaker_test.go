package resilience

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
)

// downstream is a real gRPC server whose answers the test chooses.
type downstream struct {
	answer atomic.Value // codes.Code
	// err, when set, is answered instead of answer's code.
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func mustStartDownstream(t *testing.T) (*downstream, string) {
	t.Helper()
	d := &downstream{}
	d.answer.Store(codes.OK)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		d.calls.Add(1)
		if err := d.err.Load(); err != nil {
			return nil, *err
		}
		if c := d.answer.Load().(codes.Code); c != codes.OK {
			return nil, status.Error(c, "chosen by the test")
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return d, lis.Addr().String()
}

// transitions records a breaker's state changes.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) record(_ string, from, to gobreaker.State) {
	tr.mu.Lock()
	tr.got = append(tr.got, from.String()+"->"+to.String())
	tr.mu.Unlock()
}

func (tr *transitions) list() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.got, " ")
}

func TestBreakerOpensOnTroubleRefusesFastAndRecovers(t *testing.T) {
	d, addr := mustStartDownstream(t)
	var tr transitions
	cc, err := rpc.Dial(addr, grpc.WithChainUnaryInterceptor(Breaker(BreakerConfig{
		Name: "product", MinRequests: 13, FailurePercent: 20, OpenFor: 50 * time.Millisecond, OnStateChange: tr.record,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}

	// Domain answers never open it.
	d.answer.Store(codes.NotFound)
	for range 10 {
		if got := status.Code(call()); got != codes.NotFound {
			t.Fatalf("domain answer: code %v, want NotFound", got)
		}
	}
	if got := d.calls.Load(); got != 10 {
		t.Fatalf("calls reaching the server = %d, want 10", got)
	}

	// Ten successes and three failures make 13 calls, 23% failed: that
	// opens it, and the next call is refused without reaching the server.
	d.answer.Store(codes.Unavailable)
	for range 3 {
		if got := status.Code(call()); got != codes.Unavailable {
			t.Fatalf("failing call: code %v, want Unavailable", got)
		}
	}
	reached := d.calls.Load()
	err = call()
	if got := status.Code(err); got != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker") {
		t.Fatalf("call on an open breaker = %v, want UNAVAILABLE from the breaker", err)
	}
	if got := d.calls.Load(); got != reached {
		t.Errorf("an open breaker let a call through: %d calls, want %d", got, reached)
	}

	// Once the downstream is back, a probe after OpenFor closes it.
	d.answer.Store(codes.OK)
	deadline := time.Now().Add(10 * time.Second)
	for call() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never closed again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := tr.list(), "closed->open open->half-open half-open->closed"; got != want {
		t.Errorf("transitions = %q, want %q", got, want)
	}
}

func TestBreakerIgnoresTheCallersCancellation(t *testing.T) {
	d, addr := mustStartDownstream(t)
	var tr transitions
	cc, err := rpc.Dial(addr, grpc.WithChainUnaryInterceptor(Breaker(BreakerConfig{Name: "order", MinRequests: 1, FailurePercent: 1, OnStateChange: tr.record})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	d.answer.Store(codes.Canceled)
	for range 5 {
		_, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if got := status.Code(err); got != codes.Canceled {
			t.Fatalf("code %v, want Canceled", got)
		}
	}
	if got := tr.list(); got != "" {
		t.Errorf("transitions = %q, want none", got)
	}
}

// Failures below the rate keep the breaker closed: a few timeouts in a
// busy spike do not cut a healthy downstream off.
func TestBreakerToleratesFailuresBelowTheRate(t *testing.T) {
	d, addr := mustStartDownstream(t)
	var tr transitions
	cc, err := rpc.Dial(addr, grpc.WithChainUnaryInterceptor(Breaker(BreakerConfig{Name: "order", MinRequests: 10, FailurePercent: 50, OnStateChange: tr.record})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	for i := range 40 {
		// Three failures in a row, then seven successes, again and
		// again: 30% failed, under the 50% that opens it.
		if i%10 < 3 {
			d.answer.Store(codes.DeadlineExceeded)
		} else {
			d.answer.Store(codes.OK)
		}
		_, _ = client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	}
	if got := d.calls.Load(); got != 40 {
		t.Errorf("calls reaching the server = %d, want all 40", got)
	}
	if got := tr.list(); got != "" {
		t.Errorf("transitions = %q, want none", got)
	}
}

// An UNAVAILABLE the downstream answered itself, with the platform's code
// (a sale closed while its stock is rebuilt, its own dependency down), is
// the downstream up and answering: it never opens the breaker, which
// would cut off every other call to it. The same code without the
// platform's answer (nobody answered) still does.
func TestBreakerLeavesADownstreamThatAnswersUnavailableOpen(t *testing.T) {
	d, addr := mustStartDownstream(t)
	var tr transitions
	cc, err := rpc.Dial(addr, grpc.WithChainUnaryInterceptor(Breaker(BreakerConfig{Name: "order", MinRequests: 5, FailurePercent: 50, OnStateChange: tr.record})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	fenced := errcode.New(errcode.Unavailable, "the sale is closed while its stock is rebuilt")
	d.err.Store(&fenced)
	for range 20 {
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if got := errcode.Of(err); got != errcode.Unavailable || strings.Contains(err.Error(), "circuit breaker") {
			t.Fatalf("answer %v, want the downstream's own UNAVAILABLE", err)
		}
	}
	if got := tr.list(); got != "" || d.calls.Load() != 20 {
		t.Fatalf("after 20 answered UNAVAILABLEs: transitions %q, %d calls reached it; want none and 20", got, d.calls.Load())
	}
	d.err.Store(nil)
	d.answer.Store(codes.Unavailable)
	for range 20 { // half of the 40 calls in the window
		_, _ = client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	}
	if got := tr.list(); got != "closed->open" {
		t.Errorf("after UNAVAILABLEs nobody answered: transitions %q, want closed->open", got)
	}
}
