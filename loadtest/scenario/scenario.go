// Package scenario is the Double-11 load script: the YAML file a replay
// follows (loadtest/scenarios/README.md), its types, its parsing and its
// validation, which names the field of every problem. It knows nothing of
// the gateway or of how the load is driven.
package scenario

import (
	"time"
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
func (s *Scenario) NeedsSimulator() bool {
	for _, f := range s.Faults {
		if f.Target == "" && (f.Mode == FaultSlow || f.Mode == FaultFailing) {
			return true
		}
	}
	return false
}

// MakesPayments reports whether buyers pay: the audit then checks the
// payments, which it reads from the payment database when it has it.
func (s *Scenario) MakesPayments() bool { return s.Payment.PayShare > 0 }

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

// HasInfraFaults reports whether the scenario puts faults on the
// platform's own parts (the demo then routes its connections through
// fault proxies).
func (s *Scenario) HasInfraFaults() bool {
	for _, f := range s.Faults {
		if f.Target != "" {
			return true
		}
	}
	return false
}

// End is when the scenario's last arrival is due.
func (s *Scenario) End() time.Duration {
	var end time.Duration
	for _, p := range s.Phases {
		end = max(end, p.End())
	}
	for _, f := range s.Faults {
		end = max(end, f.At.D()+f.Lasts.D())
	}
	return end
}
