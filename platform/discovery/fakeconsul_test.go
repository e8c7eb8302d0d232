package discovery

import (
	"context"
	"encoding/json"
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
)

// fakeConsul is a stand-in for a Consul agent: no agent can be installed
// on this machine, so this small HTTP server speaks the subset of Consul's
// HTTP API the package uses, with Consul's semantics for it:
//
//   - PUT /v1/agent/service/register and /v1/agent/service/deregister/<id>;
//   - registered gRPC checks are run like the agent runs them (the standard
//     health service, every Interval), and an instance is passing only
//     while its check answers SERVING;
//   - GET /v1/health/service/<name>?passing and GET /v1/kv/<prefix>?recurse
//     as blocking queries: with ?index=N they wait until the state's index
//     passes N (or ?wait elapses) and answer X-Consul-Index.
//
// Tests change keys directly (put, del), as `consul kv put` would.
//
// Everything else answers 404, so a use of any other endpoint fails the
// test instead of passing by accident.
type fakeConsul struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced at every change
	services map[string]*fakeInstance
	kv       map[string][]byte
	stop     chan struct{}
	wg       sync.WaitGroup
}

type fakeInstance struct {
	reg     api.AgentServiceRegistration
	passing bool
	cancel  context.CancelFunc
}

func mustStartFakeConsul(t *testing.T) *fakeConsul {
	t.Helper()
	f := &fakeConsul{t: t, changed: make(chan struct{}), services: map[string]*fakeInstance{}, kv: map[string][]byte{}, stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agent/service/register", f.register)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", f.deregister)
	mux.HandleFunc("GET /v1/health/service/{name}", f.health)
	mux.HandleFunc("GET /v1/kv/{key...}", f.kvGet)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(f.stop)
		f.Close()
		f.wg.Wait()
	})
	return f
}

// addr is host:port of the fake agent.
func (f *fakeConsul) addr() string { return strings.TrimPrefix(f.URL, "http://") }

// bump records a change; the caller holds mu.
func (f *fakeConsul) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) register(w http.ResponseWriter, r *http.Request) {
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
	inst := &fakeInstance{reg: reg, cancel: cancel}
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
func (f *fakeConsul) check(ctx context.Context, inst *fakeInstance, interval time.Duration) {
	cc, err := grpc.NewClient(inst.reg.Check.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Errorf("fake consul: dial check %s: %v", inst.reg.Check.GRPC, err)
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

func (f *fakeConsul) deregister(w http.ResponseWriter, r *http.Request) {
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
func (f *fakeConsul) block(r *http.Request) {
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

func (f *fakeConsul) health(w http.ResponseWriter, r *http.Request) {
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

func (f *fakeConsul) kvGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.URL.Query()["recurse"]; !ok {
		http.Error(w, "the watcher lists prefixes only", http.StatusBadRequest)
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

func (f *fakeConsul) answer(w http.ResponseWriter, idx uint64, body any) {
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(body); err != nil {
		f.t.Errorf("fake consul: encode: %v", err)
	}
}

// put sets key, as `consul kv put` would.
func (f *fakeConsul) put(key, value string) {
	f.mu.Lock()
	f.kv[key] = []byte(value)
	f.bump()
	f.mu.Unlock()
}

// del deletes key, as `consul kv delete` would.
func (f *fakeConsul) del(key string) {
	f.mu.Lock()
	delete(f.kv, key)
	f.bump()
	f.mu.Unlock()
}

// registered returns the ids of the registered instances.
func (f *fakeConsul) registered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.services))
	for id := range f.services {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// registration returns the registration of id.
func (f *fakeConsul) registration(id string) (api.AgentServiceRegistration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.services[id]
	if !ok {
		return api.AgentServiceRegistration{}, false
	}
	return inst.reg, true
}
