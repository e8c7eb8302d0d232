package rpc_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := rpc.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
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
