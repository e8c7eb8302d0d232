package gateway

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings are what operators change on a running gateway: the degrade
// switches and the rate limits. They start from Options (the environment)
// and follow Consul KV when it is configured (see ParseSettings).
type Settings struct {
	// SeckillClosed closes the flash-sale entry: POST
	// /api/v1/seckill/orders answers 503 UNAVAILABLE before reaching any
	// service, except for a retry of a request this gateway accepted.
	SeckillClosed bool
	// CatalogCacheOnly answers product and activity reads (the detail
	// pages and the seckill path's activity check) from the gateway's
	// cache alone, however old, and 503 for what it never loaded: the
	// product service is left alone to recover.
	CatalogCacheOnly bool
	// Degrade is the degrade level set by hand; the effective level is
	// the higher of it and the automatic controller's (see Level), which
	// raises levels only while DegradeAuto is on.
	Degrade     Level
	DegradeAuto bool
	// Route, Seckill and User are the local per-route buckets, the
	// seckill route's bucket and the shared per-user limit.
	Route, Seckill, User Limit
	// Blocklist is who the flash-sale entry refuses with BLOCKED.
	Blocklist Blocklist
	// ScreenRetiredUntil retires every screen token issued at or
	// before it, to the second (zero: none): such a token is refused 401
	// and the streams it opened end at their next snapshot. A leaked
	// display address is retired this way without rotating the JWT
	// secret, which would retire every token. Moving it back, or
	// deleting the key, brings the tokens it retired back until they
	// expire.
	ScreenRetiredUntil time.Time
}

// The keys of Settings under the gateway's Consul KV prefix
// (flashsale/gateway/): booleans as "true"/"false", limits as "RPS/BURST"
// (e.g. "2000/4000"; "0/0" lifts the limit, except that rate/seckill
// "0/0" means "as rate/route", as in Options).
const (
	KeySeckillClosed    = "seckill_closed"
	KeyCatalogCacheOnly = "catalog_cache_only"
	KeyDegradeLevel     = "degrade_level"
	KeyDegradeAuto      = "degrade_auto"
	KeyRateRoute        = "rate/route"
	KeyRateSeckill      = "rate/seckill"
	KeyRateUser         = "rate/user"
	// The blocklist: comma-separated user ids, addresses or CIDR blocks,
	// device ids. Each key present replaces that list of the fallback.
	KeyBlockUsers   = "blocklist/users"
	KeyBlockIPs     = "blocklist/ips"
	KeyBlockDevices = "blocklist/devices"
	// KeyScreenRetiredUntil is an RFC 3339 time; the screen tokens
	// issued up to it are retired (Settings.ScreenRetiredUntil).
	KeyScreenRetiredUntil = "screen/tokens_retired_until"
)

// settingKeys are the keys ParseSettings reads; any other key under the
// prefix is reported (a misspelt key would otherwise switch nothing, and
// say nothing).
var settingKeys = []string{KeySeckillClosed, KeyCatalogCacheOnly, KeyDegradeLevel, KeyDegradeAuto,
	KeyRateRoute, KeyRateSeckill, KeyRateUser, KeyBlockUsers, KeyBlockIPs, KeyBlockDevices, KeyScreenRetiredUntil}

// ParseSettings returns the settings the keys in kv make. A key that is
// absent takes fallback's value (the environment's). A key that does not
// parse keeps last's (the settings in force), and is reported in the
// error, so one typo in Consul never switches anything the operator did
// not mean to: a blocklist, a closed sale or a tightened limit stays as
// it was. A key that is not a setting is reported too.
func ParseSettings(kv map[string]string, fallback, last Settings) (Settings, error) {
	s := fallback
	var errs []error
	for key, f := range map[string]struct{ dst, prev *bool }{
		KeySeckillClosed:    {&s.SeckillClosed, &last.SeckillClosed},
		KeyCatalogCacheOnly: {&s.CatalogCacheOnly, &last.CatalogCacheOnly},
		KeyDegradeAuto:      {&s.DegradeAuto, &last.DegradeAuto},
	} {
		setting(kv, key, f.dst, *f.prev, func(v string) (bool, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return false, errors.New("not a boolean")
			}
			return b, nil
		}, &errs)
	}
	setting(kv, KeyDegradeLevel, &s.Degrade, last.Degrade, ParseLevel, &errs)
	for key, f := range map[string]struct{ dst, prev *Limit }{
		KeyRateRoute: {&s.Route, &last.Route}, KeyRateSeckill: {&s.Seckill, &last.Seckill}, KeyRateUser: {&s.User, &last.User},
	} {
		setting(kv, key, f.dst, *f.prev, parseLimit, &errs)
	}
	setting(kv, KeyBlockUsers, &s.Blocklist.Users, last.Blocklist.Users, ParseBlocklistUsers, &errs)
	setting(kv, KeyBlockIPs, &s.Blocklist.IPs, last.Blocklist.IPs, ParseBlocklistIPs, &errs)
	setting(kv, KeyBlockDevices, &s.Blocklist.Devices, last.Blocklist.Devices, ParseBlocklistDevices, &errs)
	setting(kv, KeyScreenRetiredUntil, &s.ScreenRetiredUntil, last.ScreenRetiredUntil, ParseRetiredUntil, &errs)
	for _, key := range slices.Sorted(maps.Keys(kv)) {
		if !slices.Contains(settingKeys, key) {
			errs = append(errs, fmt.Errorf("%s: not a setting of the gateway, ignored", key))
		}
	}
	return s, errors.Join(errs...)
}

// setting sets *dst to the value under key when it is present and
// parses; a key that does not parse sets *dst to prev (the value in
// force) and adds to errs.
func setting[T any](kv map[string]string, key string, dst *T, prev T, parse func(string) (T, error), errs *[]error) {
	v, ok := kv[key]
	if !ok {
		return
	}
	x, err := parse(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s=%q: %w", key, v, err))
		*dst = prev
		return
	}
	*dst = x
}

// ParseRetiredUntil reads an RFC 3339 time (Settings.ScreenRetiredUntil);
// an empty value is none.
func ParseRetiredUntil(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time (2026-11-11T00:00:00Z)")
	}
	return t.UTC(), nil
}

// parseLimit reads "RPS/BURST".
func parseLimit(v string) (Limit, error) {
	rps, burst, ok := strings.Cut(strings.TrimSpace(v), "/")
	r, err1 := strconv.Atoi(rps)
	b, err2 := strconv.Atoi(burst)
	if l := (Limit{RPS: r, Burst: b}); ok && err1 == nil && err2 == nil && l.Valid() {
		return l, nil
	}
	return Limit{}, fmt.Errorf(`not "RPS/BURST" with integers in 0..%d`, MaxRate)
}

// limitKind says which of the Settings' limits a route's bucket follows.
type limitKind int

const (
	noLimit limitKind = iota
	routeLimit
	seckillLimit
)

// Apply switches the gateway to s at once, for every request that starts
// after it returns.
func (g *Gateway) Apply(s Settings) {
	if s.Seckill == (Limit{}) {
		s.Seckill = s.Route
	}
	g.settingsMu.Lock()
	defer g.settingsMu.Unlock()
	g.settings = s
	g.seckillClosed.Store(s.SeckillClosed)
	g.cacheOnly.Store(s.CatalogCacheOnly)
	g.degrade.manual.Store(int32(s.Degrade))
	g.degrade.automatic.Store(s.DegradeAuto)
	for _, b := range g.buckets[routeLimit] {
		b.set(s.Route)
	}
	for _, b := range g.buckets[seckillLimit] {
		b.set(s.Seckill)
	}
	g.users.set(s.User)
	g.blocked.Store(newBlocklist(s.Blocklist))
	g.screenRetiredUntil.Store(&s.ScreenRetiredUntil)
}

// retired says whether p is a screen token that
// Settings.ScreenRetiredUntil retires.
//
// A token's iat is whole seconds, so the time is read to the second too:
// a token minted in the second it names is retired with the ones before.
func (g *Gateway) retired(p principal) bool {
	if p.Role != RoleScreen {
		return false
	}
	until := g.screenRetiredUntil.Load()
	return !until.IsZero() && !p.Issued.Truncate(time.Second).After(until.Truncate(time.Second))
}

// Settings returns the settings in force.
func (g *Gateway) Settings() Settings {
	g.settingsMu.Lock()
	defer g.settingsMu.Unlock()
	return g.settings
}

// limitOf is the limit a route's bucket starts with.
func (g *Gateway) limitOf(k limitKind) Limit {
	switch k {
	case routeLimit:
		return g.settings.Route
	case seckillLimit:
		return g.settings.Seckill
	}
	return Limit{}
}
