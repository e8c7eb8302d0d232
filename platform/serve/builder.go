package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// Spec is what differs between the processes' plumbing: their name,
// where they listen and what their gRPC errors mean. Each app.Run fills
// it from its Config.
type Spec struct {
	// Name names the process in its logs and errors, and is the service
	// it registers as in Consul ("consul://<Name>").
	Name string
	// GRPCAddr is where the gRPC server listens unless GRPCListener is
	// given (tests and the local platform hand in listeners on free ports).
	GRPCAddr     string
	GRPCListener net.Listener
	// Errors maps the gRPC handlers' domain errors to codes (rpc.NewServer).
	Errors errcode.Table
	// HTTPOnly leaves the gRPC server out: the process serves HTTP alone
	// and does not register in Consul (the gateway).
	HTTPOnly bool
	// HTTPAddr is where the HTTP server (the admin endpoints, and what
	// Handle mounts) listens unless HTTPListener is given.
	HTTPAddr     string
	HTTPListener net.Listener
	// Discovery says where Consul is; empty means static addresses and no
	// registration (discovery.Open).
	Discovery discovery.Config
	// Logger receives the process's logs; nil discards them.
	Logger *slog.Logger
	// Grace bounds the graceful shutdown (<= 0: 10s).
	Grace time.Duration
}

// Builder is one process being assembled: app.Run makes it with New,
// registers its gRPC services on GRPC, its metrics on Registry, its
// readiness checks, admin routes and workers, and calls Run.
type Builder struct {
	// Log is Spec.Logger, or a logger that discards.
	Log *slog.Logger
	// Registry holds the process's metrics, served on /metrics.
	Registry *prometheus.Registry
	// GRPC is the gRPC server, with the health service and Spec.Errors;
	// nil with Spec.HTTPOnly.
	GRPC *rpc.Server
	// Consul is the Consul client, nil without Consul (its methods then
	// fall back to static addresses).
	Consul *discovery.Consul
	// Ready holds /readyz at 503, and the gRPC health service at
	// NOT_SERVING, while a part of the process's configuration is still
	// being read (WatchSettings).
	Ready telemetry.Readiness

	spec    Spec
	checks  map[string]telemetry.Check
	routes  []route
	workers []func(context.Context) error
}

type route struct {
	pattern string
	h       http.Handler
}

// New returns the builder of spec's process. It opens nothing that needs
// closing: the listeners are opened by Run, once everything else is in
// place, so that a process is reachable only when it is ready to answer.
func New(spec Spec) (*Builder, error) {
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if spec.Grace <= 0 {
		spec.Grace = 10 * time.Second
	}
	consul, err := discovery.Open(spec.Discovery, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	b := &Builder{Log: log, Registry: telemetry.NewRegistry(), Consul: consul, spec: spec, checks: map[string]telemetry.Check{}}
	if !spec.HTTPOnly {
		b.GRPC = rpc.NewServer(log, b.Registry, spec.Errors)
	}
	return b, nil
}

// AddCheck adds a dependency to the admin endpoints' report
// (telemetry.AdminHandler): name is up while check returns nil.
func (b *Builder) AddCheck(name string, check telemetry.Check) {
	b.checks[name] = check
}

// Handle mounts h on the HTTP server. The admin endpoints (/healthz,
// /readyz, /metrics, telemetry.DependenciesPath) answer every path no
// Handle claims; a process that mounts "/" (the gateway) serves them
// itself.
func (b *Builder) Handle(pattern string, h http.Handler) {
	b.routes = append(b.routes, route{pattern, h})
}

// AddWorker adds a function that runs beside the servers (a consumer, a
// scheduler, a watch) until its context ends. An error from it stops the
// process.
func (b *Builder) AddWorker(w func(context.Context) error) {
	b.workers = append(b.workers, w)
}

// WatchSettings adds a worker that applies the keys under prefix in
// Consul KV (discovery.Consul.WatchPrefix) and holds the process not
// ready (Ready, named what) until the first answer is applied: a replica
// that starts while Consul is down would otherwise serve on its
// environment's values, which may reopen what an operator closed (a
// sale, a blocked account, a switched-off channel). Without Consul there
// is nothing to wait for: the environment's values are the settings.
func (b *Builder) WatchSettings(what, prefix string, apply func(map[string]string)) {
	if b.Consul == nil {
		return
	}
	loaded := b.Ready.Hold(what)
	b.AddWorker(func(ctx context.Context) error {
		return b.Consul.WatchPrefix(ctx, prefix, func(kv map[string]string) {
			apply(kv)
			loaded()
		})
	})
}

// Run opens the listeners (closing the first when the second fails),
// logs "<Name> serving" with the addresses and attrs, registers the gRPC
// server in Consul, and serves until ctx ends or a part fails; then it
// shuts everything down gracefully and returns the first error.
func (b *Builder) Run(ctx context.Context, attrs ...any) error {
	name := b.spec.Name
	var grpcLis net.Listener
	if b.GRPC != nil {
		lis, err := Listen(b.spec.GRPCListener, b.spec.GRPCAddr)
		if err != nil {
			return fmt.Errorf("%s: grpc: %w", name, err)
		}
		grpcLis = lis
		attrs = append([]any{"grpc", lis.Addr().String()}, attrs...)
	}
	httpLis, err := Listen(b.spec.HTTPListener, b.spec.HTTPAddr)
	if err != nil {
		err = fmt.Errorf("%s: http: %w", name, err)
		if grpcLis != nil {
			err = errors.Join(err, grpcLis.Close())
		}
		return err
	}
	attrs = append(attrs, "http", httpLis.Addr().String(), "consul", b.Consul != nil)
	workers := b.workers
	if b.GRPC != nil {
		b.Ready.Watch(b.GRPC.SetReady)
		// Registered in Consul once ready, not before: Consul drops an
		// instance whose check has failed for a minute, and Announce
		// registers once, so a replica that waited longer than that for
		// its settings would never be found.
		announce := b.Consul.Announce(name, grpcLis)
		workers = append(workers, func(ctx context.Context) error {
			if b.Ready.Wait(ctx) != nil {
				return nil // stopped before it was ready: nothing registered
			}
			return announce(ctx)
		})
	}
	b.Log.Info(name+" serving", attrs...)
	return Process{
		Log:           b.Log,
		GRPC:          b.GRPC,
		GRPCListener:  grpcLis,
		Admin:         b.handler(),
		AdminListener: httpLis,
		Workers:       workers,
		Grace:         b.spec.Grace,
	}.Run(ctx)
}

// handler is the HTTP server's handler: the routes of Handle, and the
// admin endpoints for every other path.
func (b *Builder) handler() http.Handler {
	if len(b.routes) == 1 && b.routes[0].pattern == "/" {
		return b.routes[0].h // no mux in front of the gateway's own
	}
	mux := http.NewServeMux()
	root := false
	for _, r := range b.routes {
		mux.Handle(r.pattern, r.h)
		root = root || r.pattern == "/"
	}
	if !root {
		mux.Handle("/", telemetry.AdminHandler(b.Registry, b.checks, b.Ready.Err))
	}
	return mux
}
