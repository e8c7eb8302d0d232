// Package check validates the deployment files (docker-compose.yml,
// deploy/k8s, the Prometheus, collector and Grafana configurations) against
// the code: no Docker engine or Kubernetes cluster runs where the tests
// run, so the tests parse the files and check that every service, port and
// FLASHSALE_* variable they mention is one the binaries actually read and
// accept. This file holds what both the compose and the Kubernetes tests
// need: which configuration each binary reads.
package check

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/services/channelsim"
	invapp "github.com/flashsale/flashsale/services/inventory/app"
	marketingapp "github.com/flashsale/flashsale/services/marketing/app"
	orderapp "github.com/flashsale/flashsale/services/order/app"
	paymentapp "github.com/flashsale/flashsale/services/payment/app"
	productapp "github.com/flashsale/flashsale/services/product/app"
)

// Binary is a command of the platform that runs as a long-lived service.
type Binary struct {
	// Service is its name in Consul, compose and Kubernetes.
	Service string
	// Load reads its configuration (the app's ConfigFromEnv).
	Load func(*config.Env)
	// ServesGRPC says whether it serves gRPC (FLASHSALE_GRPC_ADDR) with
	// its admin port on FLASHSALE_ADMIN_ADDR; the others serve HTTP on
	// HTTPVar.
	ServesGRPC bool
	// HTTPVar names the listen address of an HTTP-only service, and
	// Probe the path its health probe reads there.
	HTTPVar, Probe string
	// Metrics says whether it serves /metrics (on its admin port, or on
	// HTTPVar's).
	Metrics bool
	// DevOnly marks a development stand-in (the channel simulator, which
	// moves no money): it refuses to start without config.DevVar, so a
	// deployment with that switch on runs it and one without must not.
	DevOnly bool
}

// grpcService is a service of the standard shape: gRPC, plus /readyz and
// /metrics on its admin port.
func grpcService(name string, load func(*config.Env)) Binary {
	return Binary{Service: name, Load: load, ServesGRPC: true, Probe: "/readyz", Metrics: true}
}

// Binaries are the services' commands by package directory. A new
// service adds its line.
var Binaries = map[string]Binary{
	"services/inventory/cmd/inventory":   grpcService("inventory", func(e *config.Env) { invapp.ConfigFromEnv(e) }),
	"services/product/cmd/product":       grpcService("product", func(e *config.Env) { productapp.ConfigFromEnv(e) }),
	"services/order/cmd/order":           grpcService("order", func(e *config.Env) { orderapp.ConfigFromEnv(e) }),
	"services/payment/cmd/payment":       grpcService("payment", func(e *config.Env) { paymentapp.ConfigFromEnv(e) }),
	"services/marketing/cmd/marketing":   grpcService("marketing", func(e *config.Env) { marketingapp.ConfigFromEnv(e) }),
	"gateway/cmd/gateway":                {Service: "gateway", Load: func(e *config.Env) { gwapp.ConfigFromEnv(e) }, HTTPVar: "FLASHSALE_HTTP_ADDR", Probe: "/readyz", Metrics: true},
	"services/channelsim/cmd/channelsim": {Service: "channelsim", Load: func(e *config.Env) { channelsim.ConfigFromEnv(e) }, HTTPVar: "FLASHSALE_CHANNELSIM_ADDR", Probe: "/admin/channels", DevOnly: true},
}

// ProbeVar is the variable holding the port b's health probe and
// /metrics are on.
func (b Binary) ProbeVar() string {
	if b.ServesGRPC {
		return "FLASHSALE_ADMIN_ADDR"
	}
	return b.HTTPVar
}

// mainVars are read by serve.Main, which every service's main calls,
// beside the app's own configuration.
var mainVars = []string{"FLASHSALE_LOG_LEVEL", "FLASHSALE_OTLP_ENDPOINT", "FLASHSALE_FLIGHT_RECORDER_DIR"}

// Reads returns the FLASHSALE_* variables b reads and the problems its
// configuration finds in env.
func (b Binary) Reads(env map[string]string) (read []string, err error) {
	e := config.FromFunc(func(name string) (string, bool) {
		read = append(read, name)
		v, ok := env[name]
		return v, ok
	})
	b.Load(e)
	read = append(read, mainVars...)
	return read, e.Err()
}

// CheckEnv reports every variable of env that b does not read, and every
// value b refuses.
func (b Binary) CheckEnv(env map[string]string) []string {
	read, err := b.Reads(env)
	var problems []string
	for name := range env {
		if strings.HasPrefix(name, "FLASHSALE_") && !slices.Contains(read, name) {
			problems = append(problems, fmt.Sprintf("%s is set but %s never reads it", name, b.Service))
		}
	}
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s refuses its configuration: %v", b.Service, err))
	}
	slices.Sort(problems)
	return problems
}

// Port returns the port of a listen address such as ":9102".
func Port(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// Endpoint is a host and port a setting points at.
type Endpoint struct {
	// Consul is set for "consul://<service>" targets (Host is the
	// service, Port 0).
	Consul bool
	Host   string
	Port   int
}

// Endpoints returns where a FLASHSALE_* value points: host:port,
// comma-separated brokers, URLs, dns:/// and consul:// targets. Values that name no
// endpoint (durations, numbers, booleans, secrets) return none.
func Endpoints(name, value string) ([]Endpoint, error) {
	value = strings.TrimPrefix(value, "dns:///")
	switch {
	case strings.HasPrefix(value, "consul://"):
		return []Endpoint{{Consul: true, Host: strings.TrimPrefix(value, "consul://")}}, nil
	case strings.HasSuffix(name, "_URL"):
		u, err := url.Parse(value)
		if err != nil {
			return nil, err
		}
		p, err := strconv.Atoi(u.Port())
		if err != nil {
			return nil, fmt.Errorf("%s=%q: no port", name, value)
		}
		return []Endpoint{{Host: u.Hostname(), Port: p}}, nil
	case strings.HasSuffix(name, "_ADDR") || strings.HasSuffix(name, "_BROKERS") || strings.HasSuffix(name, "_ENDPOINT"):
		var out []Endpoint
		for _, a := range strings.Split(value, ",") {
			h, p, err := net.SplitHostPort(strings.TrimSpace(a))
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", name, value, err)
			}
			if h == "" {
				continue // a listen address
			}
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", name, value, err)
			}
			out = append(out, Endpoint{Host: h, Port: n})
		}
		return out, nil
	}
	return nil, nil
}

// Pinned reports whether an image reference names a fixed version: a
// digest, or a tag other than "latest" that contains a digit.
func Pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash+1 {
		return false
	}
	tag := image[colon+1:]
	return tag != "latest" && strings.ContainsAny(tag, "0123456789")
}

var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?-([^}]*))?\}`)

// Interpolate resolves compose's ${NAME:-default} with nothing set in the
// environment, as on a fresh machine.
func Interpolate(s string) string {
	return interpolation.ReplaceAllString(s, "$3")
}

// RepoRoot returns the repository's root from the package's directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return filepath.Abs(filepath.Join(wd, "..", ".."))
}

// IsCommand reports whether dir (relative to root) holds a main package.
func IsCommand(root, dir string) bool {
	b, err := os.ReadFile(filepath.Join(root, dir, "main.go"))
	return err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b)
}
