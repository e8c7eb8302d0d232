package channelsim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// ServerConfig is the simulator process's configuration: where it listens
// and the simulator's own settings.
type ServerConfig struct {
	// Addr is where to listen unless Listener is given.
	Addr     string
	Listener net.Listener
	Config
}

// DefaultAddr is the simulator's default listen address.
const DefaultAddr = ":9301"

// ConfigFromEnv reads FLASHSALE_CHANNELSIM_ADDR, FLASHSALE_NOTIFY_URL (the
// gateway's callback base), FLASHSALE_CHANNELSIM_BASE_URL,
// FLASHSALE_CHANNELSIM_SEED, FLASHSALE_CHANNELSIM_RETENTION,
// FLASHSALE_CHANNELSIM_NOTIFY_QUEUE, FLASHSALE_CHANNELSIM_STUB and
// FLASHSALE_CHANNELS, a list of name=secret pairs; problems are collected
// in env. It refuses to run without the development switch
// (config.DevVar), unless it is a stub that serves pressure tests only
// (Config.Stub).
func ConfigFromEnv(env *config.Env) ServerConfig {
	cfg := ServerConfig{
		Addr: env.String("FLASHSALE_CHANNELSIM_ADDR", DefaultAddr),
		Config: Config{
			NotifyURL:   env.String("FLASHSALE_NOTIFY_URL", "http://127.0.0.1:8080/api/v1/payments/callbacks"),
			BaseURL:     env.String("FLASHSALE_CHANNELSIM_BASE_URL", ""),
			Seed:        uint64(env.Int("FLASHSALE_CHANNELSIM_SEED", 1)),
			Retention:   env.Positive("FLASHSALE_CHANNELSIM_RETENTION", DefaultRetention),
			NotifyQueue: int(env.IntIn("FLASHSALE_CHANNELSIM_NOTIFY_QUEUE", DefaultNotifyQueue, 1, 1_000_000)),
			Stub:        env.Bool("FLASHSALE_CHANNELSIM_STUB", false),
		},
	}
	// The simulator answers every payment as its wallet page is told,
	// with no money behind it: a development and test stand-in, which a
	// production deployment must never route payments to. A stub, which
	// refuses whatever is not a pressure test's, is the one way it runs
	// beside live channels.
	env.Check(env.Dev() || cfg.Stub, "the channel simulator moves no money: it runs only in development (%s=true), or as a stub that serves pressure tests only (FLASHSALE_CHANNELSIM_STUB=true); production points payment's FLASHSALE_CHANNELS_URL at the real channels", config.DevVar)
	cfg.Channels = wire.ParseChannels(env, "FLASHSALE_CHANNELS")
	_, err := url.Parse(cfg.NotifyURL)
	env.Check(err == nil && strings.HasPrefix(cfg.NotifyURL, "http"), "FLASHSALE_NOTIFY_URL=%q: not an http URL", cfg.NotifyURL)
	return cfg
}

// Run serves a simulator of cfg until ctx ends.
func Run(ctx context.Context, cfg ServerConfig) error {
	sim, err := New(cfg.Config)
	if err != nil {
		return err
	}
	lis, err := serve.Listen(cfg.Listener, cfg.Addr)
	if err != nil {
		return fmt.Errorf("channelsim: %w", err)
	}
	return sim.Serve(ctx, lis)
}
