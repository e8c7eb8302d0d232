package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// DefaultIPLimitKeys bounds the client addresses one replica remembers.
const DefaultIPLimitKeys = 100_000

// ipLimiter limits each client address on this replica: GCRA (the
// per-user limit's algorithm, here in memory), one theoretical arrival
// time per address. An address whose time has passed has a full bucket,
// exactly as one never seen, so it is forgotten without changing any
// answer; when the table is full anyway, arbitrary addresses go, which
// only ever gives them a fresh bucket. IPv6 clients are limited per /64,
// the block one subscriber gets, so rotating addresses within it does
// not earn new buckets.
type ipLimiter struct {
	clock   clock.Clock
	trusted []netip.Prefix

	mu sync.Mutex
	// interval is the time one request costs and tolerance how far
	// ahead of now an address's arrival time may run (burst × interval).
	interval, tolerance time.Duration
	maxKeys             int
	tat                 map[netip.Addr]time.Time
}

// newIPLimiter returns the limit l per client address, remembering at
// most maxKeys addresses, trusting X-Forwarded-For only from the trusted
// proxies. A zero RPS turns it off (nil).
func newIPLimiter(l Limit, maxKeys int, trusted []netip.Prefix, c clock.Clock) *ipLimiter {
	if l.RPS <= 0 {
		return nil
	}
	interval := time.Second / time.Duration(l.RPS)
	return &ipLimiter{
		clock: c, trusted: trusted, interval: interval, tolerance: interval * time.Duration(max(l.Burst, 1)),
		maxKeys: max(maxKeys, 1), tat: map[netip.Addr]time.Time{},
	}
}

// allow spends one of the request's client address's tokens.
func (l *ipLimiter) allow(r *http.Request) error {
	if l == nil {
		return nil
	}
	ip, ok := clientIP(r, l.trusted)
	if !ok {
		return nil // net/http always sets RemoteAddr; nothing to key on otherwise
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, seen := l.tat[ip]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(l.interval)
	if ahead := next.Sub(now); ahead > l.tolerance {
		return rateLimited("too many requests from this address", ahead-l.tolerance)
	}
	if !seen && len(l.tat) >= l.maxKeys {
		l.evict(now)
	}
	l.tat[ip] = next
	return nil
}

// evict makes room in a full table: first every address whose bucket is
// full again, then, if that freed less than an eighth, arbitrary ones
// down to seven eighths, so a table full of busy addresses is swept once
// per maxKeys/8 new ones rather than on every one.
func (l *ipLimiter) evict(now time.Time) {
	for ip, tat := range l.tat {
		if !tat.After(now) {
			delete(l.tat, ip)
		}
	}
	for ip := range l.tat {
		if len(l.tat) <= l.maxKeys-max(l.maxKeys/8, 1) {
			return
		}
		delete(l.tat, ip)
	}
}

// size is how many addresses the limiter remembers.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// clientIP is the address of the client that sent r: the connection's
// peer, unless the peer is a trusted proxy; then X-Forwarded-For is read
// from the right (each proxy appends the address it got the request
// from), past every trusted proxy, to the first address that is not one.
// Whatever a client writes into the header itself stands to the left of
// that and is never read.
func clientIP(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A proxy we trust wrote something unreadable: the last
				// address we can vouch for is the best there is.
				return ip, true
			}
			ip = hop.Unmap()
			if !isTrusted(ip, trusted) {
				return ip, true
			}
		}
	}
	return ip, true
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR
// blocks ("10.0.0.0/8, 192.168.1.7"); empty trusts none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR block", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
