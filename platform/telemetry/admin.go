package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
)

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors. Each service has its own, so several services can share one
// process (the demo) without their metrics colliding.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether a dependency is reachable.
type Check func(ctx context.Context) error

// dependencyReport is each dependency's state, and whether one is down.
type dependencyReport struct {
	states map[string]string
	down   bool
}

// checkDependencies runs every check at once, within a second.
func checkDependencies(ctx context.Context, dependencies map[string]Check) dependencyReport {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rep := dependencyReport{states: make(map[string]string, len(dependencies))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range dependencies {
		wg.Go(func() {
			state := "up"
			if check(ctx) != nil {
				// No error text: the gateway serves this on its public
				// port, and the text names internal addresses.
				state = "down"
			}
			mu.Lock()
			defer mu.Unlock()
			rep.states[name] = state
			rep.down = rep.down || state != "up"
		})
	}
	wg.Wait()
	return rep
}

// DependenciesPath reports the dependencies' states, for people and for
// the local platform's start-up; no probe reads it.
const DependenciesPath = "/debug/dependencies"

// AdminHandler serves /healthz (the process is alive), /readyz (the
// process can serve: 503 while ready, when not nil, returns an error),
// DependenciesPath (every dependency's check, within
// a second, made at most once a second) and /metrics (Prometheus text
// format).
//
// Readiness is shallow on purpose: a process answers /readyz once its
// configuration is loaded (ready says so: the settings an operator keeps
// in Consul KV, which a replica must not serve without) and its
// listeners are up, and stops answering
// when it drains (ServeHTTP closes the listener on shutdown). It does not
// ask the dependencies: a database, Redis or a downstream service that
// fails fails for every replica at once, and a readiness probe that
// followed it would take every pod out of its Service together, turning
// one failing dependency into a full outage with no answer at all. The
// callers' breakers and the errors' codes deal with a failing dependency
// request by request instead.
func AdminHandler(reg *prometheus.Registry, dependencies map[string]Check, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	// The report is made at most once a second, however many ask: the
	// gateway serves it on its public port, and each report calls every
	// dependency.
	reports := cache.New(time.Second, clock.Real{}, func(ctx context.Context, _ struct{}) (dependencyReport, error) {
		return checkDependencies(ctx, dependencies), nil
	})
	mux.HandleFunc("GET "+DependenciesPath, func(w http.ResponseWriter, r *http.Request) {
		rep, _ := reports.Get(r.Context(), struct{}{})
		w.Header().Set("Content-Type", "application/json")
		if rep.down {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"dependencies": rep.states})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	return mux
}

// ServeHTTP serves h on lis with NewServer's timeouts until ctx ends,
// then shuts down gracefully, letting in-flight requests finish for up
// to grace.
func ServeHTTP(ctx context.Context, log *slog.Logger, lis net.Listener, h http.Handler, grace time.Duration) error {
	srv := NewServer(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "addr", lis.Addr().String(), "err", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
