// Package result is what a load-test run measured and audited, as one
// value: the replay's phases, faults, endpoints, seconds, sales, payments
// and bots (filled by loadtest/drive), the audit's checks and final order
// states (loadtest/audit), ready for loadtest/report to write as JSON, text
// and HTML. It holds data and small accessors only.
package result

import (
	"time"

	"github.com/flashsale/flashsale/loadtest/client"
)

// Replay is everything a replay measured, ready for the report and
// the audit.
type Replay struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	// PressureTest says the replay was pressure-test traffic: marked,
	// in shadow storage (docs/pressure-test.md).
	PressureTest bool                      `json:"pressure_test,omitempty"`
	StartedAt    time.Time                 `json:"started_at"`
	ElapsedS     float64                   `json:"elapsed_s"`
	Users        int                       `json:"users"`
	Phases       []PhaseStat               `json:"phases"`
	Features     []Feature                 `json:"features"`
	Faults       []FaultStat               `json:"faults"`
	Activities   []ActivityStat            `json:"activities"`
	Endpoints    []EndpointStat            `json:"endpoints"`
	Seconds      []SecondStat              `json:"seconds"`
	Stock        map[string][]StockPoint   `json:"stock"`
	Payments     map[string]map[string]int `json:"payments"`
	FollowUps    FollowUps                 `json:"follow_ups"`
	Channels     []ChannelStat             `json:"channels"`
	Coupons      CouponStats               `json:"coupons"`
	// Orders is the final state of the accepted orders, as the audit
	// read them.
	Orders   *OrderStates `json:"orders,omitempty"`
	Capacity Capacity     `json:"capacity"`
	// Caches is what each level of the catalogue caches did (read from
	// the services' /metrics at the end; empty when they were not read).
	Caches []CacheLevel `json:"caches,omitempty"`
	// GatewayTimes is the gateway's own time for the flash-sale buys it
	// refused or answered sold out (nil when it gave neither or /metrics
	// was not read).
	GatewayTimes *GatewayTimes `json:"gateway_times,omitempty"`
	Ceiling      *Ceiling      `json:"ceiling,omitempty"`
	Checks       []Check       `json:"checks"`
	// Bots is what the bots phases' requests were answered (nil without
	// one), BotsList the bot accounts.
	Bots    *BotStats        `json:"bots,omitempty"`
	Sales   map[string]*Sale `json:"-"`
	Regular map[string]int64 `json:"-"`
	// RegularStock is what the checkouts sold from, for the audit's
	// stock conservation check.
	RegularStock RegularStock  `json:"-"`
	UsersList    []client.User `json:"-"`
	BotsList     []client.User `json:"-"`
	// Trails is what the replay did with each accepted order, by order
	// id, for the audit.
	Trails map[string]*Trail `json:"-"`
}

// Feature is the replay's probe of the named feature, or one not
// available with the reason "not probed".
func (r *Replay) Feature(name string) Feature {
	for _, f := range r.Features {
		if f.Name == name {
			return f
		}
	}
	return Feature{Name: name, Reason: "not probed"}
}

// SeckillAnswered is how many flash-sale buys the platform answered:
// every outcome but rate-limited and failed, as the capacity figure
// counts them.
func (r *Replay) SeckillAnswered() int {
	n := 0
	for _, s := range r.Seconds {
		n += s.SeckillAnswered
	}
	return n
}

// Trail is what the replay did with one accepted order, for the audit.
type Trail struct {
	User client.User
	// Payments are the payment ids the pay answers named.
	Payments []string
	// Cancelled is set when the buyer's cancel was answered 200;
	// CancelSent and RefundSent when the buyer asked, whatever the answer
	// (one may land unanswered).
	Cancelled              bool
	CancelSent, RefundSent bool
	// Confirmed are the payments the buyer paid at the channel's pay URL
	// (the wallet answered 200: the channel took the money).
	Confirmed []string
	// Refund is the amount, in cents, of the buyer's refund answered 200
	// (SUCCEEDED or PENDING), 0 without one.
	Refund int64
	// Visited is set when a stranger tried the order (StrangerEndpoint).
	Visited bool
	// Coupon is the coupon the checkout used.
	Coupon string
}

// PhaseStat is what one phase did.
type PhaseStat struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Status is "ran" or why the phase was skipped.
	Status  string  `json:"status"`
	StartS  float64 `json:"start_s"`
	EndS    float64 `json:"end_s"`
	PeakRPS float64 `json:"peak_rate"`
	Sent    int64   `json:"sent"`
	// For seckill phases, of the buys due within the phase: the answered
	// ones (every outcome but 429s and failures) per second of the phase
	// and their p99, the SOLD_OUT answers among them and their p99, and
	// the 429s (rate limited or overloaded) and their p99, in
	// milliseconds.
	AnsweredPerS float64 `json:"answered_per_s,omitempty"`
	AnsweredP99  float64 `json:"answered_p99_ms,omitempty"`
	SoldOut      int64   `json:"sold_out,omitempty"`
	SoldOutP99   float64 `json:"sold_out_p99_ms,omitempty"`
	Refused      int64   `json:"refused,omitempty"`
	RefusedP99   float64 `json:"refused_p99_ms,omitempty"`
}

// FaultStat is what happened to one scheduled fault: whether it ran,
// when it was on (seconds from the replay's start), what the requests due
// meanwhile got, and how soon after the lift the platform was healthy
// again (drive's recorder.faultWindow).
type FaultStat struct {
	Fault  string  `json:"fault"`
	Status string  `json:"status"`
	OnS    float64 `json:"on_s"`
	OffS   float64 `json:"off_s"`
	// Requests counts every request due while the fault was on, Failures
	// those answered 5xx or not at all; P99 is their latency (ms).
	Requests    int     `json:"requests"`
	Failures    int     `json:"failures"`
	FailureRate float64 `json:"failure_rate"`
	P99         float64 `json:"p99_ms"`
	// RecoveredS is the seconds from the lift to the first of two healthy
	// seconds (≤ 1 % failures), -1 when the replay ended first.
	RecoveredS float64 `json:"recovered_s"`
	// Reaches are the endpoints the fault can fail (a payment channel's
	// reach the payment endpoints); none means every endpoint (a fault on
	// the platform's own parts).
	Reaches []string `json:"reaches,omitempty"`
}

// Ran says whether the fault was applied and lifted.
func (f FaultStat) Ran() bool { return f.OffS > 0 }

// ActivityStat is one flash sale as the replay created it.
type ActivityStat struct {
	Key          string `json:"key"`
	ActivityID   string `json:"activity_id"`
	Stock        int64  `json:"stock"`
	PerUserLimit int64  `json:"per_user_limit"`
	Price        int64  `json:"price"` // cents
	Accepted     int    `json:"accepted"`
	// Challenge says the sale required a solved challenge on each buy.
	Challenge bool `json:"challenge,omitempty"`
}

// FollowUps counts what buyers did with accepted orders. Paid counts
// orders whose payment the buyer confirmed at the channel; LatePaid of
// them confirmed after the order expired, Duplicated paid through a
// second channel too. LateCutOff are late payers whose order would
// expire after the drain, who abandon it instead.
type FollowUps struct {
	Paid, PayFailed, Cancelled, CancelFailed, Refunded, RefundFailed, Abandoned int64
	LatePaid, Duplicated, LateCutOff                                            int64
	// Skipped counts follow-ups drawn whose endpoint is not available.
	Skipped int64
}

// CouponStats counts the scenario's coupons: templates created, coupons
// the buyers claimed (and claims refused), and checkouts that used one
// (and those refused with it, then placed without it).
type CouponStats struct {
	Templates int `json:"templates"`
	// Issued is each template the replay made, by id, with the coupons
	// it issues (its total); Unanswered, the coupons of the checkouts
	// that made no order the replay knows of, answered anything but a
	// gateway's 429 (each may be used by an order never stored until it
	// is given back, by the stray sweep when the order service cannot).
	Issued      map[string]int64 `json:"-"`
	Unanswered  map[string]bool  `json:"-"`
	Claimed     int64            `json:"claimed"`
	ClaimFailed int64            `json:"claim_failed"`
	Used        int64            `json:"used"`
	Refused     int64            `json:"refused"`
}

// Feature is an optional part of the API a scenario phase needs (payment,
// cancel, refunds, regular checkout, marketing, channel switches). The
// replay probes each one before it starts: a phase whose endpoint the
// gateway does not serve is reported as skipped, never simulated.
type Feature struct {
	Name      string `json:"name"`
	Endpoint  string `json:"endpoint"`
	Available bool   `json:"available"`
	// Reason says why the feature is off, e.g. "skipped: endpoint not
	// available (404)".
	Reason string `json:"reason,omitempty"`
}

// The optional features.
const (
	FeaturePay        = "pay"
	FeatureCancel     = "cancel"
	FeatureRefund     = "refund"
	FeatureCheckout   = "checkout"
	FeaturePromotions = "promotions"
	FeatureCoupons    = "coupons"
	FeatureChannels   = "channels"
)

// RegularStock is the products' stock the checkouts sell from, by sku
// id: Start, once the flash sales took their stock from their products;
// Unknown, the units of the checkouts whose answer was unknown (each may
// hold its units until the stray sweep gives them back).
type RegularStock struct {
	Start, Unknown map[string]int64
}
