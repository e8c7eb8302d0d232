package scenario

import (
	"time"
)

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
	PayShare       float64 `yaml:"pay_share"`
	CancelShare    float64 `yaml:"cancel_share"`
	LateShare      float64 `yaml:"late_share"`
	DuplicateShare float64 `yaml:"duplicate_share"`
	RefundShare    float64 `yaml:"refund_share"`
	// StrangerShare of the accepted orders are tried by another buyer
	// (read, pay, cancel, refund, the payment read) once their own buyer
	// is done with them and the last phase has ended, in the first half
	// of the drain; every try must be refused.
	StrangerShare float64        `yaml:"stranger_share"`
	Delay         [2]Duration    `yaml:"delay"`
	Channels      map[string]int `yaml:"channels"`
}
