// Package serve runs what every service process runs: its gRPC server, its
// admin HTTP server (/healthz, /readyz, /metrics) and its background
// workers, until the context ends or one of them fails, then shuts them all
// down gracefully.
package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// Listen returns lis when it is set (tests and the demo hand in listeners
// on free ports) and otherwise listens on addr.
func Listen(lis net.Listener, addr string) (net.Listener, error) {
	if lis != nil {
		return lis, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

// Process is one service process.
type Process struct {
	Log           *slog.Logger
	GRPC          *rpc.Server
	GRPCListener  net.Listener
	Admin         http.Handler
	AdminListener net.Listener
	// Workers run beside the servers (consumers, schedulers); each returns
	// when its context ends.
	Workers []func(context.Context) error
	// Grace bounds the graceful shutdown (default 10s).
	Grace time.Duration
}

// Run serves until ctx ends or a part fails, and returns the first error.
func (p Process) Run(ctx context.Context) error {
	grace := p.Grace
	if grace == 0 {
		grace = 10 * time.Second
	}
	g, ctx := errgroup.WithContext(ctx)
	if p.GRPC != nil {
		g.Go(func() error { return p.GRPC.Serve(ctx, p.GRPCListener, grace) })
	}
	if p.Admin != nil {
		g.Go(func() error { return telemetry.ServeHTTP(ctx, p.Log, p.AdminListener, p.Admin, grace) })
	}
	for _, w := range p.Workers {
		g.Go(func() error { return w(ctx) })
	}
	return g.Wait()
}
