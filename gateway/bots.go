package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
)

// Blocklist names the callers the flash-sale entry (the buy and its
// challenge) refuses with BLOCKED (黑名单): users by id, client addresses
// by address or CIDR block, devices by their DeviceHeader.
type Blocklist struct {
	Users   []int64
	IPs     []netip.Prefix
	Devices []string
}

// ParseBlocklistUsers reads a comma-separated list of user ids.
func ParseBlocklistUsers(s string) ([]int64, error) {
	var out []int64
	for _, f := range splitList(s) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("user %q: not a user id", f)
		}
		out = append(out, id)
	}
	return out, nil
}

// ParseBlocklistIPs reads a comma-separated list of addresses and CIDR
// blocks.
func ParseBlocklistIPs(s string) ([]netip.Prefix, error) { return parsePrefixes("address", s) }

// ParseBlocklistDevices reads a comma-separated list of device ids.
func ParseBlocklistDevices(s string) ([]string, error) {
	out := splitList(s)
	for _, d := range out {
		if !validClientID(d) {
			return nil, fmt.Errorf("device %q: not 1 to %d visible ASCII characters", d, maxClientIDLen)
		}
	}
	return out, nil
}

// splitList returns the non-empty, trimmed fields of a comma-separated
// list.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// blocklist is a Blocklist made fast to ask.
type blocklist struct {
	users   map[int64]bool
	ips     prefixSet
	devices map[string]bool
}

func newBlocklist(b Blocklist) *blocklist {
	l := &blocklist{users: map[int64]bool{}, ips: newPrefixSet(b.IPs), devices: map[string]bool{}}
	for _, u := range b.Users {
		l.users[u] = true
	}
	for _, d := range b.Devices {
		l.devices[d] = true
	}
	return l
}

// errBlocked is the answer to a blocklisted caller. It says which list
// matched, so an operator can tell a buyer why; it names nothing else.
func errBlocked(what string) error {
	return errorf(errcode.Blocked, "this "+what+" may not take part in flash sales")
}

// deviceOf returns the request's device id, "" when it sent none.
func deviceOf(r *http.Request) (string, error) {
	d := r.Header.Get(api.DeviceHeader)
	if d != "" && !validClientID(d) {
		return "", errorf(errcode.InvalidArgument, fmt.Sprintf("header %s: 1 to %d visible ASCII characters", api.DeviceHeader, maxClientIDLen))
	}
	return d, nil
}

// screenDevice is the flash-sale entry's first wall, before
// authentication: the blocklist's addresses and devices. It returns the
// request's device id ("" for none) for spendDevice. ip and hasIP are
// the request's client address (clientIP).
func (g *Gateway) screenDevice(r *http.Request, route string, ip netip.Addr, hasIP bool) (string, error) {
	device, err := deviceOf(r)
	if err != nil {
		return "", err
	}
	bl := g.blocked.Load()
	if device != "" && bl.devices[device] {
		g.metrics.refused.WithLabelValues(route, "blocked").Inc()
		return "", errBlocked("device")
	}
	if hasIP && bl.ips.contains(ip) {
		g.metrics.refused.WithLabelValues(route, "blocked").Inc()
		return "", errBlocked("address")
	}
	return device, nil
}

// spendDevice spends one of the device's tokens, once its request is
// authenticated: a device id is the client's to name, so a request
// without a valid token (anyone's, naming a buyer's device) spends
// nothing of that buyer's allowance.
func (g *Gateway) spendDevice(route, device string) error {
	if device == "" {
		return nil
	}
	if err := g.devices.allow(device); err != nil {
		g.metrics.refused.WithLabelValues(route, "device").Inc()
		return err
	}
	return nil
}

// screenUser refuses a blocklisted user, once authenticated.
func (g *Gateway) screenUser(route string, user int64) error {
	if g.blocked.Load().users[user] {
		g.metrics.refused.WithLabelValues(route, "blocked").Inc()
		return errBlocked("account")
	}
	return nil
}

// parsePrefixes reads a comma-separated list of addresses and CIDR
// blocks ("10.0.0.0/8, 192.168.1.7"); empty is none. what names an entry
// in errors.
func parsePrefixes(what, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		if p, err := netip.ParsePrefix(f); err == nil {
			// An IPv4 block written in its IPv6-mapped form
			// (::ffff:192.0.2.0/120) is kept as the IPv4 block, the
			// form the clients' addresses are compared in.
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s %q: not an address or CIDR block", what, f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// prefixSet says whether an address is in any of a list of CIDR blocks
// with one map lookup per distinct block length, however long the list
// (the blocklist's addresses are asked on every flash-sale request; a
// walk of the list cost a Contains per block). It matches as
// netip.Prefix.Contains does: an IPv4 address never matches an IPv6
// block, nor an IPv4-mapped IPv6 address an IPv4 one.
type prefixSet struct {
	blocks map[netip.Prefix]struct{} // each block, masked
	// v4 and v6 are the distinct block lengths of each family.
	v4, v6 []int
}

func newPrefixSet(list []netip.Prefix) prefixSet {
	s := prefixSet{blocks: make(map[netip.Prefix]struct{}, len(list))}
	for _, p := range list {
		p = p.Masked()
		s.blocks[p] = struct{}{}
		lengths := &s.v6
		if p.Addr().Is4() {
			lengths = &s.v4
		}
		if !slices.Contains(*lengths, p.Bits()) {
			*lengths = append(*lengths, p.Bits())
		}
	}
	return s
}

func (s prefixSet) contains(ip netip.Addr) bool {
	lengths := s.v6
	if ip.Is4() {
		lengths = s.v4
	}
	for _, bits := range lengths {
		if p, err := ip.Prefix(bits); err == nil {
			if _, ok := s.blocks[p]; ok {
				return true
			}
		}
	}
	return false
}
