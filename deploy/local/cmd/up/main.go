// Command up runs the whole platform on this machine (real redis-server and
// postgres child processes, an in-process Kafka-protocol broker) and serves
// the gateway on FLASHSALE_HTTP_ADDR until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "up:", err)
		os.Exit(1)
	}
}

func run() error {
	serve.TuneGC()
	env := config.FromEnv()
	addr := env.String("FLASHSALE_HTTP_ADDR", "127.0.0.1:8080")
	secret := env.String("FLASHSALE_JWT_SECRET", "")
	otlp := env.String("FLASHSALE_OTLP_ENDPOINT", "")
	level := slog.LevelInfo
	if env.Bool("FLASHSALE_DEBUG", false) {
		level = slog.LevelDebug
	}
	if err := env.Err(); err != nil {
		return err
	}
	logs := &settling{w: os.Stderr}
	log := telemetry.NewLogger(logs, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Every service runs in this one process, under one tracer provider:
	// its spans carry service.name flashsale-local (the span names and
	// attributes say which service).
	shutdownTracing, err := telemetry.SetupTracing(ctx, telemetry.Tracing{Service: "flashsale-local", OTLPEndpoint: otlp})
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	stack, err := localstack.Start(ctx, local.StackConfig(log))
	if err != nil {
		return err
	}
	defer stack.Close()
	p, err := local.Up(ctx, stack, local.Options{Logger: log, HTTPAddr: addr, JWTSecret: secret, Environ: true})
	if err != nil {
		return err
	}
	screen, err := p.ScreenURL(ctx)
	if err != nil {
		return errors.Join(err, p.Close())
	}
	// The services log as they connect to each other for a moment after
	// they are ready; the banner waits for that to end so it is the last
	// thing on the screen.
	logs.settle(500*time.Millisecond, 5*time.Second)
	links := append(p.Links(),
		local.Link{Name: "big screen (大屏)", URL: screen},
		local.Link{Name: "redis", URL: stack.RedisAddr},
		local.Link{Name: "postgres", URL: stack.PostgresURL(local.DBOrders)},
		local.Link{Name: "kafka", URL: fmt.Sprint(stack.KafkaBrokers)})
	local.Banner(os.Stdout, "flashsale is up (make up: every service in this process)", links,
		"Replay the sale against it from another shell: make loadtest. Ctrl-C stops everything.")
	select {
	case <-ctx.Done():
	case <-p.Failed():
	}
	fmt.Println("stopping…")
	return p.Close()
}

// settling is the log's writer: it remembers when it last wrote, so the
// banner can wait for the start-up logs to settle.
type settling struct {
	w    io.Writer
	last atomic.Int64 // unix nanoseconds of the last write
}

func (s *settling) Write(b []byte) (int, error) {
	s.last.Store(time.Now().UnixNano())
	return s.w.Write(b)
}

// settle returns once nothing has been written for quiet, or after most.
func (s *settling) settle(quiet, most time.Duration) {
	for deadline := time.Now().Add(most); time.Now().Before(deadline); time.Sleep(quiet / 5) {
		if time.Since(time.Unix(0, s.last.Load())) >= quiet {
			return
		}
	}
}
