package serve

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// Main is the body of every binary's main function: it reads the
// configuration with load (plus FLASHSALE_LOG_LEVEL,
// FLASHSALE_OTLP_ENDPOINT and FLASHSALE_FLIGHT_RECORDER_DIR), refuses to
// start on any invalid value, sets up GOMEMLIMIT from the container's
// memory limit (LimitMemory), JSON logging, tracing (spans carry
// service.name service, see telemetry.SetupTracing) and, when asked, the
// flight recorder (telemetry.StartFlightRecorder), and calls run until
// SIGINT or SIGTERM. It exits with status 1 and the reason when
// something fails.
func Main[C any](service string, load func(*config.Env) C, run func(context.Context, C, *slog.Logger) error) {
	if err := mainErr(service, load, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		os.Exit(1)
	}
}

func mainErr[C any](service string, load func(*config.Env) C, run func(context.Context, C, *slog.Logger) error) error {
	TuneGC()
	env := config.FromEnv()
	var level slog.Level
	levelName := env.String("FLASHSALE_LOG_LEVEL", "info")
	env.Check(level.UnmarshalText([]byte(levelName)) == nil, "FLASHSALE_LOG_LEVEL=%q: not a level (debug, info, warn, error)", levelName)
	otlp := env.String("FLASHSALE_OTLP_ENDPOINT", "")
	// A directory for the execution traces of calls that ran out of
	// their deadline (telemetry.FlightSnapshot); empty runs no flight
	// recorder. It costs CPU (about 8 % of a buy's,
	// docs/operations.md), so it is off unless asked for.
	flightDir := env.String("FLASHSALE_FLIGHT_RECORDER_DIR", "")
	cfg := load(env)
	if err := env.Err(); err != nil {
		return err
	}
	log := telemetry.NewLogger(os.Stderr, level).With("service", service)
	// A process that cannot read its cgroup runs without a soft limit,
	// as before; it says so and serves.
	if _, err := LimitMemory(log, memlimit.FromCgroup); err != nil {
		log.Warn("GOMEMLIMIT not derived from the container's memory limit", "err", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.SetupTracing(ctx, telemetry.Tracing{Service: service, OTLPEndpoint: otlp})
	if err != nil {
		return err
	}
	// Flush spans on the way out; there is nothing left to report a
	// failure to.
	defer shutdown(context.WithoutCancel(ctx)) //nolint:errcheck
	if flightDir != "" {
		// A diagnostic that cannot start (a read-only directory) must
		// not stop the service: it says so and serves.
		stopFlight, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: flightDir, Name: service, Logger: log})
		if err != nil {
			log.Warn("running without the flight recorder", "dir", flightDir, "err", err)
		} else {
			defer stopFlight()
		}
	}
	return run(ctx, cfg, log)
}
