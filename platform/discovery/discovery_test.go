package discovery

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/testing/consultest"
)

// testServer is one instance of a gRPC service: the standard health
// service, counting the test's calls it answers, announced to Consul.
type testServer struct {
	srv      *grpc.Server
	lis      net.Listener
	calls    atomic.Int64
	announce context.CancelFunc
	done     chan error
}

// mustStartServer serves an instance of service on a free port and
// announces it through c until stopped.
func mustStartServer(t *testing.T, c *Consul, service string) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{lis: lis, done: make(chan error, 1)}
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		// Consul's health checks call the same method every
		// CheckInterval, on every instance, routed or not: only the
		// test's own calls say where the resolver sends traffic.
		if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(testCallKey)) > 0 {
			s.calls.Add(1)
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s.srv, health.NewServer())
	go s.srv.Serve(lis)
	ctx, cancel := context.WithCancel(context.Background())
	s.announce = cancel
	go func() { s.done <- c.Announce(service, lis)(ctx) }()
	t.Cleanup(func() {
		s.announce()
		s.kill()
	})
	return s
}

// stop shuts the instance down as a service does: deregister, then stop.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	s.announce()
	if err := <-s.done; err != nil {
		t.Errorf("announce: %v", err)
	}
	s.srv.Stop()
}

// kill stops serving without deregistering, as a crash would.
func (s *testServer) kill() { s.srv.Stop() }

// testCallKey marks the test's calls in their metadata.
const testCallKey = "x-test-call"

func mustOpen(t *testing.T, f *consultest.Server) *Consul {
	t.Helper()
	c, err := Open(Config{ConsulAddr: f.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.retryMin, c.retryMax = 10*time.Millisecond, 50*time.Millisecond
	return c
}

// callsReach makes calls through cc until every instance of want answers
// and none of the others does in a run of calls, and fails the test if that
// does not happen within the deadline.
func callsReach(t *testing.T, cc *grpc.ClientConn, all []*testServer, want ...*testServer) {
	t.Helper()
	client := healthpb.NewHealthClient(cc)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		before := make([]int64, len(all))
		for i, s := range all {
			before[i] = s.calls.Load()
		}
		failed := 0
		for range 6 * len(all) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ctx = metadata.AppendToOutgoingContext(ctx, testCallKey, "1")
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				failed++
			}
			cancel()
		}
		ok := failed == 0
		for i, s := range all {
			got := s.calls.Load() > before[i]
			if got != slices.Contains(want, s) {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got []int64
	for _, s := range all {
		got = append(got, s.calls.Load())
	}
	t.Fatalf("calls never settled on the %d expected instances (calls per instance: %v)", len(want), got)
}

// The resolver follows real gRPC servers coming and going: calls spread
// round-robin over every healthy instance, leave one that deregisters and
// one that dies without deregistering (its health check fails), and reach
// one that starts later.
func TestResolverFollowsInstancesComingAndGoing(t *testing.T) {
	f := consultest.MustStart(t)
	c := mustOpen(t, f)
	s1, s2, s3 := mustStartServer(t, c, "echo"), mustStartServer(t, c, "echo"), mustStartServer(t, c, "echo")
	other := mustStartServer(t, c, "other")
	cc, err := c.Dial("consul://echo")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	all := []*testServer{s1, s2, s3, other}

	callsReach(t, cc, all, s1, s2, s3)

	s2.stop(t)
	callsReach(t, cc, all, s1, s3)

	s3.kill()
	callsReach(t, cc, all, s1)

	s4 := mustStartServer(t, c, "echo")
	all = append(all, s4)
	callsReach(t, cc, all, s1, s4)
}

// Several clients share one agent without disturbing each other, under
// the race detector.
func TestResolverManyClients(t *testing.T) {
	f := consultest.MustStart(t)
	c := mustOpen(t, f)
	s1, s2 := mustStartServer(t, c, "echo"), mustStartServer(t, c, "echo")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			cc, err := c.Dial("consul:///echo")
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			callsReach(t, cc, []*testServer{s1, s2}, s1, s2)
		})
	}
	wg.Wait()
}

func TestAnnounceRegistersAGRPCCheckAndDeregisters(t *testing.T) {
	f := consultest.MustStart(t)
	c := mustOpen(t, f)
	s := mustStartServer(t, c, "inventory")
	_, port, _ := net.SplitHostPort(s.lis.Addr().String())
	id := "inventory-127.0.0.1-" + port
	waitFor(t, "registration", func() bool { return slices.Equal(f.Registered(), []string{id}) })
	reg, _ := f.Registration(id)
	if got, want := reg.Check.GRPC, "127.0.0.1:"+port; got != want {
		t.Errorf("check target = %q, want %q", got, want)
	}
	if got, want := reg.Check.DeregisterCriticalServiceAfter, deregisterAfter; got != want {
		t.Errorf("deregister after = %q, want %q", got, want)
	}
	s.stop(t)
	if got := f.Registered(); len(got) != 0 {
		t.Errorf("registered after stop = %v, want none", got)
	}
}

// A process that stops while Consul is still answering its registration
// (the registration made, the answer not yet read) must not leave the
// instance behind: Announce deregisters it all the same.
func TestAnnounceStoppedMidRegistrationLeavesNothing(t *testing.T) {
	f := consultest.MustStart(t)
	target, err := url.Parse(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	// The register call reaches the fake, but its answer is held until
	// the caller gives up.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/agent/service/register" {
			forward.ServeHTTP(w, r)
			return
		}
		forward.ServeHTTP(httptest.NewRecorder(), r.Clone(context.WithoutCancel(r.Context())))
		<-r.Context().Done()
	}))
	defer slow.Close()
	c, err := Open(Config{ConsulAddr: strings.TrimPrefix(slow.URL, "http://"), AdvertiseHost: "127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Announce("inventory", lis)(ctx) }()
	waitFor(t, "registration reaching consul", func() bool { return len(f.Registered()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("announce: %v", err)
	}
	if got := f.Registered(); len(got) != 0 {
		t.Errorf("registered after stop = %v, want none", got)
	}
}

// KVOnly (Kubernetes) reads the switches but leaves the catalogue alone.
func TestKVOnlyRegistersNothingAndStillWatches(t *testing.T) {
	f := consultest.MustStart(t)
	c, err := Open(Config{ConsulAddr: f.Addr(), AdvertiseHost: "127.0.0.1", KVOnly: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	// The worker returns at once, its context still open: nothing to keep
	// registered, nothing to deregister.
	if err := c.Announce("inventory", lis)(context.Background()); err != nil {
		t.Fatalf("announce: %v", err)
	}
	if got := f.Registered(); len(got) != 0 {
		t.Errorf("registered = %v, want none", got)
	}
	f.Put("flashsale/payment/channels/wechat", `{"weight":0,"enabled":false}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan map[string]string, 1)
	go func() {
		_ = c.WatchPrefix(ctx, "flashsale/payment/channels/", func(kv map[string]string) { got <- kv })
	}()
	select {
	case kv := <-got:
		if want := map[string]string{"wechat": `{"weight":0,"enabled":false}`}; !maps.Equal(kv, want) {
			t.Errorf("watched %v, want %v", kv, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no switches read")
	}
}

func TestWatchPrefixFollowsKeysAndDeletes(t *testing.T) {
	f := consultest.MustStart(t)
	c := mustOpen(t, f)
	f.Put("flashsale/gateway/seckill_closed", "true")
	f.Put("flashsale/other/x", "1")
	got := make(chan map[string]string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.WatchPrefix(ctx, "flashsale/gateway/", func(kv map[string]string) { got <- kv }) }()

	steps := []struct {
		name   string
		change func()
		want   map[string]string
	}{
		{"initial", func() {}, map[string]string{"seckill_closed": "true"}},
		{"put", func() { f.Put("flashsale/gateway/rate/seckill", "100/200") }, map[string]string{"seckill_closed": "true", "rate/seckill": "100/200"}},
		{"unrelated", func() { f.Put("flashsale/other/x", "2"); f.Put("flashsale/gateway/seckill_closed", "false") }, map[string]string{"seckill_closed": "false", "rate/seckill": "100/200"}},
		{"delete", func() { f.Delete("flashsale/gateway/seckill_closed") }, map[string]string{"rate/seckill": "100/200"}},
	}
	for _, st := range steps {
		st.change()
		select {
		case kv := <-got:
			if !maps.Equal(kv, st.want) {
				t.Fatalf("%s: got %v, want %v", st.name, kv, st.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no update", st.name)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
}

// Behind Consul's ACLs a process reads the switches with its token, and
// one without the token reads nothing: its watch keeps retrying and
// never applies a value.
func TestTokenIsPresented(t *testing.T) {
	const token = "0f6c1d2e-9a4b-4c3d-8e7f-5a6b7c8d9e0f"
	f := consultest.MustStart(t)
	f.RequireToken(token)
	f.Put("flashsale/gateway/seckill_closed", "true")
	watch := func(token string) (<-chan map[string]string, func()) {
		c, err := Open(Config{ConsulAddr: f.Addr(), AdvertiseHost: "127.0.0.1", CheckInterval: 20 * time.Millisecond, Token: token}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.retryMin, c.retryMax = 10*time.Millisecond, 50*time.Millisecond
		got := make(chan map[string]string, 16)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.WatchPrefix(ctx, "flashsale/gateway/", func(kv map[string]string) { got <- kv })
		}()
		return got, func() { cancel(); <-done }
	}
	withToken, stop := watch(token)
	defer stop()
	select {
	case kv := <-withToken:
		if kv["seckill_closed"] != "true" {
			t.Fatalf("with the token: %v", kv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("with the token: no read")
	}
	anonymous, stopAnonymous := watch("")
	defer stopAnonymous()
	select {
	case kv := <-anonymous:
		t.Fatalf("without the token the switches were read: %v", kv)
	case <-time.After(300 * time.Millisecond): // several retries, all refused
	}
}

func TestWithoutConsulEverythingFallsBack(t *testing.T) {
	c, err := Open(ConfigFromEnv(config.FromMap(nil)), nil)
	if err != nil || c != nil {
		t.Fatalf("Open without an address = %v, %v; want nil, nil", c, err)
	}
	if err := c.Announce("x", nil)(context.Background()); err != nil {
		t.Errorf("Announce: %v", err)
	}
	called := false
	if err := c.WatchPrefix(context.Background(), "p/", func(map[string]string) { called = true }); err != nil || called {
		t.Errorf("WatchPrefix = %v (applied %v), want nil and no call", err, called)
	}
	cc, err := c.Dial("127.0.0.1:1")
	if err != nil {
		t.Fatalf("Dial a static address: %v", err)
	}
	cc.Close()
}

func TestConfigFromEnv(t *testing.T) {
	const token = "0f6c1d2e-9a4b-4c3d-8e7f-5a6b7c8d9e0f"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"defaults", nil, false},
		{"address and token", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500", "FLASHSALE_CONSUL_TOKEN": token}, false},
		{"address without a token", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500"}, true},
		{"address with a placeholder token", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500", "FLASHSALE_CONSUL_TOKEN": "REPLACE-ME"}, true},
		{"address in development, no token", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500", config.DevVar: "true"}, false},
		{"not host:port", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul", "FLASHSALE_CONSUL_TOKEN": token}, true},
		{"interval too short", map[string]string{"FLASHSALE_CONSUL_CHECK_INTERVAL": "10ms"}, true},
		{"kv only", map[string]string{"FLASHSALE_CONSUL_ADDR": "consul:8500", "FLASHSALE_CONSUL_TOKEN": token, "FLASHSALE_CONSUL_KV_ONLY": "true"}, false},
		{"kv only not a bool", map[string]string{"FLASHSALE_CONSUL_KV_ONLY": "sometimes"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := config.FromMap(tt.env)
			ConfigFromEnv(env)
			if got := env.Err() != nil; got != tt.wantErr {
				t.Errorf("error = %v, want error %v", env.Err(), tt.wantErr)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Without FLASHSALE_ADVERTISE_HOST an instance advertises an address the
// others can dial: not loopback, and its check targets the same place.
func TestAnnounceAdvertisesAReachableAddress(t *testing.T) {
	f := consultest.MustStart(t)
	c := mustOpen(t, f)
	c.cfg.AdvertiseHost = ""
	lis, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	reg, err := c.registration("order", lis)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(reg.Address); ip != nil && ip.IsLoopback() {
		t.Errorf("advertised %s, a loopback address", reg.Address)
	}
	if got, want := reg.Check.GRPC, net.JoinHostPort(reg.Address, strconv.Itoa(reg.Port)); got != want {
		t.Errorf("check target %s, want the advertised %s", got, want)
	}
}
