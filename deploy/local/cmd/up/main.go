// Command up runs the whole platform on this machine (real redis-server and
// postgres child processes, an in-process Kafka-protocol broker) and serves
// the gateway on FLASHSALE_HTTP_ADDR until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/localstack"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/telemetry"
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
	log := telemetry.NewLogger(os.Stderr, level)

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
	fmt.Printf("gateway ready at %s (dev tokens on: POST %s/api/v1/dev/token)\nbig screen (大屏): %s\nredis %s, postgres %s, kafka %v\nCtrl-C stops everything.\n",
		p.GatewayURL, p.GatewayURL, screen, stack.RedisAddr, stack.PostgresURL(local.DBOrders), stack.KafkaBrokers)
	select {
	case <-ctx.Done():
	case <-p.Failed():
	}
	fmt.Println("stopping…")
	return p.Close()
}
