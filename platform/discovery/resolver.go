package discovery

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc/resolver"
)

// Scheme is the gRPC target scheme the resolver serves: "consul://order".
const Scheme = "consul"

// Resolver returns the gRPC resolver builder for "consul://<service>"
// targets. It follows the service's instances whose checks pass, with
// Consul blocking queries, so an instance that stops or fails its health
// check leaves the connection's address list within one check interval;
// rpc.Dial's round_robin policy spreads calls over the list.
func (c *Consul) Resolver() resolver.Builder { return &builder{c: c} }

type builder struct{ c *Consul }

func (b *builder) Scheme() string { return Scheme }

func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := target.URL.Host
	if service == "" {
		service = target.Endpoint() // consul:///order
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &consulResolver{cancel: cancel}
	r.wg.Go(func() { b.c.follow(ctx, service, cc) })
	return r, nil
}

type consulResolver struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ResolveNow does nothing: the blocking query already reports every
// change as it happens.
func (r *consulResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (r *consulResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// follow asks Consul for service's passing instances with blocking
// queries and hands every new list to cc.
func (c *Consul) follow(ctx context.Context, service string, cc resolver.ClientConn) {
	var last []string
	c.watch(ctx, "health of "+service, func(q *api.QueryOptions) (*api.QueryMeta, error) {
		entries, meta, err := c.api.Health().Service(service, "", true, q)
		if err != nil {
			return nil, err
		}
		addrs := make([]string, 0, len(entries))
		for _, e := range entries {
			host := e.Service.Address
			if host == "" {
				host = e.Node.Address
			}
			addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(e.Service.Port)))
		}
		slices.Sort(addrs)
		if last != nil && slices.Equal(addrs, last) {
			return meta, nil
		}
		last = addrs
		state := resolver.State{Endpoints: make([]resolver.Endpoint, len(addrs))}
		for i, a := range addrs {
			state.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
		}
		// An empty list is an answer too: calls then fail fast as
		// UNAVAILABLE instead of going to instances that are gone.
		if err := cc.UpdateState(state); err != nil {
			c.log.Debug("consul resolver: balancer refused the update", "service", service, "instances", len(addrs), "err", err)
		}
		return meta, nil
	}, cc.ReportError)
}
