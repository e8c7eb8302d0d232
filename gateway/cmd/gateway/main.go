// Command gateway serves the platform's public HTTP API.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	env := config.FromEnv()
	var level slog.Level
	if err := level.UnmarshalText([]byte(env.String("FLASHSALE_LOG_LEVEL", "info"))); err != nil {
		return fmt.Errorf("FLASHSALE_LOG_LEVEL: %w", err)
	}
	otlp := env.String("FLASHSALE_OTLP_ENDPOINT", "")
	cfg := app.ConfigFromEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	cfg.Logger = telemetry.NewLogger(os.Stderr, "gateway", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.SetupTracing(ctx, otlp)
	if err != nil {
		return err
	}
	defer shutdown(context.WithoutCancel(ctx))
	return app.Run(ctx, cfg)
}
