package sizing

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handPlan is small enough to check by hand: 1,000,000 users, half visit,
// 10 % of visitors get an order; 80 % of an hour's traffic in 20 % of it
// (720 s), so a request total T peaks at T × 0.8 / 720 a second.
const handPlan = `
name: hand
users: 1000000
visit_share: 0.5
conversion: 0.1
window: 1h
peak: {share: 0.8, time: 0.2}
per_visit: {detail: 4, activity: 2, buy: 2}
per_order: {order: 1, pay: 1}
hot_sale_share: 0.5
headroom: 1.5
`

func handCaps() map[string]Capacity {
	caps := map[string]Capacity{}
	for name, v := range map[string]float64{"gateway": 1000, "product": 1000, "order": 1000, "inventory": 1000,
		"payment": 50, "redis": 2000, "kafka": 100} {
		caps[name] = Capacity{v, "test"}
	}
	return caps
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

func mustSize(t *testing.T, raw string, caps map[string]Capacity) *Result {
	t.Helper()
	p, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Size(p, caps)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHandCheckedExample(t *testing.T) {
	r := mustSize(t, handPlan, handCaps())
	if r.Visitors != 500000 || r.Orders != 50000 {
		t.Fatalf("visitors %g, orders %g; want 500,000 and 50,000", r.Visitors, r.Orders)
	}
	// Totals: detail 2,000,000, activity 1,000,000, buy 1,000,000, order,
	// pay and orders 50,000 each.
	wantPeak := map[string]float64{"detail": 20000.0 / 9, "activity": 10000.0 / 9, "buy": 10000.0 / 9,
		"order": 500.0 / 9, "pay": 500.0 / 9, OrdersRow: 500.0 / 9}
	for _, e := range r.Endpoints {
		if !near(e.PeakPerS, wantPeak[e.Name]) || !near(e.AvgPerS, e.Total/3600) || e.BusyPerS != e.PeakPerS {
			t.Errorf("%s: avg %g peak %g busy %g; want avg %g, peak = busy = %g", e.Name, e.AvgPerS, e.PeakPerS, e.BusyPerS, e.Total/3600, wantPeak[e.Name])
		}
	}
	// gateway: 41,000/9 × 1.5 = 6,833 → 7; product: 30,000/9 × 1.5 =
	// 5,000 exactly → 5, not 6; order: (10,000 + 500)/9 × 1.5 = 1,750 → 2;
	// inventory: 1,667 → 2; payment: 83.3 / 50 → 2; redis: 1,667 / 2,000
	// → 1; kafka: 83.3 / 100 → 1, raised to the 2 order replicas.
	want := map[string]int{"gateway": 7, "product": 5, "order": 2, "inventory": 2, "payment": 2, "redis": 1, "kafka": 2}
	for _, c := range r.Components {
		if c.Instances != want[c.Name] {
			t.Errorf("%s: %d %s (needed %g/s at %g each); want %d", c.Name, c.Instances, c.Unit, c.Needed, c.Capacity.PerSec, want[c.Name])
		}
	}
	if r.KafkaFromConsumer != 1 {
		t.Errorf("partitions for the orders alone: %d, want 1", r.KafkaFromConsumer)
	}
	// The busiest sale gets half of 1,667 buys/s with headroom: one primary.
	if !near(r.HotSale, 2500.0/3) || r.HotSalePrimaries != 1 {
		t.Errorf("hot sale %g/s on %d primaries; want 833.3 on 1", r.HotSale, r.HotSalePrimaries)
	}
	// Little's law: 41,000/9 requests a second × 50 ms.
	if !near(r.InFlight, 41000.0/9*0.05) {
		t.Errorf("in flight %g, want %g", r.InFlight, 41000.0/9*0.05)
	}
}

func TestOneSaleBeyondOnePrimary(t *testing.T) {
	caps := handCaps()
	caps["redis"] = Capacity{500, "test"}
	r := mustSize(t, strings.Replace(handPlan, "hot_sale_share: 0.5", "hot_sale_share: 1", 1), caps)
	// 1,667 buys/s with headroom on one slot at 500 a primary: 4 primaries' worth.
	if r.HotSalePrimaries != 4 {
		t.Fatalf("hot sale needs %d primaries, want 4", r.HotSalePrimaries)
	}
	var out strings.Builder
	r.Print(&out)
	if !strings.Contains(out.String(), "one primary cannot hold it; preheat it with stock_buckets: 4") {
		t.Errorf("the output does not say the sale exceeds one primary and needs 4 buckets:\n%s", out.String())
	}
	// At 50 a primary it is 34 primaries' worth, beyond the 16 buckets a
	// sale may have: only more activities spread it further.
	caps["redis"] = Capacity{50, "test"}
	r = mustSize(t, strings.Replace(handPlan, "hot_sale_share: 0.5", "hot_sale_share: 1", 1), caps)
	out.Reset()
	r.Print(&out)
	if !strings.Contains(out.String(), "more than its 16 stock buckets can spread") {
		t.Errorf("the output does not say the sale exceeds its buckets:\n%s", out.String())
	}
}

func TestReadCacheHitSparesProduct(t *testing.T) {
	r := mustSize(t, strings.Replace(handPlan, "headroom: 1.5", "headroom: 1.5\nread_cache_hit: 0.9", 1), handCaps())
	// A tenth of 30,000/9 reads a second reaches product: 333 × 1.5 = 500.
	for _, c := range r.Components {
		if c.Name == "product" && (!near(c.Needed, 500) || c.Instances != 1) {
			t.Errorf("product needs %g/s on %d replicas, want 500 on 1", c.Needed, c.Instances)
		}
		if c.Name == "gateway" && c.Instances != 7 {
			t.Errorf("the gateway answers every read: %d replicas, want 7", c.Instances)
		}
	}
}

func TestTwoEightRule(t *testing.T) {
	// peak = total × 0.8 / (window × 0.2), with a peak factor on top.
	raw := strings.NewReplacer("window: 1h", "window: 24h", "peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8, time: 0.2, factor: 4}").Replace(handPlan)
	r := mustSize(t, raw, handCaps())
	detail := r.Endpoints[0]
	busy := detail.Total * 0.8 / (86400 * 0.2)
	if detail.Name != "detail" || !near(detail.BusyPerS, busy) || !near(detail.PeakPerS, 4*busy) || !near(detail.AvgPerS, detail.Total/86400) {
		t.Fatalf("%+v; want busy %g, peak %g", detail, busy, 4*busy)
	}
}

func TestOpeningSecond(t *testing.T) {
	// 30 % of a 10-minute sale's buys in its first second.
	raw := strings.NewReplacer("window: 1h", "window: 10m", "peak: {share: 0.8, time: 0.2}", "peak: {share: 0.3, span: 1s}").Replace(handPlan)
	r := mustSize(t, raw, handCaps())
	buy := r.Endpoints[2]
	if buy.Name != "buy" || !near(buy.PeakPerS, 300000) || !near(buy.AvgPerS, 1000000.0/600) {
		t.Fatalf("%+v; want peak 300,000/s, avg 1,667/s", buy)
	}
}

func TestRoundUp(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want int
	}{{36, 36}, {36 + 1e-12, 36}, {30000.0 / 9 * 1.5 / 1000, 5}, {36.01, 37}, {0.2, 1}} {
		if got := roundUp(c.x); got != c.want {
			t.Errorf("roundUp(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

func TestSeed002Reproduced(t *testing.T) {
	// The seed: 80,000,000 views in 5 hours is about 4,500 a second, 4 ×
	// that at the peak, at 500 a server.
	p, err := Load("seed002.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Size(p, DefaultCapacities())
	if err != nil {
		t.Fatal(err)
	}
	d := r.Endpoints[0]
	if d.Total != 1e8 || !near(d.BusyPerS, 8e7/18000) || !near(d.PeakPerS, 4*8e7/18000) {
		t.Errorf("detail %+v; want 100,000,000 views, 4,444/s busy, 17,778/s peak", d)
	}
	if g := r.Components[0]; g.Name != "gateway" || g.Instances != 36 {
		t.Errorf("%+v; want 36 gateway replicas", g)
	}
}

func TestBadPlansRefused(t *testing.T) {
	for _, c := range []struct{ old, new, want string }{
		{"users: 1000000", "users: -5", "users: -5: must be at least 1"},
		{"users: 1000000", "", "users: 0: must be at least 1"},
		{"visit_share: 0.5", "visit_share: 1.2", "visit_share: 1.2 is not a share in (0, 1]"},
		{"visit_share: 0.5", "visit_share: 0", "visit_share: 0 is not a share"},
		{"conversion: 0.1", "", "conversion: missing"},
		{"conversion: 0.1", "conversion: -0.1", "conversion: -0.1 is not a share"},
		{"window: 1h", "", "window: missing"},
		{"window: 1h", "window: soon", `"soon" is not a duration`},
		{"peak: {share: 0.8, time: 0.2}", "", "peak.share: 0 is not a share"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8}", "peak: give exactly one of time"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8, time: 0.2, span: 1s}", "peak: give exactly one of time"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 1.5, time: 0.2}", "peak.share: 1.5 is not a share"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8, time: 2}", "peak.time: 2 is not a share"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8, span: 2h}", "peak.span: 2h0m0s is not within the window 1h0m0s"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.1, time: 0.5}", "less than the window's average"},
		{"peak: {share: 0.8, time: 0.2}", "peak: {share: 0.8, time: 0.2, factor: 0.5}", "peak.factor: 0.5"},
		{"per_visit: {detail: 4, activity: 2, buy: 2}", "", "per_visit: missing"},
		{"per_visit: {detail: 4, activity: 2, buy: 2}", "per_visit: {detail: -4}", "per_visit.detail: -4 requests: must not be negative"},
		{"per_visit: {detail: 4, activity: 2, buy: 2}", "per_visit: {home: 4}", "per_visit.home: not an endpoint"},
		{"per_visit: {detail: 4, activity: 2, buy: 2}", "per_visit: {pay: 1}", "per_visit.pay: counted per order, not per visit"},
		{"per_order: {order: 1, pay: 1}", "per_order: {buy: 1}", "per_order.buy: counted per visit, not per order"},
		{"hot_sale_share: 0.5", "hot_sale_share: 2", "hot_sale_share: 2 is not a share"},
		{"headroom: 1.5", "headroom: 0.5", "headroom: 0.5: must be at least 1"},
		{"headroom: 1.5", "headroom: 1.5\nread_cache_hit: 1", "read_cache_hit: 1 is not a share in [0, 1)"},
		{"headroom: 1.5", "headroom: 1.5\ncapacity: {database: 10}", "capacity.database: not a component"},
		{"headroom: 1.5", "headroom: 1.5\ncapacity: {redis: -1}", "capacity.redis: -1 per second: must be positive"},
		{"headroom: 1.5", "headroom: 1.5\nhedroom: 2", "field hedroom not found"},
	} {
		raw := strings.Replace(handPlan, c.old, c.new, 1)
		_, err := Parse([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q → %q: error %v; want one containing %q", c.old, c.new, err, c.want)
		}
	}
}

func TestCapacitiesFromReport(t *testing.T) {
	caps, err := CapacitiesFromReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	// answered_per_s 3,000 for the services on the path, the ceiling
	// 36,000 for Redis, 3,000 over the local stack's 8 partitions for Kafka.
	for name, want := range map[string]float64{"gateway": 3000, "order": 3000, "product": 3000, "payment": 3000,
		"redis": 36000, "kafka": 375, "inventory": inventoryPerSec} {
		if caps[name].PerSec != want {
			t.Errorf("%s: %g/s (%s), want %g", name, caps[name].PerSec, caps[name].Source, want)
		}
	}
	if !strings.Contains(caps["gateway"].Source, "scenario capacity, p99 44.0 ms") {
		t.Errorf("gateway source %q does not name the run", caps["gateway"].Source)
	}
}

func TestReportWithoutCapacityRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{`{"scenario":"double11","capacity":{"window_s":5,"p99_bound_ms":50,"answered_per_s":0},"ceiling":{"per_s":30000}}`,
			"no capacity: no 5 s window of buys had p99 ≤ 50 ms"},
		{`{"scenario":"capacity","capacity":{"window_s":5,"p99_bound_ms":50,"answered_per_s":2900}}`, "no redis-benchmark ceiling"},
		{`{"capacity": 12`, "report "},
	} {
		path := filepath.Join(dir, "report.json")
		if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := CapacitiesFromReport(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.body, err, c.want)
		}
	}
}
