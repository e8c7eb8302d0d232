// Command product runs the catalog service (products and flash-sale
// activities). Settings come from FLASHSALE_* environment variables; see
// app.ConfigFromEnv.
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
	"github.com/flashsale/flashsale/services/product/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "product:", err)
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
	cfg.Logger = telemetry.NewLogger(os.Stderr, "product", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.SetupTracing(ctx, otlp)
	if err != nil {
		return err
	}
	defer shutdown(context.WithoutCancel(ctx)) //nolint:errcheck // nothing left to report to at exit
	return app.Run(ctx, cfg)
}
