package gateway

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// DefaultIPLimitKeys bounds the client addresses one replica remembers.
const DefaultIPLimitKeys = 100_000

// keyLimiter limits each key (a client address, a device) on this
// replica: GCRA (the per-user limit's algorithm, here in memory), one
// theoretical arrival time per key. A key whose time has passed has a
// full bucket, exactly as one never seen, so it is forgotten without
// changing any answer; when the table is full anyway, arbitrary keys go,
// which only ever gives them a fresh bucket.
type keyLimiter[K comparable] struct {
	clock clock.Clock
	what  string // names the key in the refusal ("address", "device")

	mu sync.Mutex
	// interval is the time one request costs and tolerance how far
	// ahead of now a key's arrival time may run (burst × interval).
	interval, tolerance time.Duration
	maxKeys             int
	tat                 map[K]time.Time
}

// newKeyLimiter returns the limit l per key, remembering at most maxKeys
// keys. A zero RPS turns it off (nil).
func newKeyLimiter[K comparable](l Limit, maxKeys int, what string, c clock.Clock) *keyLimiter[K] {
	if l.RPS <= 0 {
		return nil
	}
	interval := time.Second / time.Duration(l.RPS)
	return &keyLimiter[K]{
		clock: c, what: what, interval: interval, tolerance: interval * time.Duration(max(l.Burst, 1)),
		maxKeys: max(maxKeys, 1), tat: map[K]time.Time{},
	}
}

// allow spends one of the key's tokens.
func (l *keyLimiter[K]) allow(key K) error {
	if l == nil {
		return nil
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, seen := l.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(l.interval)
	if ahead := next.Sub(now); ahead > l.tolerance {
		return rateLimited("too many requests from this "+l.what, ahead-l.tolerance)
	}
	if !seen && len(l.tat) >= l.maxKeys {
		l.evict(now)
	}
	l.tat[key] = next
	return nil
}

// evict makes room in a full table: first every key whose bucket is
// full again, then, if that freed less than an eighth, arbitrary ones
// down to seven eighths, so a table full of busy keys is swept once
// per maxKeys/8 new ones rather than on every one.
func (l *keyLimiter[K]) evict(now time.Time) {
	for k, tat := range l.tat {
		if !tat.After(now) {
			delete(l.tat, k)
		}
	}
	for k := range l.tat {
		if len(l.tat) <= l.maxKeys-max(l.maxKeys/8, 1) {
			return
		}
		delete(l.tat, k)
	}
}

// size is how many keys the limiter remembers.
func (l *keyLimiter[K]) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// ipLimiter limits each client address on this replica. IPv6 clients
// are limited per /64, the block one subscriber gets, so rotating
// addresses within it does not earn new buckets.
type ipLimiter struct {
	*keyLimiter[netip.Addr]
}

// newIPLimiter returns the limit l per client address, remembering at
// most maxKeys addresses. A zero RPS turns it off (nil).
func newIPLimiter(l Limit, maxKeys int, c clock.Clock) *ipLimiter {
	keys := newKeyLimiter[netip.Addr](l, maxKeys, "address", c)
	if keys == nil {
		return nil
	}
	return &ipLimiter{keyLimiter: keys}
}

// allow spends one of the client address ip's tokens (clientIP's
// answer; ok false, for a request without one, passes: net/http always
// sets RemoteAddr, so there is nothing to key on otherwise).
func (l *ipLimiter) allow(ip netip.Addr, ok bool) error {
	if l == nil || !ok {
		return nil
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return l.keyLimiter.allow(ip)
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
func ParseTrustedProxies(s string) ([]netip.Prefix, error) { return parsePrefixes("trusted proxy", s) }
