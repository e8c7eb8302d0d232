package local

import (
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc/resolver"
)

// staticScheme is the gRPC target scheme of a fixed list of addresses,
// "static:///127.0.0.1:9103,127.0.0.1:9203": the gateway and the payment
// service reach the order replicas through it. Every address is an
// endpoint of the connection, and rpc.Dial's round_robin spreads calls
// over the ones connected: a killed replica's connection breaks, its
// reconnects are refused (TRANSIENT_FAILURE), and round_robin leaves it
// out until it is back. Consul's resolver (platform/discovery) does the
// same with the list of passing instances; the harness runs no Consul.
const staticScheme = "static"

// Registered once, at initialisation, as gRPC asks of resolvers.
func init() { resolver.Register(staticBuilder{}) }

// staticTarget is the gRPC target for addrs: the address itself for one,
// so a platform of one replica dials exactly as before.
func staticTarget(addrs []string) string {
	if len(addrs) == 1 {
		return addrs[0]
	}
	return staticScheme + ":///" + strings.Join(addrs, ",")
}

type staticBuilder struct{}

func (staticBuilder) Scheme() string { return staticScheme }

func (staticBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addrs := strings.Split(target.Endpoint(), ",")
	state := resolver.State{Endpoints: make([]resolver.Endpoint, len(addrs))}
	for i, a := range addrs {
		state.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
	}
	if err := cc.UpdateState(state); err != nil {
		return nil, err
	}
	return staticResolver{}, nil
}

// staticResolver has nothing to follow: the list never changes (a
// restarted replica comes back on its addresses).
type staticResolver struct{}

func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}

// wire is a replica's gRPC listener that remembers the connections it
// accepted, so a kill can break them all at once, as the kernel does when
// a process dies: the callers' calls in flight fail at once instead of
// being drained by a graceful stop.
type wire struct {
	net.Listener
	mu    sync.Mutex
	conns map[*wireConn]struct{}
	cut   bool
}

func newWire(l net.Listener) *wire { return &wire{Listener: l, conns: map[*wireConn]struct{}{}} }

func (w *wire) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &wireConn{Conn: c, w: w}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut {
		// Accepted between the kill and the server's stop: a dead
		// process answers nothing.
		c.Close()
		return wc, nil
	}
	w.conns[wc] = struct{}{}
	return wc, nil
}

// cutAll breaks every connection and any accepted from now on.
func (w *wire) cutAll() {
	w.mu.Lock()
	w.cut = true
	conns := w.conns
	w.conns = map[*wireConn]struct{}{}
	w.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type wireConn struct {
	net.Conn
	w *wire
}

func (c *wireConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}
