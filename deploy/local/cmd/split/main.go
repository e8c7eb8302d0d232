// Command split is `make up-split` and `make demo SPLIT=1`: it builds the
// services as the Dockerfile does and runs docker-compose.yml's platform
// without containers, every service its own process with the environment
// compose gives it (deploy/local/split), until interrupted; with -replay
// it runs compose's loadtest service on a scenario instead and exits
// with its result. Run it from the repository's root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/flashsale/flashsale/deploy/local/split"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/platform/telemetry"
)

func main() {
	bin := flag.String("bin", ".bin/split", "directory for the built commands")
	subnet := flag.String("subnet", split.DefaultSubnet, "first three octets of the services' loopback addresses")
	replay := flag.String("replay", "", "scenario of loadtest/scenarios to replay with compose's loadtest service, then stop (make demo SPLIT=1)")
	flag.Parse()
	if err := run(*bin, *subnet, *replay); err != nil {
		fmt.Fprintln(os.Stderr, "split:", err)
		os.Exit(1)
	}
}

func run(bin, subnet, replay string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, slog.LevelInfo)

	// The compose file is interpolated from this process's environment,
	// as docker compose does from its shell; a replay names its scenario
	// and, unless set, its payment window as the compose file's comments
	// say to.
	var env map[string]string
	if replay != "" {
		if env, err = replayEnv(root, replay); err != nil {
			return err
		}
	}
	fmt.Println("building the services (go build, as the Dockerfile does)…")
	if err := split.Build(ctx, root, bin, os.Stderr); err != nil {
		return err
	}
	p, err := split.Start(ctx, split.Options{Root: root, Bin: bin, Subnet: subnet, Env: env, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping…")
		if err := p.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "split: stop:", err)
		}
	}()
	fmt.Printf("gateway ready at %s (dev tokens on: POST %s/api/v1/dev/token); consul API at %s\n", p.GatewayURL, p.GatewayURL, p.ConsulURL)
	for _, name := range p.Services() {
		fmt.Printf("  %-12s %s\n", name, p.IPs[name])
	}
	fmt.Printf("  %-12s %s\n  %-12s %s\neach process's output: %s/<service>.log\n", "redis", p.RedisAddr, "postgres", p.PostgresAddr, p.LogDir())
	if replay != "" {
		return p.Replay(ctx, os.Stdout)
	}
	fmt.Printf("replay against it (as compose's loadtest service):\n  %s make loadtest TARGET=%s\nCtrl-C stops everything.\n",
		strings.Join(p.LoadtestEnv(), " "), p.GatewayURL)
	select {
	case <-ctx.Done():
		return nil
	case <-p.Failed():
		return errors.Join(errors.New("a service stopped"), p.Err())
	}
}

// replayEnv is this process's environment with FLASHSALE_SCENARIO naming
// the scenario file (compose's loadtest service reads it from its mount
// of loadtest/scenarios) and FLASHSALE_PAYMENT_WINDOW its
// platform.payment_window unless the environment sets one.
func replayEnv(root, file string) (map[string]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "loadtest", "scenarios")
	if filepath.Dir(abs) != dir || filepath.Ext(abs) != ".yaml" {
		return nil, fmt.Errorf("-replay %s: compose's loadtest service replays a .yaml file of %s only", file, dir)
	}
	sc, err := scenario.Load(abs)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	env["FLASHSALE_SCENARIO"] = strings.TrimSuffix(filepath.Base(abs), ".yaml")
	if _, set := env["FLASHSALE_PAYMENT_WINDOW"]; !set && sc.Platform.PaymentWindow > 0 {
		env["FLASHSALE_PAYMENT_WINDOW"] = sc.Platform.PaymentWindow.D().String()
	}
	return env, nil
}
