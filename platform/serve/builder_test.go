package serve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// closed reports whether lis was closed: an open one times out instead.
func closed(t *testing.T, lis net.Listener) bool {
	t.Helper()
	if err := lis.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second)); err != nil {
		return errors.Is(err, net.ErrClosed)
	}
	c, err := lis.Accept()
	if c != nil {
		c.Close()
	}
	return errors.Is(err, net.ErrClosed)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// get answers the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// start runs b until the test ends and returns what Run returned then.
func start(t *testing.T, b *serve.Builder) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// A built process serves gRPC (with the health service) and the admin
// endpoints with its checks, metrics and extra routes, runs its workers,
// and stops them all when its context ends.
func TestBuilderServesWhatWasAdded(t *testing.T) {
	grpcLis, httpLis := listen(t), listen(t)
	b, err := serve.New(serve.Spec{Name: "svc", GRPCListener: grpcLis, HTTPListener: httpLis, Errors: errcode.Table{}})
	if err != nil {
		t.Fatal(err)
	}
	if b.GRPC == nil || b.Registry == nil || b.Log == nil {
		t.Fatalf("builder without its parts: %+v", b)
	}
	calls := prometheus.NewCounter(prometheus.CounterOpts{Name: "svc_things_total", Help: "Things."})
	b.Registry.MustRegister(calls)
	calls.Add(3)
	b.AddCheck("store", func(context.Context) error { return errors.New("store down") })
	b.Handle("POST /poke", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	running, ended := make(chan struct{}), make(chan struct{})
	b.AddWorker(func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		close(ended)
		return nil
	})
	stop := start(t, b)
	<-running

	base := "http://" + httpLis.Addr().String()
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "svc_things_total 3") {
		t.Errorf("/metrics lacks the process's counter:\n%s", body)
	}
	if code, body := get(t, base+telemetry.DependenciesPath); code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Errorf("%s: %d %s; want the failing check reported", telemetry.DependenciesPath, code, body)
	}
	resp, err := http.Post(base+"/poke", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /poke: %d, want the mounted route's 202", resp.StatusCode)
	}

	cc, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health: %v, %v; want SERVING", h, err)
	}

	if err := stop(); err != nil {
		t.Errorf("Run after its context ended: %v", err)
	}
	select {
	case <-ended:
	default:
		t.Error("the worker was still running when Run returned")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after Run returned")
	}
}

// When the HTTP listener cannot be opened, Run closes the gRPC listener
// it already had, whether handed in or opened itself, and serves nothing.
func TestRunClosesTheGRPCListenerWhenHTTPFails(t *testing.T) {
	taken := listen(t) // the HTTP address is in use
	t.Run("handed in", func(t *testing.T) {
		grpcLis := listen(t)
		b, err := serve.New(serve.Spec{Name: "svc", GRPCListener: grpcLis, HTTPAddr: taken.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "svc: http") {
			t.Fatalf("Run = %v, want the HTTP listener's failure", err)
		}
		if !closed(t, grpcLis) {
			t.Error("the gRPC listener is still open after the failure")
		}
	})
	t.Run("opened by Run", func(t *testing.T) {
		free := listen(t)
		addr := free.Addr().String()
		free.Close()
		b, err := serve.New(serve.Spec{Name: "svc", GRPCAddr: addr, HTTPAddr: taken.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Run(context.Background()); err == nil {
			t.Fatal("Run served with its HTTP address taken")
		}
		again, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the gRPC address stayed taken after the failure: %v", err)
		}
		again.Close()
	})
}

// A worker's failure stops the whole process, and Run returns it.
func TestAFailingWorkerStopsTheProcess(t *testing.T) {
	grpcLis, httpLis := listen(t), listen(t)
	b, err := serve.New(serve.Spec{Name: "svc", GRPCListener: grpcLis, HTTPListener: httpLis})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("consumer lost its broker")
	b.AddWorker(func(context.Context) error { return boom })
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v, want the worker's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept serving after a worker failed")
	}
	if !closed(t, grpcLis) {
		t.Error("the gRPC listener is still open after the stop")
	}
}

// An HTTP-only process (the gateway) has no gRPC server, and a handler
// mounted on "/" answers every path, the admin ones included.
func TestHTTPOnlyServesItsOwnHandler(t *testing.T) {
	httpLis := listen(t)
	b, err := serve.New(serve.Spec{Name: "gw", HTTPOnly: true, HTTPListener: httpLis})
	if err != nil {
		t.Fatal(err)
	}
	if b.GRPC != nil {
		t.Fatal("HTTPOnly process has a gRPC server")
	}
	b.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.URL.Path) }))
	start(t, b)
	base := "http://" + httpLis.Addr().String()
	for _, path := range []string{"/api/v1/items", "/healthz"} {
		if code, body := get(t, base+path); code != http.StatusOK || body != "api "+path {
			t.Errorf("GET %s: %d %q, want the mounted handler's answer", path, code, body)
		}
	}
}
