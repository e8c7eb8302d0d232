package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// routeUnmatched labels requests that matched no route.
const routeUnmatched = "unmatched"

// requestInfo is filled in by the inner layers (the route, the caller)
// and read by the outer ones (access log, metrics) once the request is
// done.
type requestInfo struct {
	route string
	// userID and role are the token's caller, set once the token
	// verifies (before its role is checked, so a refused caller's line
	// names it too): a screen token's lines carry its admin's id and
	// the role screen, and so are told from the admin's own.
	userID int64
	role   string
	// shadow: the request is pressure-test traffic (pressuretest.go).
	shadow bool
	// code is the API error code the request was answered with (none
	// for a success): writeError sets it.
	code errcode.Code
	// outlived: a downstream call of the request ran out of its
	// deadline (writeError sets it).
	outlived bool
}

type requestInfoKey struct{}

func infoOf(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// recorder remembers the status and size of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// maxClientIDLen bounds client-chosen ids (request ids, device ids),
// which end up in log lines and in-memory tables.
const maxClientIDLen = 128

// withRequestID keeps the caller's X-Request-Id (or makes one), echoes it
// on the answer and puts it in the context, so every log line of the
// request, here and downstream, can be found by it.
func (g *Gateway) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validClientID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(telemetry.WithRequestID(r.Context(), id)))
	})
}

// validClientID accepts ids of visible ASCII only, so a client cannot
// forge log lines or bloat them.
func validClientID(id string) bool {
	return visibleASCII(id, maxClientIDLen)
}

// visibleASCII reports whether s is 1 to maxLen bytes of visible ASCII.
// A path segment or header a client sends may hold any byte; one that
// is passed on to a service must pass this first, since a protobuf
// string must be UTF-8 and a request that is not fails to serialize
// (a 500, and a failure on the service's circuit breaker).
func visibleASCII(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// metrics are the gateway's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// errorLatency times the error answers by route and API error code,
	// finer than latency at the short end: what turning a request away
	// (OVERLOADED, RATE_LIMITED, SOLD_OUT …) costs inside the gateway,
	// without the wait for a connection or a core before it arrives,
	// which a client's own figure includes.
	errorLatency *prometheus.HistogramVec
	// refused counts requests turned away by the admission limits, by
	// route and reason: "limit" (the adaptive concurrency limit),
	// "budget" (its budget guard's cap), "pressure_test", "ip"
	// (the client address's rate), "device" (the device's rate) or
	// "blocked" (the blocklist).
	refused *prometheus.CounterVec
	// shadowRequests counts pressure-test requests, which the series
	// above never count: a separate series rather than a label on them,
	// so that every existing sum (dashboards, alerts, the degrade
	// controller's figures) stays real-only without being edited.
	shadowRequests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total", Help: "HTTP requests answered, by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		// Fine at both ends of a refusal's life: a 429 takes well under
		// a millisecond, and a spike's SOLD_OUT answers fall between
		// 50 ms and 1 s, where a run is told from the next.
		errorLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_http_error_duration_seconds", Help: "Time from a request's arrival at the gateway's handler to its error answer, by route and API error code (docs/api.md's table).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .075, .1, .15, .2, .25, .35, .5, .75, 1, 2.5, 5},
		}, []string{"route", "code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_admission_refused_total", Help: "Requests refused by admission, by route and reason (429: limit, the adaptive concurrency limit; budget, its budget guard's cap; pressure_test, a pressure-test request yielding its place to real traffic or paused while the platform is degraded; ip, the client address's rate; device, the device's rate. 403: blocked, the blocklist).",
		}, []string{"route", "reason"}),
		shadowRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_shadow_requests_total", Help: "Pressure-test (X-Pressure-Test) HTTP requests answered, by route and status; never counted in gateway_http_requests_total.",
			ConstLabels: prometheus.Labels{"traffic": "shadow"},
		}, []string{"route", "status"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.errorLatency, m.refused, m.shadowRequests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

var tracer = otel.Tracer("github.com/flashsale/flashsale/gateway")

// observe starts the request's trace span (continuing the caller's trace
// when it sent one), then logs and counts the request once it is done. It
// sits outside recoverPanics, so a request that panicked is logged and
// counted with the 500 it got.
func (g *Gateway) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		info := &requestInfo{route: routeUnmatched}
		ctx = context.WithValue(ctx, requestInfoKey{}, info)
		rec := &recorder{ResponseWriter: w}

		next.ServeHTTP(rec, r.WithContext(ctx))

		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		span.SetName(info.route)
		span.SetAttributes(attribute.String("http.route", info.route), attribute.Int("http.status_code", rec.status))
		if info.shadow {
			g.metrics.shadowRequests.WithLabelValues(info.route, strconv.Itoa(rec.status)).Inc()
		} else {
			g.metrics.requests.WithLabelValues(info.route, strconv.Itoa(rec.status)).Inc()
			telemetry.Observe(ctx, g.metrics.latency.WithLabelValues(info.route), elapsed.Seconds())
			if info.code != "" {
				telemetry.Observe(ctx, g.metrics.errorLatency.WithLabelValues(info.route, string(info.code)), elapsed.Seconds())
			}
			// The degrade controller reads real buyers' answers only,
			// as it reads admission's counts: a slow pressure test is
			// no reason to switch routes off for the sale.
			if info.route == seckillRoute {
				g.degrade.observe(elapsed)
			}
		}

		// A downstream call that ran out of its deadline has the
		// process's last seconds explain why: the flight recorder keeps
		// them, when the process runs one (docs/operations.md). A slow
		// client (a body sent byte by byte) is not such a call.
		if info.outlived {
			telemetry.FlightSnapshot(ctx, "slow-request", slog.String("route", info.route),
				slog.Int("status", rec.status), telemetry.Duration(elapsed))
		}

		level := slog.LevelInfo
		if slices.Contains(opsRoutes, info.route) {
			level = slog.LevelDebug
		}
		g.access.write(ctx, level, rec.status, elapsed, func() []slog.Attr {
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", info.route),
				slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
				telemetry.Duration(elapsed), slog.String("remote", r.RemoteAddr),
			}
			if info.userID != 0 {
				attrs = append(attrs, slog.Int64("user_id", info.userID))
			}
			if info.role != "" {
				attrs = append(attrs, slog.String("role", info.role))
			}
			return attrs
		})
	})
}

// recoverPanics turns a panic into a 500 INTERNAL answer whose body says
// nothing about the cause; the cause and stack go to the log.
func (g *Gateway) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				// The server's own way of aborting a response; it
				// must reach net/http, which hangs up quietly.
				panic(p)
			}
			g.log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if rec, ok := w.(*recorder); ok && rec.status != 0 {
				// Part of the answer is out; all that is left is
				// to cut the connection so the client sees a
				// failure, not a truncated success.
				panic(http.ErrAbortHandler)
			}
			infoOf(r.Context()).code = errcode.Internal
			writeJSON(w, http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{Code: string(errcode.Internal), Message: "internal error"}})
		}()
		next.ServeHTTP(w, r)
	})
}

// dispatch routes the request. ServeMux answers unknown paths and wrong
// methods in plain text; those answers are rewritten into the API's JSON
// errors. A path that is not clean (//, /./, /../) is no API path: ServeMux
// would redirect it to the route it cleans into, with the route's pattern,
// so it goes to the error writer too, which answers its redirect 404. (An
// ingress rule on /metrics is not dodged by //metrics either.)
func (g *Gateway) dispatch(w http.ResponseWriter, r *http.Request) {
	if h, pattern := g.mux.Handler(r); pattern == "" || !cleanPath(r.URL.EscapedPath()) {
		h.ServeHTTP(&muxErrorWriter{ResponseWriter: w, log: g.log, r: r}, r)
		return
	}
	g.mux.ServeHTTP(w, r)
}

// cleanPath reports whether p is as ServeMux cleans a path: rooted, with
// no empty, . or .. element; a trailing slash is kept.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// muxErrorWriter replaces ServeMux's plain-text answers by JSON error
// bodies: 404 and 405 keep their status (and Allow header), and the
// redirects it makes to clean a path (/../ and the like) become 404s, since no
// API path needs cleaning and every non-2xx answer must carry the JSON
// error body.
type muxErrorWriter struct {
	http.ResponseWriter
	log      *slog.Logger
	r        *http.Request
	replaced bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		w.Header().Del("Location")
		w.replaced = true
		writeError(w.ResponseWriter, w.r, w.log, errorf(errcode.NotFound, "no such endpoint"))
	case http.StatusMethodNotAllowed:
		w.replaced = true
		writeError(w.ResponseWriter, w.r, w.log, &Error{
			Code: errcode.InvalidArgument, Status: http.StatusMethodNotAllowed,
			Message: "method " + w.r.Method + " is not allowed here (allowed: " + w.Header().Get("Allow") + ")",
		})
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// routeSpec says what a route requires before its handler runs.
type routeSpec struct {
	access access
	// limit is which limit the route's own local token bucket follows.
	limit limitKind
	// perUser, when set, limits each caller across replicas.
	perUser *userLimiter
	// perIP limits each client address (Gateway.ips).
	perIP bool
	// bots puts the route behind the flash-sale entry's bot wall: the
	// device limit and the blocklist.
	bots bool
	// admission, when set, is the adaptive concurrency limit the route
	// shares with its group.
	admission *admission
	// off is the degrade level from which the route answers 503 with
	// Retry-After without reaching any service (LevelNormal: never).
	off Level
	// ops marks the probes and the scrape, which answer before the
	// replica is ready (Options.Ready).
	ops bool
}

// handlerFunc is a route's handler; an error it returns is answered
// through the error table.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route registers h behind the route's middleware, in the order of the
// hot path: auth, the route's bucket, the caller's limit, the body limit.
func (g *Gateway) route(pattern string, spec routeSpec, h handlerFunc) {
	g.settingsMu.Lock()
	b := newBucket(g.limitOf(spec.limit), g.clock)
	g.buckets[spec.limit] = append(g.buckets[spec.limit], b)
	g.settingsMu.Unlock()
	g.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		infoOf(r.Context()).route = pattern
		marked, err := g.markPressureTest(r)
		if err != nil {
			writeError(w, r, g.log, err)
			return
		}
		r = marked
		if err := g.pausePressureTest(r.Context(), pattern, spec.access); err != nil {
			writeError(w, r, g.log, err)
			return
		}
		if err := g.notReady(spec); err != nil {
			writeError(w, r, g.log, err)
			return
		}
		if err := g.degraded(spec.off); err != nil {
			writeError(w, r, g.log, err)
			return
		}
		ctx, done, err := g.admit(r, pattern, spec, b)
		if err != nil {
			writeError(w, r, g.log, err)
			return
		}
		defer done()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, g.opts.MaxBodyBytes)
		if err := h(w, r); err != nil {
			writeError(w, r, g.log, err)
		}
	})
}

// notReady refuses every route but the probes while the replica waits
// for its settings (Options.Ready).
func (g *Gateway) notReady(spec routeSpec) error {
	if spec.ops || g.opts.Ready == nil {
		return nil
	}
	if err := g.opts.Ready(); err != nil {
		return &Error{Code: errcode.Unavailable, Message: "this replica is starting (" + err.Error() + "), retry later", RetryAfter: notReadyRetryAfter}
	}
	return nil
}

// notReadyRetryAfter is the Retry-After of a replica not ready yet:
// another replica, or this one once Consul answers.
const notReadyRetryAfter = time.Second

// admit applies the client address's limit (and, on the flash-sale
// entry, the device's limit and the blocklist), authenticates the caller,
// applies the route's rate limits and takes the request's place under the
// route's admission limit, returning the request's context with the
// caller in it and done, which gives the place back once the request is
// answered. The address's limit comes first, as the cheapest check, and
// then authentication, so anonymous floods cannot spend the tokens (or
// places) of real buyers.
func (g *Gateway) admit(r *http.Request, route string, spec routeSpec, b *bucket) (_ context.Context, done func(), _ error) {
	ctx := r.Context()
	info := infoOf(ctx)
	var ip netip.Addr
	var hasIP bool
	if spec.perIP && g.ips != nil || spec.bots {
		ip, hasIP = clientIP(r, g.opts.TrustedProxies) // once, for the limit and the blocklist
	}
	if spec.perIP {
		if err := g.ips.allow(ip, hasIP); err != nil {
			g.metrics.refused.WithLabelValues(route, "ip").Inc()
			return nil, nil, err
		}
	}
	var device string
	if spec.bots {
		d, err := g.screenDevice(r, route, ip, hasIP)
		if err != nil {
			return nil, nil, err
		}
		device = d
	}
	if spec.access != public {
		p, err := g.auth.authenticate(r)
		if err != nil {
			return nil, nil, err
		}
		info.userID, info.role = p.UserID, p.Role
		if g.retired(p) {
			return nil, nil, errorf(errcode.Unauthenticated, "screen token retired (issued up to the gateway's "+KeyScreenRetiredUntil+"): mint a new one")
		}
		if err := spec.access.admit(p.Role); err != nil {
			return nil, nil, err
		}
		ctx = withPrincipal(ctx, p)
		if spec.bots {
			if err := g.screenUser(route, p.UserID); err != nil {
				return nil, nil, err
			}
		}
	}
	if spec.bots {
		if err := g.spendDevice(route, device); err != nil {
			return nil, nil, err
		}
	}
	if err := b.take(); err != nil {
		return nil, nil, err
	}
	done, refusal, err := spec.admission.enter(info.shadow)
	if err != nil {
		g.metrics.refused.WithLabelValues(route, refusal).Inc()
		return nil, nil, err
	}
	if spec.perUser != nil {
		if err := g.allowUser(ctx, spec.perUser); err != nil {
			done()
			return nil, nil, err
		}
	}
	return ctx, done, nil
}

// allowUser spends one of the caller's tokens of the per-user limit l: its
// refusal, or nil when the request may go on, also when Redis cannot
// answer. The shared limit is a second line of defence behind the local
// bucket; losing Redis must not stop every sale, so the request goes on
// and the failure is logged (and telemetry.DependenciesPath reports
// Redis).
func (g *Gateway) allowUser(ctx context.Context, l *userLimiter) error {
	lctx, cancel := g.callCtx(ctx)
	err := l.allow(lctx, callerOf(ctx).UserID)
	cancel()
	if ge := (*Error)(nil); errors.As(err, &ge) {
		return err
	}
	if err != nil {
		g.log.WarnContext(ctx, "per-user rate limit unavailable, admitting the request", "err", err)
	}
	return nil
}
