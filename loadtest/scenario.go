package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is a Double-11 load script (loadtest/scenarios/README.md): the
// catalog to create, the buyers, and the phases that drive them over time.
// Every offset is relative to the replay's start (t = 0), the moment the
// catalog exists and the buyers are signed in.
type Scenario struct {
	Name string `yaml:"name"`
	// Seed makes a replay's arrivals and choices repeatable.
	Seed    uint64    `yaml:"seed"`
	Users   Users     `yaml:"users"`
	Catalog Catalog   `yaml:"catalog"`
	Phases  []Phase   `yaml:"phases"`
	Payment Payment   `yaml:"payment"`
	Faults  []Fault   `yaml:"faults"`
	Drain   *Duration `yaml:"drain"`
	// Platform is what the scenario assumes of the platform it runs
	// against; deploy/check holds it against the compose file.
	Platform Platform `yaml:"platform"`
	// Bots are the scripted accounts of the bots phases.
	Bots Bots `yaml:"bots"`
}

// Bots are scripted accounts that try to get past the flash-sale entry's
// bot wall (docs/protection.md): Accounts of them, with ids following
// the buyers', each on a device of its own. BlockedDevice is a device id
// on the gateway's blocklist, which some of them send from (`make demo`
// puts it on the blocklist; against another gateway, put it under
// flashsale/gateway/blocklist/devices in Consul KV).
type Bots struct {
	Accounts      int    `yaml:"accounts"`
	BlockedDevice string `yaml:"blocked_device"`
}

// Platform is a scenario's assumptions about the platform's settings.
type Platform struct {
	// PaymentWindow is the order service's FLASHSALE_PAYMENT_WINDOW the
	// scenario is written for: with a longer one its abandoned orders
	// never expire within the run and its late payers are all cut off.
	// `make demo` runs the platform with it unless FLASHSALE_PAYMENT_WINDOW
	// is set; zero assumes nothing.
	PaymentWindow Duration `yaml:"payment_window"`
	// OrderReplicas is how many order services `make demo` runs (default
	// 1), all in orders.placed's consumer group, the gateway spreading its
	// calls over them; an order-replica fault needs at least 2.
	OrderReplicas int `yaml:"order_replicas"`
	// ChallengeDifficulty is the gateway's FLASHSALE_CHALLENGE_DIFFICULTY
	// the scenario is written for (leading zero bits a sale's challenge
	// asks); `make demo` runs the gateway with it unless
	// FLASHSALE_CHALLENGE_DIFFICULTY is set; zero assumes nothing. The
	// replay solves every challenge its buyers get, so the load generator
	// pays 2^difficulty hashes per buy of a sale that requires one.
	ChallengeDifficulty int `yaml:"challenge_difficulty"`
}

// NeedsSimulator reports whether the scenario's faults act at the channel
// simulator (slow and failing): without its URL they are skipped.
func (sc *Scenario) NeedsSimulator() bool {
	for _, f := range sc.Faults {
		if f.Target == "" && (f.Mode == FaultSlow || f.Mode == FaultFailing) {
			return true
		}
	}
	return false
}

// MakesPayments reports whether buyers pay: the audit then checks the
// payments, which it reads from the payment database when it has it.
func (sc *Scenario) MakesPayments() bool { return sc.Payment.PayShare > 0 }

// Users is the buyer population: Count users with consecutive ids from
// FirstID, each signed in with its own dev token.
type Users struct {
	Count   int   `yaml:"count"`
	FirstID int64 `yaml:"first_id"`
}

// Catalog is what the admin creates before the replay starts.
type Catalog struct {
	Products   []Product      `yaml:"products"`
	Activities []ActivitySpec `yaml:"activities"`
	// Promotions and Coupons are created through the marketing admin
	// API when the gateway serves it.
	Promotions []Promotion `yaml:"promotions"`
	Coupons    []Coupon    `yaml:"coupons"`
}

// Product is a catalog product; Key names it inside the scenario.
type Product struct {
	Key   string `yaml:"key"`
	Title string `yaml:"title"`
	Price int64  `yaml:"price"`
	Stock int64  `yaml:"stock"`
}

// ActivitySpec is a flash sale of a product.
type ActivitySpec struct {
	Key          string   `yaml:"key"`
	Product      string   `yaml:"product"`
	Price        int64    `yaml:"price"`
	Stock        int64    `yaml:"stock"`
	PerUserLimit int64    `yaml:"per_user_limit"`
	StartsIn     Duration `yaml:"starts_in"`
	Lasts        Duration `yaml:"lasts"`
	// Challenge makes every buy of the sale carry a solved challenge
	// (the activity's challenge_required).
	Challenge bool `yaml:"challenge"`
}

// Promotion is a marketing promotion, created through
// POST /admin/v1/promotions (docs/api.md, Marketing) and running for the
// whole replay. A SKU_DISCOUNT sells Products at RateBP / 10000 of their
// price; a FULL_REDUCTION takes a tier's Off off carts of Products (every
// product when empty) reaching its Threshold.
type Promotion struct {
	Kind     string   `yaml:"kind"`
	Products []string `yaml:"products"`
	RateBP   int64    `yaml:"rate_bp"`
	Tiers    []Tier   `yaml:"tiers"`
}

// Tier is a full reduction's "spend Threshold, take Off off".
type Tier struct {
	Threshold int64 `yaml:"threshold" json:"threshold"`
	Off       int64 `yaml:"off" json:"off"`
}

// Promotion kinds.
const (
	PromotionSKUDiscount   = "SKU_DISCOUNT"
	PromotionFullReduction = "FULL_REDUCTION"
)

// Coupon is a coupon template (POST /admin/v1/coupon-templates): Share
// of the users each claim one coupon of it before the replay starts, and
// checkouts use them (Phase.CouponShare).
type Coupon struct {
	Threshold int64   `yaml:"threshold"`
	Amount    int64   `yaml:"amount"`
	Share     float64 `yaml:"share"`
}

// Phase kinds.
const (
	PhaseBrowse    = "browse"    // product, activity and list reads
	PhaseCountdown = "countdown" // polling the flash sales' detail
	PhaseSeckill   = "seckill"   // flash-sale buys
	PhaseCheckout  = "checkout"  // regular cart orders
	PhaseBots      = "bots"      // scripted buys that the bot wall must refuse
)

// Phase drives arrivals of one kind from Start for Ramp+Hold: the arrival
// rate goes linearly from RateFrom to Rate over Ramp, then holds Rate.
type Phase struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`
	Start    Duration `yaml:"start"`
	Ramp     Duration `yaml:"ramp"`
	Hold     Duration `yaml:"hold"`
	RateFrom float64  `yaml:"rate_from"`
	Rate     float64  `yaml:"rate"`
	// Activities are the flash sales a seckill or countdown phase aims
	// at (all of them when empty).
	Activities []string `yaml:"activities"`
	// Quantity is the units per flash-sale buy (default 1).
	Quantity int64 `yaml:"quantity"`
	// ReplayShare of seckill buys repeat the user's previous
	// Idempotency-Key, as a client retrying after a timeout does.
	ReplayShare float64 `yaml:"replay_share"`
	// Lines bounds the lines of a checkout's cart (default 1..3).
	Lines [2]int `yaml:"lines"`
	// CouponShare of checkouts use one of the user's coupons.
	CouponShare float64 `yaml:"coupon_share"`
}

// End is when the phase's last arrival is due.
func (p Phase) End() time.Duration { return p.Start.D() + p.Ramp.D() + p.Hold.D() }

// RateAt is the arrival rate (per second) at offset t of the replay.
func (p Phase) RateAt(t time.Duration) float64 {
	rel := t - p.Start.D()
	switch {
	case rel < 0 || t >= p.End():
		return 0
	case rel < p.Ramp.D():
		return p.RateFrom + (p.Rate-p.RateFrom)*float64(rel)/float64(p.Ramp.D())
	}
	return p.Rate
}

// Payment is what buyers do with an accepted order: PayShare pay after
// Delay through a channel drawn from Channels (weights), CancelShare
// cancel after Delay, the rest abandon it to expire. Of the payers,
// LateShare confirm in the wallet only after the order expired and
// DuplicateShare pay through a second channel too: the platform must
// refund both kinds of money. RefundShare of the paid orders ask for a
// partial refund of one unit. Channels' weights are also the routing
// weights the replay sets (PUT /admin/v1/channels/{channel}).
type Payment struct {
	PayShare       float64        `yaml:"pay_share"`
	CancelShare    float64        `yaml:"cancel_share"`
	LateShare      float64        `yaml:"late_share"`
	DuplicateShare float64        `yaml:"duplicate_share"`
	RefundShare    float64        `yaml:"refund_share"`
	Delay          [2]Duration    `yaml:"delay"`
	Channels       map[string]int `yaml:"channels"`
}

// FaultReplica is the order replica an order-replica fault kills: the
// second, so the first (the one an order fault kills) is the one left.
const FaultReplica = 1

// Fault modes. A down channel is switched off in the platform's routing
// (PUT /admin/v1/channels/{channel}); slow and failing are how the
// channel itself behaves, set at the channel simulator
// (PUT /admin/channels/{channel}). On a target (the platform's own
// parts), latency, down, blackhole and bandwidth act on its connections
// on the real wire, and kill stops a process as a crash does and starts
// it again when the fault lasts out.
const (
	FaultDown      = "down"
	FaultSlow      = "slow"
	FaultFailing   = "failing"
	FaultLatency   = "latency"
	FaultBlackhole = "blackhole"
	FaultBandwidth = "bandwidth"
	FaultKill      = "kill"
)

// The targets of infrastructure faults and the modes each takes: the
// connections to Redis, Postgres and the broker, the order service's link
// to inventory, and the processes that can be killed: the order service
// (its first replica, between a consumer batch's write and its commit)
// and one order replica of several (replica FaultReplica, as kill -9).
var targetModes = map[string][]string{
	"redis":         {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth, FaultKill},
	"postgres":      {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth, FaultKill},
	"kafka":         {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth},
	"inventory":     {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth},
	"order":         {FaultKill},
	"order-replica": {FaultKill},
}

// Fault takes a payment channel down, makes it slow (adding Latency to
// every call) or failing (answering FailureRate of the calls 503) at At
// for Lasts; or, with Target instead of Channel, puts a fault on one of
// the platform's own parts (Latency ± Jitter, RateKB kilobytes a second
// for bandwidth). Infrastructure faults need the platform the demo
// starts in process; against another gateway they are skipped.
type Fault struct {
	Channel     string   `yaml:"channel"`
	Target      string   `yaml:"target"`
	Mode        string   `yaml:"mode"`
	At          Duration `yaml:"at"`
	Lasts       Duration `yaml:"lasts"`
	Latency     Duration `yaml:"latency"`
	Jitter      Duration `yaml:"jitter"`
	RateKB      int64    `yaml:"rate_kb"`
	FailureRate float64  `yaml:"failure_rate"`
}

// Name says what the fault does, for the display and the report.
func (f Fault) Name() string {
	return fmt.Sprintf("%s at %s for %s", f.label(), f.At.D(), f.Lasts.D())
}

// label names the fault without its times ("kafka blackhole"), as the
// live display shows it while it is on.
func (f Fault) label() string {
	what := f.Channel
	if f.Target != "" {
		what = f.Target
	}
	return what + " " + f.Mode
}

// HasInfraFaults reports whether the scenario puts faults on the
// platform's own parts (the demo then routes its connections through
// fault proxies).
func (sc *Scenario) HasInfraFaults() bool {
	for _, f := range sc.Faults {
		if f.Target != "" {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written as "1m30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 1m30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// LoadScenario reads and validates a scenario file. Unknown fields are
// errors, so a misspelt key never silently falls back to a default.
func LoadScenario(path string) (*Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc, err := ParseScenario(raw)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes and validates a scenario.
func ParseScenario(raw []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, err
	}
	sc.defaults()
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

func (sc *Scenario) defaults() {
	if sc.Users.FirstID == 0 {
		sc.Users.FirstID = 100_000
	}
	for i := range sc.Phases {
		p := &sc.Phases[i]
		if p.Quantity == 0 {
			p.Quantity = 1
		}
		if p.Lines == [2]int{} {
			p.Lines = [2]int{1, 3}
		}
	}
	if sc.Drain == nil {
		d := Duration(20 * time.Second)
		sc.Drain = &d
	}
}

// Validate reports every problem of the scenario, each naming its field.
func (sc *Scenario) Validate() error {
	var errs []error
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
		}
	}
	check(sc.Name != "", "name", "is required")
	check(sc.Users.Count > 0, "users.count", "must be positive, got %d", sc.Users.Count)
	check(sc.Users.FirstID > 1, "users.first_id", "must be above 1 (user 1 is the admin), got %d", sc.Users.FirstID)

	products := map[string]bool{}
	for i, p := range sc.Catalog.Products {
		f := fmt.Sprintf("catalog.products[%d]", i)
		check(p.Key != "", f+".key", "is required")
		check(!products[p.Key], f+".key", "%q is used twice", p.Key)
		products[p.Key] = true
		check(p.Title != "", f+".title", "is required")
		check(p.Price > 0, f+".price", "must be positive cents, got %d", p.Price)
		check(p.Stock >= 0, f+".stock", "must not be negative, got %d", p.Stock)
	}
	activities, challenged := map[string]bool{}, map[string]bool{}
	for i, a := range sc.Catalog.Activities {
		challenged[a.Key] = a.Challenge
		f := fmt.Sprintf("catalog.activities[%d]", i)
		check(a.Key != "", f+".key", "is required")
		check(!activities[a.Key], f+".key", "%q is used twice", a.Key)
		activities[a.Key] = true
		check(products[a.Product], f+".product", "%q is not a key of catalog.products", a.Product)
		check(a.Price > 0, f+".price", "must be positive cents, got %d", a.Price)
		check(a.Stock > 0, f+".stock", "must be positive, got %d", a.Stock)
		check(a.PerUserLimit > 0, f+".per_user_limit", "must be positive, got %d", a.PerUserLimit)
		check(a.StartsIn >= 0, f+".starts_in", "must not be negative")
		check(a.Lasts > 0, f+".lasts", "must be positive")
	}
	for i, p := range sc.Catalog.Promotions {
		f := fmt.Sprintf("catalog.promotions[%d]", i)
		for j, k := range p.Products {
			check(products[k], fmt.Sprintf("%s.products[%d]", f, j), "%q is not a key of catalog.products", k)
		}
		switch p.Kind {
		case PromotionSKUDiscount:
			check(len(p.Products) > 0, f+".products", "a SKU_DISCOUNT needs at least one product")
			check(p.RateBP >= 1 && p.RateBP <= 9999, f+".rate_bp", "must be in 1..9999 (9000 is 90%%), got %d", p.RateBP)
			check(len(p.Tiers) == 0, f+".tiers", "are for a FULL_REDUCTION")
		case PromotionFullReduction:
			check(len(p.Tiers) >= 1 && len(p.Tiers) <= 10, f+".tiers", "a FULL_REDUCTION needs 1 to 10 tiers, got %d", len(p.Tiers))
			for j, t := range p.Tiers {
				check(t.Off >= 1 && t.Off <= t.Threshold, fmt.Sprintf("%s.tiers[%d]", f, j), "needs 1 <= off <= threshold, got off %d, threshold %d", t.Off, t.Threshold)
			}
			check(p.RateBP == 0, f+".rate_bp", "is for a SKU_DISCOUNT")
		default:
			check(false, f+".kind", "must be SKU_DISCOUNT or FULL_REDUCTION, got %q", p.Kind)
		}
	}
	for i, c := range sc.Catalog.Coupons {
		f := fmt.Sprintf("catalog.coupons[%d]", i)
		check(c.Amount > 0, f+".amount", "must be positive cents, got %d", c.Amount)
		check(c.Threshold >= c.Amount, f+".threshold", "must be at least the amount %d, got %d", c.Amount, c.Threshold)
		check(c.Share > 0 && c.Share <= 1, f+".share", "must be in (0, 1], got %g", c.Share)
	}

	check(sc.Platform.PaymentWindow >= 0, "platform.payment_window", "must not be negative")
	check(sc.Platform.OrderReplicas >= 0, "platform.order_replicas", "must not be negative")
	check(sc.Platform.ChallengeDifficulty >= 0 && sc.Platform.ChallengeDifficulty <= 24, "platform.challenge_difficulty", "must be in 0..24, got %d", sc.Platform.ChallengeDifficulty)
	check(sc.Bots.Accounts >= 0, "bots.accounts", "must not be negative")
	check(sc.Bots.BlockedDevice == "" || len(sc.Bots.BlockedDevice) <= 128 && !strings.ContainsAny(sc.Bots.BlockedDevice, " ,"),
		"bots.blocked_device", "must be a device id (up to 128 characters, no space or comma), got %q", sc.Bots.BlockedDevice)
	check(len(sc.Phases) > 0, "phases", "at least one phase is required")
	names := map[string]bool{}
	for i, p := range sc.Phases {
		f := fmt.Sprintf("phases[%d]", i)
		check(p.Name != "", f+".name", "is required")
		check(!names[p.Name], f+".name", "%q is used twice", p.Name)
		names[p.Name] = true
		switch p.Kind {
		case PhaseBrowse, PhaseCheckout:
			check(len(sc.Catalog.Products) > 0, f+".kind", "%s needs catalog.products", p.Kind)
		case PhaseCountdown, PhaseSeckill:
			check(len(sc.Catalog.Activities) > 0, f+".kind", "%s needs catalog.activities", p.Kind)
		case PhaseBots:
			check(sc.Bots.Accounts > 0, f+".kind", "bots needs bots.accounts")
			check(len(p.Activities) > 0, f+".activities", "bots needs the sales they aim at")
			for j, a := range p.Activities {
				check(!activities[a] || challenged[a], fmt.Sprintf("%s.activities[%d]", f, j),
					"%q does not require the challenge: a bot's buy without one would be placed", a)
			}
		default:
			check(false, f+".kind", "must be one of browse, countdown, seckill, checkout, bots; got %q", p.Kind)
		}
		check(p.Start >= 0, f+".start", "must not be negative")
		check(p.Ramp >= 0 && p.Hold >= 0 && p.Ramp+p.Hold > 0, f+".ramp/hold", "must not be negative and must add up to more than zero")
		check(p.Rate > 0, f+".rate", "must be a positive arrival rate per second, got %g", p.Rate)
		check(p.RateFrom >= 0, f+".rate_from", "must not be negative, got %g", p.RateFrom)
		for j, a := range p.Activities {
			check(activities[a], fmt.Sprintf("%s.activities[%d]", f, j), "%q is not a key of catalog.activities", a)
		}
		check(p.Quantity > 0, f+".quantity", "must be positive, got %d", p.Quantity)
		check(p.ReplayShare >= 0 && p.ReplayShare < 1, f+".replay_share", "must be in [0, 1), got %g", p.ReplayShare)
		check(p.Lines[0] >= 1 && p.Lines[1] >= p.Lines[0], f+".lines", "must be [min, max] with 1 <= min <= max, got %v", p.Lines)
		check(p.CouponShare >= 0 && p.CouponShare <= 1, f+".coupon_share", "must be in [0, 1], got %g", p.CouponShare)
	}

	pay := sc.Payment
	check(pay.PayShare >= 0 && pay.CancelShare >= 0 && pay.PayShare+pay.CancelShare <= 1,
		"payment.pay_share/cancel_share", "must not be negative and must add up to at most 1, got %g + %g", pay.PayShare, pay.CancelShare)
	check(pay.RefundShare >= 0 && pay.RefundShare <= 1, "payment.refund_share", "must be in [0, 1], got %g", pay.RefundShare)
	check(pay.LateShare >= 0 && pay.DuplicateShare >= 0 && pay.LateShare+pay.DuplicateShare <= 1,
		"payment.late_share/duplicate_share", "must not be negative and must add up to at most 1, got %g + %g", pay.LateShare, pay.DuplicateShare)
	check(pay.DuplicateShare == 0 || len(pay.Channels) >= 2, "payment.duplicate_share", "a second payment needs a second channel in payment.channels")
	check(pay.Delay[0] >= 0 && pay.Delay[1] >= pay.Delay[0], "payment.delay", "must be [min, max] with 0 <= min <= max")
	weight := 0
	for ch, w := range pay.Channels {
		check(w >= 0, "payment.channels."+ch, "weight must not be negative, got %d", w)
		weight += w
	}
	check(pay.PayShare == 0 || weight > 0, "payment.channels", "need a positive weight when pay_share is above 0")
	for i, ft := range sc.Faults {
		f := fmt.Sprintf("faults[%d]", i)
		check(ft.At >= 0, f+".at", "must not be negative")
		check(ft.Lasts > 0, f+".lasts", "must be positive")
		if ft.Target != "" {
			modes, known := targetModes[ft.Target]
			check(ft.Channel == "", f+".channel", "a fault has a channel or a target, not both")
			check(known, f+".target", "must be redis, postgres, kafka, inventory, order or order-replica, got %q", ft.Target)
			check(ft.Target != "order-replica" || sc.Platform.OrderReplicas > FaultReplica, f+".target",
				"order-replica kills replica %d and needs platform.order_replicas of at least %d, got %d", FaultReplica, FaultReplica+1, sc.Platform.OrderReplicas)
			check(!known || slices.Contains(modes, ft.Mode), f+".mode", "%q takes %s, got %q", ft.Target, strings.Join(modes, ", "), ft.Mode)
			check(ft.Mode != FaultLatency || ft.Latency > 0 && ft.Jitter >= 0 && ft.Jitter <= ft.Latency, f+".latency",
				"must be positive, with 0 <= jitter <= latency")
			check(ft.Mode != FaultBandwidth || ft.RateKB > 0, f+".rate_kb", "must be positive for a bandwidth fault")
			continue
		}
		check(ft.Channel != "", f+".channel", "is required (or a target)")
		check(ft.Mode == FaultDown || ft.Mode == FaultSlow || ft.Mode == FaultFailing, f+".mode", "must be down, slow or failing, got %q", ft.Mode)
		_, weighted := pay.Channels[ft.Channel]
		check(ft.Mode != FaultDown || weighted, f+".channel", "%q needs a weight in payment.channels to come back with", ft.Channel)
		check(ft.Mode != FaultSlow || ft.Latency > 0, f+".latency", "must be positive for a slow channel")
		check(ft.Mode != FaultFailing || ft.FailureRate > 0 && ft.FailureRate <= 1, f+".failure_rate", "must be in (0, 1] for a failing channel, got %g", ft.FailureRate)
	}
	check(*sc.Drain > 0, "drain", "must be positive")
	return errors.Join(errs...)
}

// End is when the scenario's last arrival is due.
func (sc *Scenario) End() time.Duration {
	var end time.Duration
	for _, p := range sc.Phases {
		end = max(end, p.End())
	}
	for _, f := range sc.Faults {
		end = max(end, f.At.D()+f.Lasts.D())
	}
	return end
}
