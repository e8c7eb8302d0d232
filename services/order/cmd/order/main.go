// Command order runs the order service: flash-sale order placement over
// gRPC and the consumer that writes placed orders to Postgres. Settings
// come from FLASHSALE_* environment variables; see app.ConfigFromEnv.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/services/order/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}

func run() error {
	env := config.FromEnv()
	var level slog.Level
	levelName := env.String("FLASHSALE_LOG_LEVEL", "info")
	env.Check(level.UnmarshalText([]byte(levelName)) == nil, "FLASHSALE_LOG_LEVEL=%q: not a level (debug, info, warn, error)", levelName)
	otlp := env.String("FLASHSALE_OTLP_ENDPOINT", "")
	cfg := app.ConfigFromEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	cfg.Logger = telemetry.NewLogger(os.Stderr, "order", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.SetupTracing(ctx, otlp)
	if err != nil {
		return err
	}
	defer shutdown(context.WithoutCancel(ctx)) //nolint:errcheck // nothing left to report to at exit
	return app.Run(ctx, cfg)
}
