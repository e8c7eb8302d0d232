// Package rpc builds the platform's gRPC servers and clients: tracing, a
// metric per method and code, panic recovery, the standard health service,
// and the conversion of domain errors to status codes through a service's
// errcode.Table, so handlers simply return their domain errors.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// Server is a gRPC server with the health service registered.
type Server struct {
	*grpc.Server
	health *health.Server
	log    *slog.Logger

	mu       sync.Mutex
	notReady bool // SetReady(false): health answers NOT_SERVING
	serving  bool // Serve has begun
}

// streamWorkers is how many long-lived goroutines a server keeps for
// running calls. Without them gRPC starts a goroutine per call, whose
// small stack is grown (copied) as the handler goes deeper: 3% of the
// CPU in the flash-sale profile (docs/performance.md). A worker keeps its
// grown stack from call to call. Calls beyond the workers busy at the
// time still get a goroutine each, so the number bounds memory, not
// concurrency; it covers the calls a spike keeps in flight at once.
const streamWorkers = 256

// NewServer returns a server whose unary handlers' errors are mapped by
// table. Register services on it, then call Serve.
func NewServer(log *slog.Logger, reg prometheus.Registerer, table errcode.Table) *Server {
	handled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total", Help: "RPCs completed on the server, by method and API error code.",
	}, []string{"method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grpc_server_handling_seconds", Help: "Server-side RPC latency by method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method"})
	reg.MustRegister(handled, latency)

	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = errcode.New(errcode.Internal, "internal error")
			}
			code := "OK"
			if err != nil {
				code = string(errcode.Of(err))
			}
			handled.WithLabelValues(info.FullMethod, code).Inc()
			took := time.Since(start)
			telemetry.Observe(ctx, latency.WithLabelValues(info.FullMethod), took.Seconds())
			// The caller stopped waiting at its deadline while the
			// handler was still at work: the process's last seconds say
			// where the time went. The caller's cancel may reach the
			// server a moment before the server's own copy of the
			// deadline, so a call cancelled within the last tenth of its
			// budget counts; one cancelled earlier (its caller gave up
			// for another reason) does not.
			if deadline, ok := ctx.Deadline(); ok && ctx.Err() != nil && deadline.Sub(start.Add(took)) < deadline.Sub(start)/10 {
				telemetry.FlightSnapshot(ctx, "rpc-deadline", slog.String("method", info.FullMethod),
					telemetry.Duration(took))
			}
		}()
		resp, err = h(ctx, req)
		if err != nil {
			if _, isStatus := status.FromError(err); !isStatus {
				mapped := table.Status(err)
				if errcode.Of(mapped) == errcode.Internal {
					log.ErrorContext(ctx, "rpc failed", "method", info.FullMethod, "err", err)
				}
				err = mapped
			}
		}
		return resp, err
	}
	s := grpc.NewServer(
		grpc.NumStreamWorkers(streamWorkers),
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(markUnary, unary),
		grpc.ChainStreamInterceptor(markStream),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	return &Server{Server: s, health: hs, log: log}
}

// SetReady tells the health service whether the process is ready to
// serve (serve.Builder follows its telemetry.Readiness with it). While
// not, every service answers NOT_SERVING: Consul's check fails, and the
// callers that find the service through Consul pass this replica by
// until it has read what it waits for. A server is ready unless told.
func (s *Server) SetReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notReady = !ready
	if s.serving {
		s.report()
	}
}

// report sets every service's health from notReady; s.mu is held.
func (s *Server) report() {
	status := healthpb.HealthCheckResponse_SERVING
	if s.notReady {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for name := range s.GetServiceInfo() {
		s.health.SetServingStatus(name, status)
	}
	s.health.SetServingStatus("", status)
}

// Serve marks every registered service SERVING (NOT_SERVING while
// SetReady holds it) and serves lis until ctx ends; then it reports
// NOT_SERVING, lets in-flight calls finish for up to grace and stops.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	s.mu.Lock()
	s.serving = true
	s.report()
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Warn("grpc graceful stop timed out; stopping", "grace", grace)
		s.Stop()
	}
	// A ctx that ends at once can stop the server before the goroutine
	// above reached Serve, which then answers ErrServerStopped (and closes
	// lis): that is the stop we asked for, not a failure.
	if err := <-errc; !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Dial returns a client connection to target (host:port or any gRPC
// resolver target) with tracing and round-robin balancing.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, PermitWithoutStream: true}),
		grpc.WithChainUnaryInterceptor(sendMarkUnary),
		grpc.WithChainStreamInterceptor(sendMarkStream),
	}
	cc, err := grpc.NewClient(target, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", target, err)
	}
	return cc, nil
}

// CallTimeout is a dial option that bounds every call on the connection
// that carries no earlier deadline, so a slow dependency cannot hold a
// buyer's request (and its goroutine) indefinitely.
func CallTimeout(d time.Duration) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// HealthCheck is a readiness check (telemetry.Check) of the service at the
// other end of cc, through the standard gRPC health service: it fails
// unless that answers SERVING.
func HealthCheck(cc *grpc.ClientConn) telemetry.Check {
	client := healthpb.NewHealthClient(cc)
	return func(ctx context.Context) error {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s: %s", cc.Target(), resp.GetStatus())
		}
		return nil
	}
}

// The pressure-test mark (platform/shadow) crosses every gRPC hop: a
// client whose context is marked sends shadow.Metadata, and the server
// marks the handler's context when the metadata is there. Every service
// dials with Dial and serves with NewServer, so none has code of its own
// for it. The mark is trusted here: only the gateway, which checks the
// load-test token, lets it in from outside.

func markedIncoming(ctx context.Context) context.Context {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(shadow.Metadata)) > 0 {
		return shadow.With(ctx)
	}
	return ctx
}

func markedOutgoing(ctx context.Context) context.Context {
	if shadow.Is(ctx) {
		return metadata.AppendToOutgoingContext(ctx, shadow.Metadata, "1")
	}
	return ctx
}

func markUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(markedIncoming(ctx), req)
}

type markedServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s markedServerStream) Context() context.Context { return s.ctx }

func markStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if ctx := markedIncoming(ss.Context()); ctx != ss.Context() {
		ss = markedServerStream{ServerStream: ss, ctx: ctx}
	}
	return h(srv, ss)
}

func sendMarkUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(markedOutgoing(ctx), method, req, reply, cc, opts...)
}

func sendMarkStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(markedOutgoing(ctx), desc, cc, method, opts...)
}
