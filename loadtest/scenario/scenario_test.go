package scenario

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shipped returns the paths of the scenarios the repository ships.
func shipped(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(paths) < 2 {
		tb.Fatalf("scenarios: %v, %v", paths, err)
	}
	return paths
}

func TestShippedScenariosParse(t *testing.T) {
	for _, p := range shipped(t) {
		sc, err := Load(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if sc.End() <= 0 {
			t.Errorf("%s: ends at %s", p, sc.End())
		}
	}
}

// valid is a minimal scenario the table below breaks one field at a time.
const valid = `
name: t
users: {count: 10}
catalog:
  products: [{key: p, title: P, price: 100, stock: 10}]
  activities: [{key: a, product: p, price: 50, stock: 5, per_user_limit: 1, starts_in: 1s, lasts: 1m}]
phases:
  - {name: s, kind: seckill, start: 0s, ramp: 1s, hold: 2s, rate: 10, activities: [a]}
payment: {pay_share: 0.5, delay: [1s, 2s], channels: {alipay: 1}}
`

func TestScenarioValidationNamesTheField(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown field", "name: t", "name: t\nnmae: x", "field nmae not found"},
		{"no users", "count: 10", "count: 0", "users.count"},
		{"activity of an unknown product", "product: p", "product: q", "catalog.activities[0].product"},
		{"limit zero", "per_user_limit: 1", "per_user_limit: 0", "catalog.activities[0].per_user_limit"},
		{"bad kind", "kind: seckill", "kind: shopping", "phases[0].kind"},
		{"bad duration", "hold: 2s", "hold: two", "not a duration"},
		// Phases of 2,000,000 h each would add up past what a
		// time.Duration holds, to a scenario ending before it starts.
		{"duration past a week", "start: 0s, ramp: 1s, hold: 2s", "start: 2000000h, ramp: 1s, hold: 2000000h", "longer than a week"},
		{"unknown activity in a phase", "activities: [a]}", "activities: [b]}", "phases[0].activities[0]"},
		{"zero rate", "rate: 10", "rate: 0", "phases[0].rate"},
		{"infinite rate", "rate: 10", "rate: .inf, rate_from: .inf", "phases[0].rate"},
		{"a rate no generator sends", "rate: 10", "rate: 1e9", "phases[0].rate"},
		{"shares above one", "pay_share: 0.5", "pay_share: 0.5, cancel_share: 0.6", "payment.pay_share/cancel_share"},
		{"pay without channels", "channels: {alipay: 1}", "channels: {}", "payment.channels"},
		{"delay backwards", "delay: [1s, 2s]", "delay: [3s, 2s]", "payment.delay"},
		{"slow fault without latency", "phases:", "faults: [{channel: alipay, mode: slow, at: 1s, lasts: 1s}]\nphases:", "faults[0].latency"},
		{"failing fault without a rate", "phases:", "faults: [{channel: alipay, mode: failing, at: 1s, lasts: 1s}]\nphases:", "faults[0].failure_rate"},
		{"down fault of an unweighted channel", "phases:", "faults: [{channel: wechat, mode: down, at: 1s, lasts: 1s}]\nphases:", "faults[0].channel"},
		{"unknown fault mode", "phases:", "faults: [{channel: alipay, mode: flaky, at: 1s, lasts: 1s}]\nphases:", "faults[0].mode"},
		{"unknown target", "phases:", "faults: [{target: memcached, mode: down, at: 1s, lasts: 1s}]\nphases:", "faults[0].target"},
		{"a mode the target does not take", "phases:", "faults: [{target: kafka, mode: kill, at: 1s, lasts: 1s}]\nphases:", "faults[0].mode"},
		{"wire latency without latency", "phases:", "faults: [{target: redis, mode: latency, at: 1s, lasts: 1s}]\nphases:", "faults[0].latency"},
		{"jitter above latency", "phases:", "faults: [{target: inventory, mode: latency, latency: 10ms, jitter: 20ms, at: 1s, lasts: 1s}]\nphases:", "faults[0].latency"},
		{"bandwidth without a rate", "phases:", "faults: [{target: postgres, mode: bandwidth, at: 1s, lasts: 1s}]\nphases:", "faults[0].rate_kb"},
		{"replica kill with one replica", "phases:", "faults: [{target: order-replica, mode: kill, at: 1s, lasts: 1s}]\nphases:", "platform.order_replicas of at least 2, got 0"},
		{"negative replicas", "phases:", "platform: {order_replicas: -1}\nphases:", "platform.order_replicas"},
		{"channel and target", "phases:", "faults: [{channel: alipay, target: redis, mode: down, at: 1s, lasts: 1s}]\nphases:", "faults[0].channel"},
		{"late and duplicate above one", "pay_share: 0.5", "pay_share: 0.5, late_share: 0.6, duplicate_share: 0.5", "payment.late_share/duplicate_share"},
		{"duplicate with one channel", "pay_share: 0.5", "pay_share: 0.5, duplicate_share: 0.1", "payment.duplicate_share"},
		{"unknown promotion kind", "activities: [{key: a", "promotions: [{kind: BOGO}]\n  activities: [{key: a", "catalog.promotions[0].kind"},
		{"discount without products", "activities: [{key: a", "promotions: [{kind: SKU_DISCOUNT, rate_bp: 9000}]\n  activities: [{key: a", "catalog.promotions[0].products"},
		{"discount rate out of range", "activities: [{key: a", "promotions: [{kind: SKU_DISCOUNT, products: [p], rate_bp: 10000}]\n  activities: [{key: a", "catalog.promotions[0].rate_bp"},
		{"promotion of an unknown product", "activities: [{key: a", "promotions: [{kind: SKU_DISCOUNT, products: [q], rate_bp: 9000}]\n  activities: [{key: a", "catalog.promotions[0].products[0]"},
		{"reduction above its threshold", "activities: [{key: a", "promotions: [{kind: FULL_REDUCTION, tiers: [{threshold: 100, off: 200}]}]\n  activities: [{key: a", "catalog.promotions[0].tiers[0]"},
		{"bots without accounts", "phases:", "phases:\n  - {name: b, kind: bots, hold: 1s, rate: 1, activities: [a]}", "bots needs bots.accounts"},
		{"bots on a sale without the challenge", "phases:", "bots: {accounts: 2}\nphases:\n  - {name: b, kind: bots, hold: 1s, rate: 1, activities: [a]}", "phases[0].activities[0]: \"a\" does not require the challenge"},
		{"bots aiming at no sale", "phases:", "bots: {accounts: 2}\nphases:\n  - {name: b, kind: bots, hold: 1s, rate: 1}", "phases[0].activities: bots needs"},
		{"a device id with a space", "phases:", "bots: {accounts: 2, blocked_device: bot farm}\nphases:", "bots.blocked_device"},
		{"difficulty too high", "phases:", "platform: {challenge_difficulty: 30}\nphases:", "platform.challenge_difficulty"},
		{"reduction without tiers", "activities: [{key: a", "promotions: [{kind: FULL_REDUCTION}]\n  activities: [{key: a", "catalog.promotions[0].tiers"},
	}
	if _, err := Parse([]byte(valid)); err != nil {
		t.Fatalf("the valid scenario: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.Replace(valid, tt.from, tt.to, 1)
			if raw == valid {
				t.Fatalf("%q not in the scenario", tt.from)
			}
			_, err := Parse([]byte(raw))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestPhaseRate(t *testing.T) {
	p := Phase{Start: Duration(10 * time.Second), Ramp: Duration(10 * time.Second), Hold: Duration(5 * time.Second), RateFrom: 100, Rate: 300}
	tests := []struct {
		at   time.Duration
		want float64
	}{{5 * time.Second, 0}, {10 * time.Second, 100}, {15 * time.Second, 200}, {20 * time.Second, 300}, {24 * time.Second, 300}, {25 * time.Second, 0}}
	for _, tt := range tests {
		if got := p.RateAt(tt.at); got != tt.want {
			t.Errorf("RateAt(%s) = %g, want %g", tt.at, got, tt.want)
		}
	}
}

// The scenarios say what they assume of the platform: double11 needs the
// simulator (slow and failing faults), pays, and a 20 s payment window;
// capacity needs no simulator, makes no payments and a long window.
func TestScenarioAssumptions(t *testing.T) {
	for _, tt := range []struct {
		file           string
		window         time.Duration
		simulator, pay bool
	}{
		{"../scenarios/double11.yaml", 20 * time.Second, true, true},
		{"../scenarios/capacity.yaml", 15 * time.Minute, false, false},
		{"../scenarios/cost.yaml", 15 * time.Minute, false, false},
	} {
		sc, err := Load(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Platform.PaymentWindow.D() != tt.window || sc.NeedsSimulator() != tt.simulator || sc.MakesPayments() != tt.pay {
			t.Errorf("%s: window %s, simulator %v, payments %v; want %s, %v, %v", tt.file,
				sc.Platform.PaymentWindow.D(), sc.NeedsSimulator(), sc.MakesPayments(), tt.window, tt.simulator, tt.pay)
		}
	}
	if _, err := Parse([]byte("name: x\nusers: {count: 1}\nphases: [{name: a, kind: browse, hold: 1s, rate: 1}]\ncatalog: {products: [{key: p, title: t, price: 1, stock: 1}]}\nplatform: {payment_window: -1s}\n")); err == nil {
		t.Error("a negative payment window was accepted")
	}
}
