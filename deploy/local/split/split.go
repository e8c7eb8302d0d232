// Package split runs the platform as docker-compose.yml deploys it, without
// containers: every service its own OS process, built as the Dockerfile
// builds it, with the environment compose gives it, registered in and
// discovered through a Consul-API server, on real redis-server and
// postgres processes and a Kafka-protocol broker process. Compose's
// service names become loopback addresses: each process run here gets
// 127.a.b.n of its own and keeps the ports compose gives it; Redis and
// Postgres are localstack's, on 127.0.0.1 and a free port. `make
// up-split` and `make demo SPLIT=1` run it (docs/operations.md, "The
// split platform").
package split

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// DefaultSubnet is where `make up-split` puts the services: the gateway
// is then on the same address every run.
const DefaultSubnet = "127.0.10"

// startTimeout bounds the wait for one service's health check, and for
// the registrations in Consul.
const startTimeout = 2 * time.Minute

// The commands every image carries or that stand in for an image, built
// beside compose's commands.
const (
	healthcheckCmd = "platform/cmd/healthcheck"
	kfakeCmd       = "deploy/local/cmd/kfake"
	consulCmd      = "deploy/local/cmd/consulapi"
)

// Build builds, as the Dockerfile does (static, trimmed), every command
// docker-compose.yml builds an image from, the healthcheck command its
// images carry, and the broker and Consul stand-ins, into bin (one go
// build; the build cache makes a second run quick). Its output goes to
// out.
func Build(ctx context.Context, root, bin string, out io.Writer) error {
	p, err := loadCompose(ctx, root, map[string]string{})
	if err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin + string(filepath.Separator)}
	for _, c := range append(commands(p), healthcheckCmd, kfakeCmd, consulCmd) {
		args = append(args, "./"+c)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("split: go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Options say where the split platform's parts are and how compose's
// file is read.
type Options struct {
	// Root is the repository: docker-compose.yml, the scenarios.
	Root string
	// Bin holds the commands Build built.
	Bin string
	// Subnet is the first three octets of the loopback addresses of the
	// services (default DefaultSubnet).
	Subnet string
	// Env interpolates docker-compose.yml's ${…} as docker compose does
	// from its shell (${FLASHSALE_PAYMENT_WINDOW:-20s}); nil takes this
	// process's environment and the repository's .env file.
	Env map[string]string
	// Mounts replace the host side of bind mounts, by container path
	// (the tests write the load test's reports into a directory of
	// their own instead of loadtest/reports).
	Mounts map[string]string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Platform is a running split platform.
type Platform struct {
	// GatewayURL is the gateway's base URL.
	GatewayURL string
	// ConsulURL is the Consul API's base URL.
	ConsulURL string
	// IPs are the loopback addresses of the services run as processes
	// of their own, by compose service name.
	IPs map[string]string
	// RedisAddr and PostgresAddr are where redis and postgres are.
	RedisAddr, PostgresAddr string

	plan  *plan
	opts  Options
	stack *localstack.Stack
	log   *slog.Logger
	// services are the processes of compose's commands, which Close
	// stops before the broker, Consul and the stores.
	services []*localstack.Process
	failed   chan struct{}
	once     sync.Once
	mu       sync.Mutex
	errs     []error
	closed   bool
}

// Start starts the stores, the broker and Consul, then every service of
// docker-compose.yml that has no profile, each once the services it
// depends on pass their health check (compose's healthcheck command, run
// as compose runs it), and returns once every service registered in
// Consul passes its check there. On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Platform, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Subnet == "" {
		opts.Subnet = DefaultSubnet
	}
	project, err := loadCompose(ctx, opts.Root, opts.Env)
	if err != nil {
		return nil, err
	}
	pl, err := newPlan(project, opts.Subnet)
	if err != nil {
		return nil, err
	}
	pl.mounts = opts.Mounts
	order, err := pl.startOrder()
	if err != nil {
		return nil, err
	}
	stack, err := localstack.Start(ctx, localstack.Config{Databases: pl.databases(), NoBroker: true, Logger: log})
	if err != nil {
		return nil, err
	}
	p := &Platform{IPs: pl.ips, plan: pl, opts: opts, stack: stack, log: log, failed: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	u, err := url.Parse(stack.PostgresURL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	pl.redis, pl.postgres = stack.RedisAddr, u.Host
	p.RedisAddr, p.PostgresAddr = pl.redis, pl.postgres

	if err := p.startBrokers(ctx); err != nil {
		return nil, err
	}
	for _, name := range pl.named(consulAgent) {
		addr := net.JoinHostPort(pl.ips[name], consulPort)
		if _, err := p.spawn(name, "consulapi", "-addr", addr); err != nil {
			return nil, err
		}
		p.ConsulURL = "http://" + addr
		if err := p.waitDial(ctx, name, addr); err != nil {
			return nil, err
		}
	}
	var registered []string
	for _, name := range order {
		s := project.Services[name]
		proc, err := p.spawnWith(name, pl.binaryOf(name), pl.environ(name))
		if err != nil {
			return nil, err
		}
		p.services = append(p.services, proc)
		if err := p.waitHealthy(ctx, name); err != nil {
			return nil, err
		}
		log.Info("service healthy", "service", name, "ip", pl.ips[name])
		if _, ok := s.Environment["FLASHSALE_CONSUL_ADDR"]; ok && s.Environment["FLASHSALE_GRPC_ADDR"] != nil {
			registered = append(registered, name)
		}
		if listen := s.Environment["FLASHSALE_HTTP_ADDR"]; name == "gateway" && listen != nil {
			addr, _ := pl.value(name, *listen)
			p.GatewayURL = "http://" + addr
		}
	}
	if p.GatewayURL == "" {
		return nil, errors.New("split: docker-compose.yml has no gateway service with FLASHSALE_HTTP_ADDR")
	}
	for _, name := range registered {
		if err := p.waitRegistered(ctx, name); err != nil {
			return nil, err
		}
	}
	log.Info("split platform ready", "gateway", p.GatewayURL, "consul", p.ConsulURL)
	return p, nil
}

// startBrokers runs one kfake process serving every Kafka service of
// compose, each broker on the address its KAFKA_ADVERTISED_LISTENERS
// names, and waits until each accepts connections.
func (p *Platform) startBrokers(ctx context.Context) error {
	var addrs []string
	partitions := "1"
	for _, name := range p.plan.named(kafkaBroker) {
		env := p.plan.project.Services[name].Environment
		l := env["KAFKA_ADVERTISED_LISTENERS"]
		if l == nil {
			return fmt.Errorf("split: %s has no KAFKA_ADVERTISED_LISTENERS", name)
		}
		mapped, _ := p.plan.value(name, strings.TrimPrefix(*l, "PLAINTEXT://"))
		addrs = append(addrs, mapped)
		if n := env["KAFKA_NUM_PARTITIONS"]; n != nil {
			partitions = *n
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	if _, err := p.spawn("kafka", "kfake", "-brokers", strings.Join(addrs, ","), "-partitions", partitions); err != nil {
		return err
	}
	for _, a := range addrs {
		if err := p.waitDial(ctx, "kafka", a); err != nil {
			return err
		}
	}
	return nil
}

// waitDial waits until addr accepts connections.
func (p *Platform) waitDial(ctx context.Context, name, addr string) error {
	return p.poll(ctx, name, func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// spawn runs a command of Bin with no environment but its arguments.
func (p *Platform) spawn(name, command string, args ...string) (*localstack.Process, error) {
	cmd := exec.Command(filepath.Join(p.opts.Bin, command), args...)
	cmd.Env = []string{}
	return p.start(name, cmd)
}

// spawnWith runs a command of Bin with exactly env.
func (p *Platform) spawnWith(name, command string, env []string) (*localstack.Process, error) {
	cmd := exec.Command(filepath.Join(p.opts.Bin, command))
	cmd.Env = env
	return p.start(name, cmd)
}

func (p *Platform) start(name string, cmd *exec.Cmd) (*localstack.Process, error) {
	proc, err := p.stack.Spawn(name, cmd)
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	go func() {
		<-proc.Exited()
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		p.errs = append(p.errs, fmt.Errorf("split: %s: %w", name, proc.Err()))
		p.once.Do(func() { close(p.failed) })
	}()
	return proc, nil
}

// waitHealthy runs service name's compose healthcheck (the images'
// /healthcheck command, from Bin, on its mapped URL) until it passes.
// A service without one is healthy once started.
func (p *Platform) waitHealthy(ctx context.Context, name string) error {
	hc := p.plan.project.Services[name].HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
		return nil
	}
	if hc.Test[1] != "/healthcheck" {
		return fmt.Errorf("split: %s: healthcheck %v: only the images' /healthcheck command runs here", name, hc.Test)
	}
	args := p.plan.args(name, hc.Test[2:])
	return p.poll(ctx, name, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, filepath.Join(p.opts.Bin, "healthcheck"), args...)
		cmd.Env = []string{}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("healthcheck %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	})
}

// waitRegistered waits until Consul lists service name as passing its
// health check at the address it runs on.
func (p *Platform) waitRegistered(ctx context.Context, name string) error {
	grpcAddr, _ := p.plan.value(name, *p.plan.project.Services[name].Environment["FLASHSALE_GRPC_ADDR"])
	return p.poll(ctx, name, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ConsulURL+"/v1/health/service/"+name+"?passing", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var entries []struct {
			Service struct {
				Address string
				Port    int
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
			return fmt.Errorf("consul: %s: %w", name, err)
		}
		for _, e := range entries {
			if net.JoinHostPort(e.Service.Address, fmt.Sprint(e.Service.Port)) == grpcAddr {
				return nil
			}
		}
		return fmt.Errorf("consul lists no passing %s at %s (%d others)", name, grpcAddr, len(entries))
	})
}

// poll calls ready until it succeeds, failing when a process exits, ctx
// ends or startTimeout passes.
func (p *Platform) poll(ctx context.Context, name string, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		err := ready(rctx)
		rcancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.failed:
			return fmt.Errorf("split: waiting for %s: %w", name, p.Err())
		case <-ctx.Done():
			return fmt.Errorf("split: %s not ready: %w (last: %v)", name, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Replay runs compose's loadtest service against the platform, as
// `docker compose run --rm loadtest` does: its command, with its
// environment, hostnames and bind mounts mapped (Options.Mounts). Its
// output goes to out; it fails when the replay or its audit does.
func (p *Platform) Replay(ctx context.Context, out io.Writer) error {
	const name = "loadtest"
	s, ok := p.plan.project.Services[name]
	if !ok || kindOf(s) != binary {
		return errors.New("split: docker-compose.yml has no loadtest service built from a command")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(p.opts.Bin, p.plan.binaryOf(name)), p.plan.args(name, s.Command)...)
	cmd.Env = p.plan.environ(name)
	cmd.Dir = p.opts.Root
	cmd.Stdout, cmd.Stderr = out, out
	p.log.Info("replay", "args", strings.Join(cmd.Args[1:], " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("split: loadtest %s: %w", strings.Join(cmd.Args[1:], " "), err)
	}
	return nil
}

// Services are the compose services run as processes of their own, in
// name order.
func (p *Platform) Services() []string { return slices.Sorted(maps.Keys(p.IPs)) }

// LoadtestEnv is the environment of compose's loadtest service, mapped:
// where its audit reads the books and where the channel simulator is.
func (p *Platform) LoadtestEnv() []string { return p.plan.environ("loadtest") }

// LogDir holds every process's output, <service>.log (removed by Close).
func (p *Platform) LogDir() string { return p.stack.Dir() }

// Failed is closed when a process stops before Close.
func (p *Platform) Failed() <-chan struct{} { return p.failed }

// Err returns how the processes that stopped before Close stopped.
func (p *Platform) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// Close stops every service (SIGTERM: they drain and deregister from
// Consul), then the broker, Consul and the stores, and removes their
// directory.
func (p *Platform) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	errs := make([]error, len(p.services)+1)
	var wg sync.WaitGroup
	for i, proc := range p.services {
		wg.Go(func() { errs[i] = proc.Stop() })
	}
	wg.Wait()
	errs[len(p.services)] = p.stack.Close()
	return errors.Join(errs...)
}
