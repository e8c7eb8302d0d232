package rpc_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
