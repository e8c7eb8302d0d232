package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// A Target is a connection the stack can put a fault on: the services'
// connections to one dependency, or a link between two services that the
// caller routes through Proxy.
type Target string

// The stack's own targets, proxied when Config.Faults is set, and the
// link the platform's harness routes through Proxy (the order service's
// calls to inventory).
const (
	Redis     Target = "redis"
	Postgres  Target = "postgres"
	Kafka     Target = "kafka"
	Inventory Target = "inventory"
)

// FaultKind is what a fault does to a connection.
type FaultKind string

// The fault kinds.
const (
	// Latency delays every answer by Fault.Latency, ± Fault.Jitter.
	Latency FaultKind = "latency"
	// Down resets every connection, new and open, as soon as it carries
	// anything: what a crashed server's host answers. (The proxy keeps
	// listening, so the port cannot be taken meanwhile.)
	Down FaultKind = "down"
	// Blackhole accepts connections and never answers: what was sent is
	// lost, and a caller without a deadline waits forever.
	Blackhole FaultKind = "blackhole"
	// Bandwidth limits the answers to Fault.RateKB kilobytes a second.
	Bandwidth FaultKind = "bandwidth"
)

// Fault is one fault on a target's connections.
type Fault struct {
	Kind            FaultKind
	Latency, Jitter time.Duration
	RateKB          int64
}

// Validate checks that the fault's parameters suit its kind.
func (f Fault) Validate() error {
	switch f.Kind {
	case Latency:
		if f.Latency <= 0 || f.Jitter < 0 || f.Jitter > f.Latency {
			return fmt.Errorf("latency fault: want latency > 0 and 0 <= jitter <= latency, got %s ± %s", f.Latency, f.Jitter)
		}
	case Bandwidth:
		if f.RateKB <= 0 {
			return fmt.Errorf("bandwidth fault: want a rate > 0 KB/s, got %d", f.RateKB)
		}
	case Down, Blackhole:
	default:
		return fmt.Errorf("fault kind %q: want latency, down, blackhole or bandwidth", f.Kind)
	}
	return nil
}

// proxies are the stack's fault proxies: Shopify's toxiproxy, run as a
// library in this process (no toxiproxy-server), one TCP proxy per target.
type proxies struct {
	server *toxiproxy.ApiServer
	mu     sync.Mutex
	byName map[Target]*proxy
}

// proxy is one target's proxy and the fault on it, if any.
type proxy struct {
	p      *toxiproxy.Proxy
	fault  *Fault
	toxics []string // names of the toxics the fault added
}

func newProxies() *proxies {
	// toxiproxy's links log through zerolog's global logger at trace
	// level; nothing else in these processes uses zerolog.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	return &proxies{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		byName: map[Target]*proxy{},
	}
}

// add starts a proxy for target in front of upstream on a free loopback
// port and returns its address.
func (ps *proxies) add(target Target, upstream string) (string, error) {
	p := toxiproxy.NewProxy(ps.server, string(target), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("localstack: proxy for %s: %w", target, err)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, dup := ps.byName[target]; dup {
		p.Stop()
		return "", fmt.Errorf("localstack: a proxy for %s exists already", target)
	}
	ps.byName[target] = &proxy{p: p}
	return p.Listen, nil
}

// toxics are the toxiproxy toxics that make each kind of fault, in both
// directions where the fault is about the link rather than the answer.
func (f Fault) toxics() []string {
	toxic := func(stream, typ string, attrs map[string]any) string {
		b, _ := json.Marshal(map[string]any{"name": typ + "_" + stream, "type": typ, "stream": stream, "attributes": attrs})
		return string(b)
	}
	switch f.Kind {
	case Latency:
		return []string{toxic("downstream", "latency", map[string]any{
			"latency": f.Latency.Milliseconds(), "jitter": f.Jitter.Milliseconds(),
		})}
	case Down:
		return []string{
			toxic("upstream", "reset_peer", map[string]any{"timeout": 0}),
			toxic("downstream", "reset_peer", map[string]any{"timeout": 0}),
		}
	case Blackhole:
		// A timeout of 0 holds the connection open and drops the data.
		return []string{
			toxic("upstream", "timeout", map[string]any{"timeout": 0}),
			toxic("downstream", "timeout", map[string]any{"timeout": 0}),
		}
	case Bandwidth:
		return []string{toxic("downstream", "bandwidth", map[string]any{"rate": f.RateKB})}
	}
	return nil
}

// set puts f on target's proxy, replacing the fault there, and returns a
// func that lifts it.
func (ps *proxies) set(target Target, f Fault) (lift func() error, err error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	px, ok := ps.byName[target]
	if !ok {
		return nil, fmt.Errorf("localstack: no fault proxy for %s (Config.Faults routes redis, postgres and kafka; Proxy adds others)", target)
	}
	if px.fault != nil {
		return nil, fmt.Errorf("localstack: %s already has a %s fault", target, px.fault.Kind)
	}
	for _, t := range f.toxics() {
		w, err := px.p.Toxics.AddToxicJson(strings.NewReader(t))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("localstack: %s fault on %s: %w", f.Kind, target, err), ps.clear(px))
		}
		px.toxics = append(px.toxics, w.Name)
	}
	px.fault = &f
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			ps.mu.Lock()
			defer ps.mu.Unlock()
			err = ps.clear(px)
		})
		return err
	}, nil
}

// clear lifts px's fault: its toxics go. ps.mu is held.
func (ps *proxies) clear(px *proxy) error {
	px.fault = nil
	var errs []error
	for _, name := range px.toxics {
		errs = append(errs, px.p.Toxics.RemoveToxic(context.Background(), name))
	}
	px.toxics = nil
	return errors.Join(errs...)
}

func (ps *proxies) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, px := range ps.byName {
		px.p.Stop()
	}
}

// Fault puts f on the connections to target until the returned lift is
// called (faults do not stack: lift one before setting another). The
// stack's targets exist when Config.Faults was set; Proxy adds others.
func (s *Stack) Fault(target Target, f Fault) (lift func() error, err error) {
	if s.faults == nil {
		return nil, errors.New("localstack: the stack was started without Config.Faults")
	}
	return s.faults.set(target, f)
}

// Faulty reports whether the stack was started with Config.Faults.
func (s *Stack) Faulty() bool { return s.faults != nil }

// Proxy puts a fault proxy named target in front of upstream (host:port)
// and returns the address to dial instead, for a link between two of the
// caller's services (the order service's link to inventory): Fault then
// acts on it.
func (s *Stack) Proxy(target Target, upstream string) (string, error) {
	if s.faults == nil {
		return "", errors.New("localstack: the stack was started without Config.Faults")
	}
	return s.faults.add(target, upstream)
}

// advertisedListener is a listener that reports another address: the
// broker tells clients to connect to its proxy, not to itself, so that
// every connection after the first metadata request still crosses the
// proxy.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }
