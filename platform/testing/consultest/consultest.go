// Package consultest is a stand-in for a Consul agent in tests: no agent
// can be installed on the machines the tests run on, so Server speaks the
// subset of Consul's HTTP API that platform/discovery uses, with Consul's
// semantics for it. The discovery package's own tests and the services'
// registration tests share it, and deploy/local/cmd/consulapi serves it
// as a process of its own for the split platform (deploy/local/split).
package consultest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// Server is a stand-in for a Consul agent: a small HTTP server speaking
// the subset of Consul's HTTP API that platform/discovery uses, with
// Consul's semantics for it:
//
//   - PUT /v1/agent/service/register and /v1/agent/service/deregister/<id>;
//   - registered gRPC checks are run like the agent runs them (the standard
//     health service, every Interval), and an instance is passing only
//     while its check answers SERVING;
//   - GET /v1/health/service/<name>?passing and GET /v1/kv/<prefix>?recurse
//     as blocking queries: with ?index=N they wait until the state's index
//     passes N (or ?wait elapses) and answer X-Consul-Index;
//   - PUT /v1/kv/<key> with the value as the body;
//   - with RequireToken, ACLs that deny by default: a request without
//     the token (X-Consul-Token) is answered 403, as Consul answers an
//     anonymous one.
//
// Tests change keys directly (Put, Delete), as `consul kv put` would.
//
// Everything else answers 404, so a use of any other endpoint fails the
// test instead of passing by accident.
type Server struct {
	*httptest.Server
	// errorf reports what the server cannot do (a test's Errorf).
	errorf func(format string, args ...any)

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced at every change
	services map[string]*instance
	kv       map[string][]byte
	kvDown   bool   // SetKVDown
	token    string // RequireToken
	stop     chan struct{}
	wg       sync.WaitGroup
}

type instance struct {
	reg     api.AgentServiceRegistration
	passing bool
	cancel  context.CancelFunc
}

// MustStart starts a Server on a free loopback port that stops when the
// test ends; what it cannot do fails the test.
func MustStart(t testing.TB) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake consul: %v", err)
	}
	f := Serve(lis, t.Errorf)
	t.Cleanup(f.Close)
	return f
}

// Serve starts a Server on lis; errorf reports what it cannot do. Close
// stops it.
func Serve(lis net.Listener, errorf func(format string, args ...any)) *Server {
	f := &Server{errorf: errorf, changed: make(chan struct{}), services: map[string]*instance{}, kv: map[string][]byte{}, stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agent/service/register", f.register)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", f.deregister)
	mux.HandleFunc("GET /v1/health/service/{name}", f.health)
	mux.HandleFunc("GET /v1/kv/{key...}", f.kvGet)
	mux.HandleFunc("PUT /v1/kv/{key...}", f.kvPut)
	acl := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		token := f.token
		f.mu.Unlock()
		if token != "" && r.Header.Get("X-Consul-Token") != token {
			http.Error(w, "Permission denied: anonymous token lacks permission", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
	f.Server = httptest.NewUnstartedServer(acl)
	// It serves the local platform for as long as it runs, too
	// (deploy/local/cmd/consulapi): with the platform's timeouts.
	f.Config = telemetry.NewServer(acl)
	f.Listener.Close()
	f.Listener = lis
	f.Start()
	return f
}

// Close stops the server and its checks.
func (f *Server) Close() {
	close(f.stop)
	f.Server.Close()
	f.wg.Wait()
}

// Addr is host:port of the fake agent, for discovery.Config.ConsulAddr.
func (f *Server) Addr() string { return strings.TrimPrefix(f.URL, "http://") }

// bump records a change; the caller holds mu.
func (f *Server) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Server) register(w http.ResponseWriter, r *http.Request) {
	var reg api.AgentServiceRegistration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if reg.Check == nil || reg.Check.GRPC == "" {
		http.Error(w, "the platform registers every service with a gRPC check", http.StatusBadRequest)
		return
	}
	interval, err := time.ParseDuration(reg.Check.Interval)
	if err != nil {
		http.Error(w, "bad interval: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	inst := &instance{reg: reg, cancel: cancel}
	f.mu.Lock()
	if old := f.services[reg.ID]; old != nil {
		old.cancel()
	}
	f.services[reg.ID] = inst
	f.bump()
	f.mu.Unlock()
	f.wg.Go(func() { f.check(ctx, inst, interval) })
}

// check runs the instance's gRPC health check every interval, as the
// agent does; a new instance is critical until its first check passes.
func (f *Server) check(ctx context.Context, inst *instance, interval time.Duration) {
	cc, err := grpc.NewClient(inst.reg.Check.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.errorf("fake consul: dial check %s: %v", inst.reg.Check.GRPC, err)
		return
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		passing := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		f.mu.Lock()
		if f.services[inst.reg.ID] == inst && inst.passing != passing {
			inst.passing = passing
			f.bump()
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-f.stop:
			return
		case <-time.After(interval):
		}
	}
}

func (f *Server) deregister(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := f.services[r.PathValue("id")]
	if inst == nil {
		http.Error(w, "unknown service id", http.StatusNotFound)
		return
	}
	inst.cancel()
	delete(f.services, r.PathValue("id"))
	f.bump()
}

// block waits, for a request with ?index=N, until the index passes N or
// ?wait (capped at a second, to keep tests quick) elapses, and returns the
// index to answer with. The caller then reads the state under mu.
func (f *Server) block(r *http.Request) {
	want, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait := time.Second
	if d, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil && d < wait {
		wait = d
	}
	deadline := time.After(wait)
	for {
		f.mu.Lock()
		idx, changed := f.index, f.changed
		f.mu.Unlock()
		if idx > want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		case <-f.stop:
			return
		}
	}
}

func (f *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.URL.Query()["passing"]; !ok {
		http.Error(w, "the resolver asks for passing instances only", http.StatusBadRequest)
		return
	}
	f.block(r)
	f.mu.Lock()
	var out []api.ServiceEntry
	for _, inst := range f.services {
		if inst.reg.Name != r.PathValue("name") || !inst.passing {
			continue
		}
		out = append(out, api.ServiceEntry{
			Node:    &api.Node{Node: "fake", Address: "127.0.0.1"},
			Service: &api.AgentService{ID: inst.reg.ID, Service: inst.reg.Name, Address: inst.reg.Address, Port: inst.reg.Port},
		})
	}
	idx := f.index
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b api.ServiceEntry) int { return strings.Compare(a.Service.ID, b.Service.ID) })
	f.answer(w, idx, out)
}

func (f *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.URL.Query()["recurse"]; !ok {
		http.Error(w, "the watcher lists prefixes only", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	down := f.kvDown
	f.mu.Unlock()
	if down {
		// What an agent answers while its servers have no leader.
		http.Error(w, "No cluster leader", http.StatusInternalServerError)
		return
	}
	f.block(r)
	f.mu.Lock()
	var out []api.KVPair
	for k, v := range f.kv {
		if strings.HasPrefix(k, r.PathValue("key")) {
			out = append(out, api.KVPair{Key: k, Value: v})
		}
	}
	idx := f.index
	f.mu.Unlock()
	if len(out) == 0 {
		// Consul answers a prefix without keys with 404 and the index.
		w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
		w.WriteHeader(http.StatusNotFound)
		return
	}
	f.answer(w, idx, out)
}

func (f *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Put(r.PathValue("key"), string(body))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("true"))
}

func (f *Server) answer(w http.ResponseWriter, idx uint64, body any) {
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(body); err != nil {
		f.errorf("fake consul: encode: %v", err)
	}
}

// RequireToken makes the server answer 403 to every request that does
// not present token, as Consul with default-deny ACLs answers one
// without a token that grants it; "" lets every request in again.
func (f *Server) RequireToken(token string) {
	f.mu.Lock()
	f.token = token
	f.mu.Unlock()
}

// SetKVDown makes every KV read fail (500 "No cluster leader", as an
// agent answers while its servers have lost their leader) until it is
// called with false.
func (f *Server) SetKVDown(down bool) {
	f.mu.Lock()
	f.kvDown = down
	f.mu.Unlock()
}

// Put sets key, as `consul kv put` would.
func (f *Server) Put(key, value string) {
	f.mu.Lock()
	f.kv[key] = []byte(value)
	f.bump()
	f.mu.Unlock()
}

// Delete deletes key, as `consul kv delete` would.
func (f *Server) Delete(key string) {
	f.mu.Lock()
	delete(f.kv, key)
	f.bump()
	f.mu.Unlock()
}

// Registered returns the ids of the registered instances.
func (f *Server) Registered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.services))
	for id := range f.services {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Registration returns the registration of id.
func (f *Server) Registration(id string) (api.AgentServiceRegistration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.services[id]
	if !ok {
		return api.AgentServiceRegistration{}, false
	}
	return inst.reg, true
}

// Passing reports whether instance id is registered and its last gRPC
// health check answered SERVING, as Consul's health endpoint would.
func (f *Server) Passing(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.services[id]
	return ok && inst.passing
}

// MustAwaitPassing waits up to ten seconds for an instance of service
// whose gRPC check dials addr to be registered and passing, and returns
// its id; it fails the test otherwise.
func (f *Server) MustAwaitPassing(tb testing.TB, service, addr string) string {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		for id, inst := range f.services {
			if inst.reg.Name == service && inst.reg.Check.GRPC == addr && inst.passing {
				f.mu.Unlock()
				return id
			}
		}
		f.mu.Unlock()
	}
	tb.Fatalf("no instance of %s checked at %s passing after 10s (registered: %v)", service, addr, f.Registered())
	return ""
}
