// Command inventory serves flash-sale stock from Redis over gRPC.
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
	"github.com/flashsale/flashsale/services/inventory/app"
)

func main() { os.Exit(run()) }

// run returns the exit code, so deferred cleanups (flushing traces) run
// before the process exits.
func run() int {
	env := config.FromEnv()
	cfg := app.ConfigFromEnv(env)
	var level slog.Level
	levelName := env.String("FLASHSALE_LOG_LEVEL", "info")
	env.Check(level.UnmarshalText([]byte(levelName)) == nil, "FLASHSALE_LOG_LEVEL=%q: not a log level (debug, info, warn, error)", levelName)
	otlp := env.String("FLASHSALE_OTLP_ENDPOINT", "")
	if err := env.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		return 2
	}
	cfg.Logger = telemetry.NewLogger(os.Stderr, "inventory", level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := telemetry.SetupTracing(ctx, otlp)
	if err != nil {
		cfg.Logger.Error("tracing", "err", err)
		return 1
	}
	defer shutdownTracing(context.WithoutCancel(ctx))

	if err := app.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("inventory stopped", "err", err)
		return 1
	}
	return 0
}
