package split

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// kind is how the split platform runs a compose service.
type kind int

const (
	// notRun: no stand-in on this machine (Jaeger, the collector,
	// Prometheus, Grafana). A variable naming one is left out.
	notRun kind = iota
	// binary: the command its image is built from (build.args.CMD).
	binary
	// The stores and brokers, by image: localstack's redis-server and
	// postgres, the kfake command, the consulapi command.
	redisStore
	postgresStore
	kafkaBroker
	consulAgent
)

// standIns are the images run here by something else than their own
// binary, by image name without its tag.
var standIns = map[string]kind{
	"redis":            redisStore,
	"postgres":         postgresStore,
	"apache/kafka":     kafkaBroker,
	"hashicorp/consul": consulAgent,
}

// consulPort is the port of Consul's HTTP API, where consulapi listens.
const consulPort = "8500"

func kindOf(s types.ServiceConfig) kind {
	if s.Build != nil && s.Build.Args["CMD"] != nil {
		return binary
	}
	image, _, _ := strings.Cut(s.Image, ":")
	return standIns[image]
}

// loadCompose loads docker-compose.yml of root as `docker compose` does
// (compose-go is its loader), interpolating ${…} from env, or from this
// process's environment and root's .env file when env is nil, with every
// profile (the loadtest service's too).
func loadCompose(ctx context.Context, root string, env map[string]string) (*types.Project, error) {
	opts := []cli.ProjectOptionsFn{
		cli.WithName("flashsale"),
		cli.WithWorkingDirectory(root),
		cli.WithProfiles([]string{"*"}),
	}
	if env == nil {
		opts = append(opts, cli.WithOsEnv, cli.WithDotEnv)
	} else {
		var pairs []string
		for k, v := range env {
			pairs = append(pairs, k+"="+v)
		}
		opts = append(opts, cli.WithEnv(pairs), cli.WithDiscardEnvFile)
	}
	po, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")}, opts...)
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	p, err := po.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("split: docker-compose.yml: %w", err)
	}
	return p, nil
}

// plan maps a compose project onto this machine: each service run as a
// process of its own (a command, kfake, consulapi) gets a loopback
// address of its own, 127.a.b.n, and keeps the ports compose gives it;
// Redis and Postgres are localstack's, on 127.0.0.1 and a free port.
type plan struct {
	project *types.Project
	// ips are the loopback addresses by service.
	ips map[string]string
	// redis and postgres are host:port of localstack's servers, once
	// they run.
	redis, postgres string
	// mounts replace the host side of bind mounts, by container path.
	mounts map[string]string
}

// newPlan numbers the services run as processes of their own in name
// order on subnet (the first three octets of a loopback address).
func newPlan(p *types.Project, subnet string) (*plan, error) {
	if ip := net.ParseIP(subnet + ".1"); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil, fmt.Errorf("split: subnet %q: want the first three octets of a loopback address, such as 127.0.10", subnet)
	}
	pl := &plan{project: p, ips: map[string]string{}}
	n := 0
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		switch kindOf(p.Services[name]) {
		case binary, kafkaBroker, consulAgent:
			n++
			if n > 254 {
				return nil, fmt.Errorf("split: more than 254 services")
			}
			pl.ips[name] = fmt.Sprintf("%s.%d", subnet, n)
		}
	}
	return pl, nil
}

// named returns the services of kind k, in name order.
func (pl *plan) named(k kind) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(pl.project.Services)) {
		if kindOf(pl.project.Services[name]) == k {
			out = append(out, name)
		}
	}
	return out
}

// endpoint maps host:port as service self reaches it: a compose
// service's name becomes where that service runs here, and the
// container's own address (empty, 127.0.0.1, localhost, 0.0.0.0) becomes
// self's. drop says the endpoint is a service not run here; a host that
// is no service (an external one) is kept.
func (pl *plan) endpoint(self, host, port string) (addr string, drop bool) {
	switch host {
	case "", "127.0.0.1", "localhost", "0.0.0.0":
		host = self
	}
	s, ok := pl.project.Services[host]
	if !ok {
		return net.JoinHostPort(host, port), false
	}
	switch kindOf(s) {
	case redisStore:
		return pl.redis, false
	case postgresStore:
		return pl.postgres, false
	case notRun:
		return "", true
	}
	if port == "" {
		return pl.ips[host], false
	}
	return net.JoinHostPort(pl.ips[host], port), false
}

// value maps a setting of service self: a URL's host, a host:port, a
// listen address (":9102") or a comma-separated list of them naming
// compose services. consul:// targets are resolved through Consul and
// stay; values that name no endpoint (durations, numbers, secrets) stay.
// drop says the value names a service not run here.
func (pl *plan) value(self, v string) (_ string, drop bool) {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "consul" || u.Host == "" {
			return v, false
		}
		addr, drop := pl.endpoint(self, u.Hostname(), u.Port())
		u.Host = addr
		return u.String(), drop
	}
	parts := strings.Split(v, ",")
	for i, part := range parts {
		host, port, err := net.SplitHostPort(strings.TrimSpace(part))
		if err != nil {
			return v, false
		}
		var dropped bool
		if parts[i], dropped = pl.endpoint(self, host, port); dropped {
			return "", true
		}
	}
	return strings.Join(parts, ","), false
}

// environ is service name's environment as compose gives it, mapped
// (value), without the variables naming a service not run here, and with
// FLASHSALE_ADVERTISE_HOST, the address other services reach it on, for
// a service that registers in Consul: in a container discovery finds the
// container's address by itself (the first non-loopback one), here every
// service shares the machine's.
func (pl *plan) environ(name string) []string {
	var env []string
	for k, v := range pl.project.Services[name].Environment {
		if v == nil {
			continue
		}
		mapped, drop := pl.value(name, *v)
		if drop {
			continue
		}
		env = append(env, k+"="+mapped)
	}
	if _, ok := pl.project.Services[name].Environment["FLASHSALE_CONSUL_ADDR"]; ok {
		env = append(env, "FLASHSALE_ADVERTISE_HOST="+pl.ips[name])
	}
	slices.Sort(env)
	return env
}

// args maps a command line of service name: values as environ maps
// them, and paths inside a bind mount to the mounted host path.
func (pl *plan) args(name string, args []string) []string {
	s := pl.project.Services[name]
	out := make([]string, len(args))
	for i, a := range args {
		out[i], _ = pl.value(name, a)
		for _, v := range s.Volumes {
			rest, ok := strings.CutPrefix(a, v.Target)
			if v.Type != types.VolumeTypeBind || !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
				continue
			}
			source := v.Source
			if m, ok := pl.mounts[v.Target]; ok {
				source = m
			}
			out[i] = source + rest
		}
	}
	return out
}

// databases are the Postgres databases the services' settings name (the
// postgres service's POSTGRES_DB and deploy/postgres/init.sql's, in
// compose), in name order.
func (pl *plan) databases() []string {
	var dbs []string
	for _, s := range pl.project.Services {
		for _, v := range s.Environment {
			if v == nil {
				continue
			}
			u, err := url.Parse(*v)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				continue
			}
			if t, ok := pl.project.Services[u.Hostname()]; ok && kindOf(t) == postgresStore {
				dbs = append(dbs, strings.TrimPrefix(u.Path, "/"))
			}
		}
	}
	slices.Sort(dbs)
	return slices.Compact(dbs)
}

// startOrder is the order to start the commands of the platform (the
// services without a profile) in: each after what it depends on, as
// compose does, and in name order otherwise.
func (pl *plan) startOrder() ([]string, error) {
	var waiting []string
	for _, name := range pl.named(binary) {
		if len(pl.project.Services[name].Profiles) == 0 {
			waiting = append(waiting, name)
		}
	}
	started := map[string]bool{}
	var order []string
	for len(waiting) > 0 {
		var next []string
		for _, name := range waiting {
			ready := true
			for dep := range pl.project.Services[name].DependsOn {
				if kindOf(pl.project.Services[dep]) == binary && !started[dep] {
					ready = false
				}
			}
			if ready {
				order = append(order, name)
				started[name] = true
			} else {
				next = append(next, name)
			}
		}
		if len(next) == len(waiting) {
			return nil, fmt.Errorf("split: services depend on each other in a cycle: %v", next)
		}
		waiting = next
	}
	return order, nil
}

// binaryOf is the file name of service name's command in the build
// directory.
func (pl *plan) binaryOf(name string) string {
	return filepath.Base(*pl.project.Services[name].Build.Args["CMD"])
}

// commands are the package directories compose builds its images from.
func commands(p *types.Project) []string {
	var out []string
	for _, s := range p.Services {
		if kindOf(s) == binary {
			out = append(out, *s.Build.Args["CMD"])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
