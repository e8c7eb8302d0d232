package payment

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/flashsale/flashsale/platform/clock"
)

// Auto asks the router to choose the channel.
const Auto = "auto"

// RouterConfig tunes the routing. Zero values take the defaults.
type RouterConfig struct {
	// Channels are the channel names, each with weight DefaultWeight and
	// enabled until changed.
	Channels []string
	// Window is how many recent calls per channel the health counts
	// (default 20).
	Window int
	// HealthyRate is the success rate under which a buyer's preferred
	// channel is no longer honoured (default 0.8).
	HealthyRate float64
	// LatencyRef halves a channel's score when its mean latency reaches
	// it (default 200ms).
	LatencyRef time.Duration
	// TripCalls and TripRatio open a breaker: at least TripCalls calls in
	// its counting interval, of which at least TripRatio failed
	// (defaults 5 and 0.5).
	TripCalls uint32
	TripRatio float64
	// OpenFor is how long an open breaker refuses calls before it lets
	// Probes calls through half-open (defaults 5s and 1). gobreaker
	// measures it on the wall clock.
	OpenFor time.Duration
	Probes  uint32
	// Clock measures call latency (default: wall clock).
	Clock clock.Clock
	// Seed seeds the weighted random choice.
	Seed uint64
}

// DefaultWeight is a channel's weight until an admin changes it.
const DefaultWeight = 100

// Breaker states as the API names them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// ChannelState is a channel's routing state.
type ChannelState struct {
	Name        string
	Weight      int64
	Enabled     bool
	Breaker     string
	SuccessRate float64
	Latency     time.Duration
	Calls       int
}

type call struct {
	ok      bool
	latency time.Duration
}

type route struct {
	name    string
	weight  int64
	enabled bool
	breaker *gobreaker.CircuitBreaker[Trade]
	recent  []call // ring of the last Window calls
	next    int
}

// Router chooses a payment's channel by weight × health and guards each
// channel with a circuit breaker. It is safe for concurrent use.
type Router struct {
	cfg    RouterConfig
	mu     sync.Mutex
	rnd    *rand.Rand
	routes map[string]*route
	names  []string
}

// NewRouter returns a router over cfg.Channels.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if len(cfg.Channels) == 0 {
		return nil, errors.New("payment: the router needs at least one channel")
	}
	if cfg.Window <= 0 {
		cfg.Window = 20
	}
	if cfg.HealthyRate <= 0 {
		cfg.HealthyRate = 0.8
	}
	if cfg.LatencyRef <= 0 {
		cfg.LatencyRef = 200 * time.Millisecond
	}
	cfg.TripCalls = cmp.Or(cfg.TripCalls, 5)
	if cfg.TripRatio <= 0 {
		cfg.TripRatio = 0.5
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 5 * time.Second
	}
	cfg.Probes = cmp.Or(cfg.Probes, 1)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	r := &Router{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1)), routes: map[string]*route{}}
	for _, name := range cfg.Channels {
		if _, dup := r.routes[name]; dup || name == "" || name == Auto {
			return nil, fmt.Errorf("payment: channel name %q empty, reserved or repeated", name)
		}
		rt := &route{name: name, weight: DefaultWeight, enabled: true}
		rt.breaker = gobreaker.NewCircuitBreaker[Trade](gobreaker.Settings{
			Name:        name,
			MaxRequests: cfg.Probes,
			Interval:    time.Minute,
			Timeout:     cfg.OpenFor,
			IsExcluded:  refused,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.Requests >= cfg.TripCalls && float64(c.TotalFailures) >= cfg.TripRatio*float64(c.Requests)
			},
			OnStateChange: func(_ string, from, to gobreaker.State) {
				if from == gobreaker.StateHalfOpen && to == gobreaker.StateClosed {
					// The probes passed: the channel starts over, so
					// the failures of its outage stop holding it back.
					r.mu.Lock()
					rt.recent, rt.next = nil, 0
					r.mu.Unlock()
				}
			},
		})
		r.routes[name] = rt
		r.names = append(r.names, name)
	}
	return r, nil
}

// Set changes a channel's weight and whether it is used, in this process.
func (r *Router) Set(name string, weight int64, enabled bool) (ChannelState, error) {
	set := ChannelSetting{Weight: weight, Enabled: enabled}
	if err := set.Validate(); err != nil {
		return ChannelState{}, fmt.Errorf("set channel %s: %w", name, err)
	}
	r.mu.Lock()
	rt, ok := r.routes[name]
	if ok {
		rt.weight, rt.enabled = set.Weight, set.Enabled
	}
	r.mu.Unlock()
	if !ok {
		return ChannelState{}, fmt.Errorf("set channel %s: %w", name, ErrNotFound)
	}
	return r.state(rt), nil
}

// Apply makes the config centre's settings the routing: each channel
// named in settings takes its setting, every other one its default
// (DefaultWeight, enabled), so a deleted key undoes its change. Settings
// of channels this router does not have are reported and ignored.
func (r *Router) Apply(settings map[string]ChannelSetting) error {
	var unknown []string
	for name := range settings {
		if _, ok := r.routes[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	r.mu.Lock()
	for name, rt := range r.routes {
		set, ok := settings[name]
		if !ok {
			set = ChannelSetting{Weight: DefaultWeight, Enabled: true}
		}
		rt.weight, rt.enabled = set.Weight, set.Enabled
	}
	r.mu.Unlock()
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("settings of unknown channels %v ignored: %w", unknown, ErrNotFound)
	}
	return nil
}

// Settings returns every channel's setting in force.
func (r *Router) Settings() map[string]ChannelSetting {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]ChannelSetting, len(r.routes))
	for name, rt := range r.routes {
		out[name] = ChannelSetting{Weight: rt.weight, Enabled: rt.enabled}
	}
	return out
}

// Has reports whether the router has a channel of that name.
func (r *Router) Has(name string) bool {
	_, ok := r.routes[name]
	return ok
}

// States returns every channel's routing state, in configuration order.
func (r *Router) States() []ChannelState {
	out := make([]ChannelState, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.state(r.routes[n]))
	}
	return out
}

func (r *Router) state(rt *route) ChannelState {
	b := breakerName(rt.breaker.State())
	r.mu.Lock()
	defer r.mu.Unlock()
	rate, lat := rt.health(r.cfg.TripCalls)
	return ChannelState{Name: rt.name, Weight: rt.weight, Enabled: rt.enabled, Breaker: b,
		SuccessRate: rate, Latency: lat, Calls: len(rt.recent)}
}

func breakerName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return BreakerOpen
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	default:
		return BreakerClosed
	}
}

// health is the success rate and mean latency of the recent calls. Under
// minCalls calls say too little to judge, and the channel counts as
// healthy: its breaker, which trips on as many calls, is what cuts off a
// channel that fails from the start. Callers hold r.mu.
func (rt *route) health(minCalls uint32) (float64, time.Duration) {
	if len(rt.recent) == 0 || len(rt.recent) < int(minCalls) {
		return 1, 0
	}
	ok, total := 0, time.Duration(0)
	for _, c := range rt.recent {
		if c.ok {
			ok++
		}
		total += c.latency
	}
	return float64(ok) / float64(len(rt.recent)), total / time.Duration(len(rt.recent))
}

// score is the channel's share of traffic: weight × success rate ×
// a latency factor that halves at LatencyRef. A half-open channel gets a
// tenth of its weight, enough for its probes; an open or disabled one
// none. Callers
// hold r.mu.
func (r *Router) score(rt *route, breaker gobreaker.State) float64 {
	if !rt.enabled || rt.weight == 0 || breaker == gobreaker.StateOpen {
		return 0
	}
	if breaker == gobreaker.StateHalfOpen {
		// The window still holds the failures that opened the breaker;
		// the probes decide now, not the window.
		return float64(rt.weight) / 10
	}
	rate, lat := rt.health(r.cfg.TripCalls)
	ref := float64(r.cfg.LatencyRef)
	return float64(rt.weight) * rate * ref / (ref + float64(lat))
}

// Candidates returns the channels to try, in order: the preferred one
// first while it is enabled, its breaker closed and its success rate
// healthy, then the others by weighted random choice. It fails with
// ErrInvalid for an unknown preference and ErrUnavailable when no channel
// can be used.
func (r *Router) Candidates(preferred string) ([]string, error) {
	if preferred == "" {
		preferred = Auto
	}
	states := make(map[string]gobreaker.State, len(r.names))
	for _, n := range r.names {
		states[n] = r.routes[n].breaker.State()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if preferred != Auto {
		rt, ok := r.routes[preferred]
		if !ok {
			return nil, fmt.Errorf("route: %w: unknown channel %q", ErrInvalid, preferred)
		}
		if rate, _ := rt.health(r.cfg.TripCalls); rt.enabled && states[preferred] == gobreaker.StateClosed && rate >= r.cfg.HealthyRate {
			out = append(out, preferred)
		}
	}
	type weighted struct {
		name  string
		score float64
	}
	var pool []weighted
	total := 0.0
	for _, n := range r.names {
		if s := r.score(r.routes[n], states[n]); s > 0 && !slices.Contains(out, n) {
			pool = append(pool, weighted{n, s})
			total += s
		}
	}
	for len(pool) > 0 {
		x := r.rnd.Float64() * total
		i := 0
		for ; i < len(pool)-1 && x >= pool[i].score; i++ {
			x -= pool[i].score
		}
		out = append(out, pool[i].name)
		total -= pool[i].score
		pool = slices.Delete(pool, i, i+1)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("route: %w: no channel is enabled and healthy", ErrUnavailable)
	}
	return out, nil
}

// refused says whether a call ended in the channel's definite refusal of
// this request (a 4xx: INVALID, CONFLICT), which is about the request,
// not the channel's health: it counts neither way. Counted as a failure,
// one buyer's refused request, tried on every channel in turn, tripped
// them all for everyone; counted as a success, a channel that refuses
// every request would stay first in the routing.
func refused(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict)
}

// Call runs fn against the channel through its breaker and records how it
// went. A call the breaker refuses fails with ErrUnavailable without
// counting against the channel's health.
func (r *Router) Call(name string, fn func() (Trade, error)) (Trade, error) {
	rt, ok := r.routes[name]
	if !ok {
		return Trade{}, fmt.Errorf("call %s: %w", name, ErrNotFound)
	}
	start := r.cfg.Clock.Now()
	t, err := rt.breaker.Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return Trade{}, fmt.Errorf("call %s: breaker %v: %w", name, err, ErrUnavailable)
	}
	if refused(err) {
		return t, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := call{ok: err == nil, latency: r.cfg.Clock.Now().Sub(start)}
	if len(rt.recent) < r.cfg.Window {
		rt.recent = append(rt.recent, c)
	} else {
		rt.recent[rt.next] = c
		rt.next = (rt.next + 1) % r.cfg.Window
	}
	return t, err
}
