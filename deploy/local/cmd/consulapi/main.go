// Command consulapi serves the subset of Consul's HTTP API the platform
// uses (platform/testing/consultest: registration with gRPC health
// checks run as the agent runs them, blocking health and key/value
// queries) on -addr until SIGTERM or SIGINT. No Consul agent can be
// installed where the split platform runs (deploy/local/split), which
// starts this in its place, as a process of its own like compose's
// consul container.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/flashsale/flashsale/platform/testing/consultest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8500", "host:port of the HTTP API")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consulapi:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := consultest.Serve(lis, func(format string, args ...any) { log.Error(fmt.Sprintf(format, args...)) })
	log.Info("consul API serving", "addr", lis.Addr().String())
	<-ctx.Done()
	srv.Close()
}
