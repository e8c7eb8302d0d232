package rpc_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// A service whose context ends as it starts (a test that is over at once,
// a signal during start-up) must stop cleanly however the stop and the
// start interleave.
func TestServeStoppedAtOnceIsClean(t *testing.T) {
	for i := range 200 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Serve(ctx, lis, time.Second); err != nil {
			t.Fatalf("round %d: Serve with an ended context: %v, want nil", i, err)
		}
	}
}

// The server keeps a pool of stream workers; calls beyond it must still
// run at once, each on a goroutine of its own, or a spike would queue
// behind the pool. Health watches stay open, so 600 of them hold more
// handlers in flight than there are workers; every one must answer.
func TestCallsBeyondTheWorkersStillRun(t *testing.T) {
	cc, _ := serveRPC(t)
	health := healthpb.NewHealthClient(cc)

	const watches = 600
	wctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	errs := make(chan error, watches)
	for range watches {
		go func() {
			w, err := health.Watch(wctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			errs <- err
		}()
	}
	for i := range watches {
		if err := <-errs; err != nil {
			t.Fatalf("watch %d of %d in flight at once: %v", i+1, watches, err)
		}
	}
}

// stuckHealth never answers a check until the caller gives up.
type stuckHealth struct {
	healthpb.UnimplementedHealthServer
}

func (stuckHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// CallTimeout bounds a call that carries no deadline of its own, and
// leaves a caller's own deadline alone.
func TestCallTimeoutBoundsCallsWithoutADeadline(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, stuckHealth{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := rpc.Dial(lis.Addr().String(), rpc.CallTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	health := healthpb.NewHealthClient(cc)

	if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call without a deadline: %v, want DeadlineExceeded from the call timeout", err)
	}
	// A caller's own, later deadline is kept: the call is still running
	// when the 50 ms the option would have given it are over.
	ctx, cancel := context.WithCancel(context.Background())
	ctx, stop := context.WithDeadline(ctx, time.Now().Add(time.Hour))
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a call with its own deadline ended early: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled call: %v, want Canceled", err)
	}
}

// HealthCheck passes while the server answers SERVING and fails once it
// drains or is gone.
func TestHealthCheckFollowsTheServer(t *testing.T) {
	cc, stop := serveRPC(t)
	check := rpc.HealthCheck(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := check(ctx); err != nil {
		t.Fatalf("check of a serving server: %v", err)
	}
	stop()
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := check(ctx2); err == nil {
		t.Error("check of a stopped server passed")
	}
}

// TestHealthFollowsTheProcessReadiness: a server told it is not ready
// (a replica still reading its settings) answers NOT_SERVING from its
// first moment, so Consul's check never passes it early, and SERVING
// once ready; a server never told anything is ready.
func TestHealthFollowsTheProcessReadiness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ready telemetry.Readiness
	release := ready.Hold("settings")
	cc, _ := serveRPC(t, func(s *rpc.Server) { ready.Watch(s.SetReady) })
	check := rpc.HealthCheck(cc)
	if err := check(ctx); err == nil {
		t.Fatal("check of a server still waiting for its settings passed")
	}
	release()
	if err := check(ctx); err != nil {
		t.Fatalf("check once the settings are read: %v", err)
	}
	ready.Hold("settings again")
	if err := check(ctx); err == nil {
		t.Fatal("check passed while a new hold is on")
	}

	plain, _ := serveRPC(t)
	if err := rpc.HealthCheck(plain)(ctx); err != nil {
		t.Fatalf("check of a server never told its readiness: %v", err)
	}
}

// serveRPC serves an rpc.Server on a free port until stop or the end of
// the test, and returns a connection to it.
func serveRPC(t *testing.T, setup ...func(*rpc.Server)) (cc *grpc.ClientConn, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
	for _, f := range setup {
		f(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	cc, err = rpc.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc, stop
}

// slowService's one method waits until its caller gives up.
var slowService = grpc.ServiceDesc{
	ServiceName: "test.Slow",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Wait",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(healthpb.HealthCheckRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			wait := func(ctx context.Context, _ any) (any, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Slow/Wait"}, wait)
		},
	}},
}

// A handler still running when its caller's deadline passed has the
// flight recorder write the process's last seconds; one that ends in
// time, or whose caller gave up early, writes nothing.
func TestHandlerPastItsDeadlineSnapshotsTheFlightRecorder(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
	srv.RegisterService(&slowService, struct{}{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()
	defer func() {
		cancel()
		<-served
	}()
	cc, err := rpc.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	dir := t.TempDir()
	stop, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	// A caller that gives up long before its deadline (a sibling call
	// failed, the buyer left) is not a slow handler.
	early, giveUp := context.WithTimeout(context.Background(), time.Hour)
	time.AfterFunc(50*time.Millisecond, giveUp)
	if err := cc.Invoke(early, "/test.Slow/Wait", &healthpb.HealthCheckRequest{}, new(healthpb.HealthCheckResponse)); status.Code(err) != codes.Canceled {
		t.Fatalf("a call its caller cancelled: %v, want Canceled", err)
	}
	time.Sleep(200 * time.Millisecond) // a snapshot is written in the background
	if names, _ := filepath.Glob(filepath.Join(dir, "*.trace")); len(names) != 0 {
		t.Fatalf("a call answered in time or cancelled early wrote %v", names)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer ccancel()
	err = cc.Invoke(cctx, "/test.Slow/Wait", &healthpb.HealthCheckRequest{}, new(healthpb.HealthCheckResponse))
	// The client's own timer, or on a busy machine the server's answer to
	// its copy of the deadline (UNAVAILABLE), may end the call first.
	if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Unavailable {
		t.Fatalf("a call its server never answered: %v, want DeadlineExceeded or Unavailable", err)
	}
	// The server's handler ends a moment after the client gave up.
	deadline := time.Now().Add(10 * time.Second)
	var names []string
	for len(names) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		names, _ = filepath.Glob(filepath.Join(dir, "*.trace"))
	}
	stop()
	names, _ = filepath.Glob(filepath.Join(dir, "*.trace"))
	if len(names) != 1 || !strings.HasSuffix(names[0], "-rpc-deadline.trace") {
		t.Fatalf("snapshots %v, want one of the handler past its deadline", names)
	}
}
