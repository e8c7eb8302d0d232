// Package sizing works out, from a sale's expected users, how many
// instances of each part of the platform it needs: the requests each
// endpoint gets on average and at the peak (the 2/8 rule, a peak factor
// from history, or an opening-second burst), divided by what one instance
// was measured to carry on this machine, with headroom (docs/sizing.md).
package sizing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	local "github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// Plan is a sale's expected traffic: who comes, what each visitor and
// each order asks for, and how the traffic bunches up in time.
type Plan struct {
	Name string `yaml:"name"`
	// Users is the user base (DAU or the sale's audience); VisitShare of
	// them visit the sale and Conversion of the visitors get an order.
	Users      int64    `yaml:"users"`
	VisitShare *float64 `yaml:"visit_share"`
	Conversion *float64 `yaml:"conversion"`
	// Window is the time the traffic is spread over (24h for a day).
	Window scenario.Duration `yaml:"window"`
	Peak   Peak              `yaml:"peak"`
	// PerVisit is requests per visitor (detail, activity, buy: attempts
	// with retries); PerOrder requests per order (order, pay).
	PerVisit map[string]float64 `yaml:"per_visit"`
	PerOrder map[string]float64 `yaml:"per_order"`
	// HotSaleShare is the share of buys that go to the busiest sale, whose
	// stock lives on one Redis slot (default 1: one sale).
	HotSaleShare *float64 `yaml:"hot_sale_share"`
	// ReadCacheHit is the share of detail and activity reads the
	// gateway's per-replica cache answers without calling product
	// (default 0: every read reaches product).
	ReadCacheHit *float64 `yaml:"read_cache_hit"`
	// Headroom multiplies every peak before dividing (default 1.5).
	Headroom float64 `yaml:"headroom"`
	// ResponseTime is the latency for Little's law (default 50ms, the
	// bound of the measured capacity).
	ResponseTime scenario.Duration `yaml:"response_time"`
	// Capacity overrides what one instance carries, per component.
	Capacity map[string]float64 `yaml:"capacity"`
}

// Peak says how the window's traffic bunches: Share of it arrives within
// Time (a share of the window) or within Span (an absolute time, e.g.
// the opening second), and the busiest second is Factor times that
// period's average (default 1).
type Peak struct {
	Share  float64           `yaml:"share"`
	Time   float64           `yaml:"time"`
	Span   scenario.Duration `yaml:"span"`
	Factor float64           `yaml:"factor"`
}

// Endpoint is a route the plan counts requests of.
type Endpoint struct {
	Name, Route string
	PerOrder    bool
}

// Endpoints the plan may name, in the order they are printed, with the
// route each stands for and whether it is counted per visit or per order.
var Endpoints = []Endpoint{
	{"detail", "GET /api/v1/products/{sku_id}", false},
	{"activity", "GET /api/v1/activities/{activity_id}", false},
	{"buy", "POST /api/v1/seckill/orders", false},
	{"order", "GET /api/v1/orders/{order_id}", true},
	{"pay", "POST /api/v1/orders/{order_id}/pay", true},
}

// OrdersRow is the extra row of Result.Endpoints for the accepted orders:
// one Kafka message each.
const OrdersRow = "orders"

// Component is a part of the platform sized in Unit, loaded by the
// peaks of Rows.
type Component struct {
	Name, Unit string
	Rows       []string
}

// Components, in the order they are printed, with the rows whose peaks
// load them.
var Components = []Component{
	{"gateway", "replicas", []string{"detail", "activity", "buy", "order", "pay"}},
	{"product", "replicas", []string{"detail", "activity"}},
	{"order", "replicas", []string{"buy", "order"}},
	{"inventory", "replicas", []string{"buy"}},
	{"payment", "replicas", []string{"pay"}},
	{"redis", "primaries", []string{"buy"}},
	{"kafka", "partitions", []string{OrdersRow}},
}

// Capacity is what one instance of a component carries, per second, and
// where the figure comes from.
type Capacity struct {
	PerSec float64
	Source string
}

// The defaults, from docs/benchmarks.md.
const (
	// pathPerSec is the flash-sale path's p99 ≤ 50 ms capacity, capacity
	// run of 7b2e680: the whole platform, its Redis, Postgres and the load
	// generator on 2 cores.
	pathPerSec = 2952
	// inventoryPerSec is make bench's Reserve through the inventory
	// service (gRPC → Go → Lua), 64 clients.
	inventoryPerSec = 19429
	// ceilingPerSec is make bench's redis-benchmark EVALSHA reserve.lua.
	ceilingPerSec = 34303
)

// DefaultCapacities are the per-instance figures measured on this machine
// (docs/benchmarks.md), used where neither a report nor the plan gives
// one.
func DefaultCapacities() map[string]Capacity {
	return capacitiesFrom(pathPerSec, "capacity run 7b2e680 (docs/benchmarks.md)",
		ceilingPerSec, "make bench ceiling (docs/benchmarks.md)")
}

// capacitiesFrom derives every component's capacity from the flash-sale
// path's figure and the Redis ceiling.
func capacitiesFrom(path float64, pathSrc string, ceiling float64, ceilingSrc string) map[string]Capacity {
	parts := local.StackConfig(nil).Partitions
	return map[string]Capacity{
		"gateway":   {path, pathSrc},
		"order":     {path, pathSrc},
		"product":   {path, "not measured: the flash-sale path's figure, " + pathSrc},
		"payment":   {path, "not measured: the flash-sale path's figure, " + pathSrc},
		"inventory": {inventoryPerSec, "make bench, Reserve through the service (docs/benchmarks.md)"},
		"redis":     {ceiling, ceilingSrc},
		"kafka": {path / float64(parts), fmt.Sprintf("derived: one order consumer stored the %s over the local stack's %d partitions",
			pathSrc, parts)},
	}
}

// CapacitiesFromReport reads a replay's report.json (make demo writes
// loadtest/out/report.json): its p99 ≤ 50 ms capacity for the services on
// the flash-sale path and its redis-benchmark ceiling for Redis.
func CapacitiesFromReport(path string) (map[string]Capacity, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var r result.Replay
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if r.Capacity.PerSec <= 0 {
		return nil, fmt.Errorf("report %s: no capacity: no %d s window of buys had p99 ≤ %g ms (replay loadtest/scenarios/capacity.yaml)",
			path, r.Capacity.Window, r.Capacity.P99Bound)
	}
	if r.Ceiling == nil || r.Ceiling.PerSec <= 0 {
		return nil, fmt.Errorf("report %s: no redis-benchmark ceiling (make demo measures it unless -ceiling=false)", path)
	}
	return capacitiesFrom(r.Capacity.PerSec,
		fmt.Sprintf("%s, scenario %s, p99 %.1f ms", path, r.Scenario, r.Capacity.P99),
		r.Ceiling.PerSec, path+" ceiling"), nil
}

// Load reads and validates a plan file; unknown fields are errors.
func Load(path string) (*Plan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	p, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes and validates a plan, filling in its defaults.
func Parse(raw []byte) (*Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func share(name string, v *float64, zeroOK bool) error {
	switch {
	case v == nil:
		return fmt.Errorf("%s: missing (a share between 0 and 1)", name)
	case *v < 0 || *v > 1 || (*v == 0 && !zeroOK):
		return fmt.Errorf("%s: %g is not a share in (0, 1]", name, *v)
	}
	return nil
}

func (p *Plan) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.Users <= 0 {
		add("users: %d: must be at least 1", p.Users)
	}
	for _, e := range []error{share("visit_share", p.VisitShare, false), share("conversion", p.Conversion, true)} {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if p.HotSaleShare == nil {
		one := 1.0
		p.HotSaleShare = &one
	} else if e := share("hot_sale_share", p.HotSaleShare, false); e != nil {
		errs = append(errs, e)
	}
	if p.ReadCacheHit == nil {
		zero := 0.0
		p.ReadCacheHit = &zero
	} else if *p.ReadCacheHit < 0 || *p.ReadCacheHit >= 1 {
		add("read_cache_hit: %g is not a share in [0, 1)", *p.ReadCacheHit)
	}
	w := p.Window.D()
	if w <= 0 {
		add("window: missing or not positive (e.g. 24h)")
	}
	pk := &p.Peak
	if pk.Share <= 0 || pk.Share > 1 {
		add("peak.share: %g is not a share in (0, 1]", pk.Share)
	}
	switch {
	case (pk.Time == 0) == (pk.Span == 0):
		add("peak: give exactly one of time (a share of the window, 0.2 for the 2/8 rule) and span (e.g. 1s)")
	case pk.Time < 0 || pk.Time > 1:
		add("peak.time: %g is not a share in (0, 1]", pk.Time)
	case pk.Span < 0 || (w > 0 && pk.Span.D() > w):
		add("peak.span: %s is not within the window %s", pk.Span.D(), w)
	case w > 0 && pk.Share > 0 && pk.Share/p.busySpan().Seconds() < 1/w.Seconds():
		add("peak: %g of the traffic in %s is less than the window's average", pk.Share, p.busySpan())
	}
	if pk.Factor == 0 {
		pk.Factor = 1
	} else if pk.Factor < 1 {
		add("peak.factor: %g: the busiest second is at least the busy period's average (≥ 1)", pk.Factor)
	}
	if len(p.PerVisit) == 0 {
		add("per_visit: missing (requests per visitor, e.g. {detail: 10, buy: 3})")
	}
	for _, m := range []struct {
		field    string
		rates    map[string]float64
		perOrder bool
	}{{"per_visit", p.PerVisit, false}, {"per_order", p.PerOrder, true}} {
		for k, v := range m.rates {
			i := slices.IndexFunc(Endpoints, func(e Endpoint) bool { return e.Name == k })
			switch {
			case i < 0:
				add("%s.%s: not an endpoint (detail, activity, buy per visit; order, pay per order)", m.field, k)
			case Endpoints[i].PerOrder != m.perOrder && m.perOrder:
				add("%s.%s: counted per visit, not per order", m.field, k)
			case Endpoints[i].PerOrder != m.perOrder:
				add("%s.%s: counted per order, not per visit", m.field, k)
			case v < 0 || math.IsNaN(v):
				add("%s.%s: %g requests: must not be negative", m.field, k, v)
			}
		}
	}
	if p.Headroom == 0 {
		p.Headroom = 1.5
	} else if p.Headroom < 1 {
		add("headroom: %g: must be at least 1", p.Headroom)
	}
	if p.ResponseTime == 0 {
		p.ResponseTime = scenario.Duration(50 * time.Millisecond)
	} else if p.ResponseTime < 0 {
		add("response_time: must be positive")
	}
	for k, v := range p.Capacity {
		if !slices.ContainsFunc(Components, func(c Component) bool { return c.Name == k }) {
			add("capacity.%s: not a component (gateway, product, order, inventory, payment, redis, kafka)", k)
		} else if v <= 0 {
			add("capacity.%s: %g per second: must be positive", k, v)
		}
	}
	return errors.Join(errs...)
}

// busySpan is the time Peak.Share of the traffic arrives in.
func (p *Plan) busySpan() time.Duration {
	if p.Peak.Span > 0 {
		return p.Peak.Span.D()
	}
	return time.Duration(float64(p.Window.D()) * p.Peak.Time)
}

// Row is one endpoint's traffic.
type Row struct {
	Name, Route string
	Total       float64
	// AvgPerS is over the window, BusyPerS over the busy span, PeakPerS
	// the busiest second (BusyPerS × factor).
	AvgPerS, BusyPerS, PeakPerS float64
}

// Need is one component's sizing.
type Need struct {
	Name, Unit string
	PeakPerS   float64 // the peak of the rows it serves
	Needed     float64 // PeakPerS × headroom
	Capacity   Capacity
	Instances  int
}

// Result is a plan worked out.
type Result struct {
	Plan              *Plan
	Visitors, Orders  float64
	Endpoints         []Row
	Components        []Need
	InFlight          float64 // Little's law at the peak
	HotSale           float64 // the busiest sale's buys/s with headroom
	HotSalePrimaries  int     // Redis primaries' worth that sale needs on its one slot
	KafkaFromConsumer int     // partitions the order rate needs, before the order replicas' floor
}

// roundUp is the whole number of instances for x, ignoring float noise
// (36.000000001 is 36).
func roundUp(x float64) int { return int(math.Ceil(x - 1e-9)) }

// Size works a validated plan out with caps, the per-instance capacities
// (plan overrides win).
func Size(p *Plan, caps map[string]Capacity) (*Result, error) {
	r := &Result{Plan: p}
	r.Visitors = float64(p.Users) * *p.VisitShare
	r.Orders = r.Visitors * *p.Conversion
	window := p.Window.D().Seconds()
	busy := p.Peak.Share / p.busySpan().Seconds()
	row := func(name, route string, total float64) Row {
		return Row{Name: name, Route: route, Total: total, AvgPerS: total / window,
			BusyPerS: total * busy, PeakPerS: total * busy * p.Peak.Factor}
	}
	peaks := map[string]float64{}
	for _, e := range Endpoints {
		total := r.Visitors * p.PerVisit[e.Name]
		if e.PerOrder {
			total = r.Orders * p.PerOrder[e.Name]
		}
		rw := row(e.Name, e.Route, total)
		r.Endpoints = append(r.Endpoints, rw)
		peaks[e.Name] = rw.PeakPerS
		r.InFlight += rw.PeakPerS * p.ResponseTime.D().Seconds()
	}
	orders := row(OrdersRow, "accepted buys: one orders.placed message each", r.Orders)
	r.Endpoints = append(r.Endpoints, orders)
	peaks[OrdersRow] = orders.PeakPerS
	instances := map[string]int{}
	for _, c := range Components {
		capy, ok := caps[c.Name]
		if v, set := p.Capacity[c.Name]; set {
			capy, ok = Capacity{v, "the plan's capacity." + c.Name}, true
		}
		if !ok || capy.PerSec <= 0 {
			return nil, fmt.Errorf("no capacity for %s", c.Name)
		}
		n := Need{Name: c.Name, Unit: c.Unit, Capacity: capy}
		for _, rn := range c.Rows {
			n.PeakPerS += peaks[rn]
		}
		if c.Name == "product" {
			n.PeakPerS *= 1 - *p.ReadCacheHit
		}
		n.Needed = n.PeakPerS * p.Headroom
		n.Instances = max(1, roundUp(n.Needed/capy.PerSec))
		if c.Name == "kafka" {
			// Every order replica consumes; a replica without a partition
			// idles as a consumer (docs/scaling.md).
			r.KafkaFromConsumer = n.Instances
			n.Instances = max(n.Instances, instances["order"])
		}
		if c.Name == "redis" {
			r.HotSale = n.Needed * *p.HotSaleShare
			r.HotSalePrimaries = roundUp(r.HotSale / capy.PerSec)
		}
		instances[c.Name] = n.Instances
		r.Components = append(r.Components, n)
	}
	return r, nil
}
