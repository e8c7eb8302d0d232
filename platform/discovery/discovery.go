// Package discovery connects the platform to Consul: each service
// registers itself with a gRPC health check and deregisters on shutdown;
// clients dial "consul://<service>" through a gRPC resolver that follows the
// service's healthy instances with blocking queries; and runtime switches
// (rate limits, degrade switches) are watched in Consul's key/value store.
//
// Everything is optional: without FLASHSALE_CONSUL_ADDR, Open returns a nil
// *Consul whose methods fall back to static addresses and env settings, which
// is how the local harness (make up, make demo, the tests) runs.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/rpc"
)

// Config says where Consul is and how this process is reached.
type Config struct {
	// ConsulAddr is host:port of the Consul agent's HTTP API; empty
	// disables Consul.
	ConsulAddr string
	// AdvertiseHost is the host other services reach this process on
	// (default: the first non-loopback IPv4 address of the machine, which
	// is the container's address under docker compose and the pod's under
	// Kubernetes; then the host name).
	AdvertiseHost string
	// CheckInterval is how often Consul checks the gRPC health service
	// (default 5s).
	CheckInterval time.Duration
	// KVOnly keeps the process out of Consul's catalogue: it reads the
	// switches in KV but registers nowhere. Kubernetes sets it: there
	// its Services and DNS find the instances, and a registration would
	// only be checked by a Consul agent the NetworkPolicies keep out.
	KVOnly bool
	// Token is the ACL token the process presents to Consul. Consul's KV
	// holds the operator's switches (a sale closed, the blocklist, the
	// channels' routing), so whoever may write it opens what an operator
	// closed: outside development a process that uses Consul presents a
	// token of its own (config.Env.Secret), and Consul's ACLs decide
	// what it may read and write.
	Token string
}

// ConfigFromEnv reads FLASHSALE_CONSUL_ADDR, FLASHSALE_ADVERTISE_HOST,
// FLASHSALE_CONSUL_CHECK_INTERVAL, FLASHSALE_CONSUL_KV_ONLY and
// FLASHSALE_CONSUL_TOKEN (a secret, required with Consul).
func ConfigFromEnv(env *config.Env) Config {
	cfg := Config{
		ConsulAddr:    env.String("FLASHSALE_CONSUL_ADDR", ""),
		AdvertiseHost: env.String("FLASHSALE_ADVERTISE_HOST", ""),
		CheckInterval: env.Duration("FLASHSALE_CONSUL_CHECK_INTERVAL", DefaultCheckInterval),
		KVOnly:        env.Bool("FLASHSALE_CONSUL_KV_ONLY", false),
	}
	cfg.Token = env.SecretIf(cfg.ConsulAddr != "", "FLASHSALE_CONSUL_TOKEN")
	if cfg.ConsulAddr != "" {
		_, _, err := net.SplitHostPort(cfg.ConsulAddr)
		env.Check(err == nil, "FLASHSALE_CONSUL_ADDR=%q: not host:port", cfg.ConsulAddr)
	}
	env.Check(cfg.CheckInterval >= time.Second, "FLASHSALE_CONSUL_CHECK_INTERVAL=%s: must be at least 1s", cfg.CheckInterval)
	return cfg
}

// Defaults.
const (
	DefaultCheckInterval = 5 * time.Second
	// deregisterAfter is how long Consul keeps an instance whose check
	// fails before dropping it, for a process killed without deregistering.
	deregisterAfter = "1m"
	// blockWait bounds one blocking query; Consul answers earlier as
	// soon as something changes.
	blockWait = 5 * time.Minute
)

// Consul is a Consul agent's client. A nil *Consul means "no Consul": its
// methods then fall back to static addresses and settings.
type Consul struct {
	api      *api.Client
	cfg      Config
	log      *slog.Logger
	retryMin time.Duration
	retryMax time.Duration
}

// Open returns the client for cfg, or nil when cfg.ConsulAddr is empty.
// It does not contact Consul: registration, resolution and watches retry
// until the agent answers, so services may start before it.
func Open(cfg Config, log *slog.Logger) (*Consul, error) {
	if cfg.ConsulAddr == "" {
		return nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	ac := api.DefaultConfig()
	ac.Address = cfg.ConsulAddr
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("discovery: consul client: %w", err)
	}
	return &Consul{api: c, cfg: cfg, log: log, retryMin: 100 * time.Millisecond, retryMax: 5 * time.Second}, nil
}

// Dial dials target through rpc.Dial. With Consul, target may be
// "consul://<service>"; plain host:port targets work either way.
func (c *Consul) Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if c != nil {
		opts = append([]grpc.DialOption{grpc.WithResolvers(c.Resolver())}, opts...)
	}
	return rpc.Dial(target, opts...)
}

// Announce returns a worker (for serve.Process.Workers) that registers
// service, served on lis, with a gRPC health check, keeps it registered
// until ctx ends, and then deregisters it. Without Consul, or KVOnly, the worker
// returns at once.
func (c *Consul) Announce(service string, lis net.Listener) func(context.Context) error {
	return func(ctx context.Context) error {
		if c == nil || c.cfg.KVOnly {
			return nil
		}
		reg, err := c.registration(service, lis)
		if err != nil {
			return err
		}
		registered := c.retry(ctx, "register "+reg.ID, func() error {
			return c.api.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx))
		}) == nil
		if registered {
			c.log.Info("registered in consul", "service", service, "id", reg.ID, "addr", net.JoinHostPort(reg.Address, strconv.Itoa(reg.Port)))
		}
		<-ctx.Done()
		// Deregister with a context of its own: the process's is over.
		// Even when registering gave up (the process stopped first), the
		// last attempt may have reached Consul before its answer was
		// abandoned, so the instance is deregistered all the same.
		wait := 5 * time.Second
		if !registered {
			wait = time.Second
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		defer cancel()
		if err := c.api.Agent().ServiceDeregisterOpts(reg.ID, (&api.QueryOptions{}).WithContext(dctx)); err != nil {
			if registered {
				// Consul drops it after deregisterAfter of failing checks.
				c.log.Warn("consul deregistration failed", "id", reg.ID, "err", err)
			}
			return nil
		}
		c.log.Info("deregistered from consul", "id", reg.ID)
		return nil
	}
}

// registration describes this instance of service: reachable on the
// advertised host and lis's port, checked through the standard gRPC health
// service (which rpc.Server answers NOT_SERVING while it drains).
func (c *Consul) registration(service string, lis net.Listener) (*api.AgentServiceRegistration, error) {
	_, portStr, err := net.SplitHostPort(lis.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("discovery: listener address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("discovery: listener port %q: %w", portStr, err)
	}
	host := c.cfg.AdvertiseHost
	if host == "" {
		if host, err = advertiseHost(); err != nil {
			return nil, err
		}
	}
	addr := net.JoinHostPort(host, portStr)
	return &api.AgentServiceRegistration{
		ID:      service + "-" + host + "-" + portStr,
		Name:    service,
		Address: host,
		Port:    port,
		Check: &api.AgentServiceCheck{
			GRPC:                           addr,
			Interval:                       c.cfg.CheckInterval.String(),
			Timeout:                        "2s",
			DeregisterCriticalServiceAfter: deregisterAfter,
		},
	}, nil
}

// advertiseHost is the machine's first non-loopback IPv4 address, or its
// host name when it has none. A container's host name (its id under
// docker compose) is not always resolvable by the others; its address is.
func advertiseHost() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return ipn.IP.String(), nil
			}
		}
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("discovery: no address to advertise: %w", err)
	}
	return host, nil
}

// retry runs op until it succeeds or ctx ends, backing off exponentially.
func (c *Consul) retry(ctx context.Context, what string, op func() error) error {
	wait := c.retryMin
	for {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("consul: retrying", "op", what, "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, c.retryMax)
	}
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
