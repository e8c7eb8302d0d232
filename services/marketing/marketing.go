// Package marketing is the marketing service's domain: promotions (SKU
// discounts and tiered full reductions), platform coupon templates and the
// coupons users claim from them, and the pricing of a cart with all of
// them stacked in a fixed order, each order-level discount apportioned to
// the lines to the cent (package apportion). docs/marketing.md explains
// the rules with worked examples.
//
// The package holds the types, the rules and the interface of its store;
// it imports no adapter (postgres/, grpc/ implement and serve it, app/
// wires them).
package marketing

import (
	"errors"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/proto/limits"
)

// Sentinel errors. Adapters wrap them with %w and the failed operation;
// the gRPC server maps them to API codes through one table.
var (
	// ErrInvalid is a request that breaks a validation rule.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound is an unknown coupon template, or a coupon that does
	// not exist or belongs to someone else.
	ErrNotFound = errors.New("not found")
	// ErrCouponsExhausted means every coupon of the template is claimed.
	ErrCouponsExhausted = errors.New("coupons exhausted")
	// ErrClaimLimit means the user holds as many coupons of the template
	// as it allows one user.
	ErrClaimLimit = errors.New("per-user claim limit reached")
	// ErrNotClaimable means the template is outside its validity window.
	ErrNotClaimable = errors.New("coupon template not claimable now")
	// ErrCouponUsed means the coupon is consumed by another order, or the
	// order already consumed another coupon.
	ErrCouponUsed = errors.New("coupon already used")
	// ErrGivenUp is a use of a coupon for an order whose release came
	// first: its caller gave the order up, so the coupon stays available.
	ErrGivenUp = errors.New("order given up before its coupon was used")
	// ErrCouponNotApplicable means the coupon cannot pay for this cart:
	// below its threshold, or outside its validity window.
	ErrCouponNotApplicable = errors.New("coupon not applicable")
)

// Kind is a kind of promotion. The kinds stack in the order of Kinds.
type Kind string

// The promotion kinds.
const (
	// KindSKUDiscount sells some SKUs at a percentage of their price.
	KindSKUDiscount Kind = "SKU_DISCOUNT"
	// KindFullReduction takes an amount off when the eligible lines add
	// up to a threshold ("spend 99, take 9 off"), by tiers.
	KindFullReduction Kind = "FULL_REDUCTION"
	// KindCoupon is a user's platform coupon.
	KindCoupon Kind = "COUPON"
)

// Kinds is the fixed stacking order: each kind sees the amounts the
// earlier kinds left.
var Kinds = []Kind{KindSKUDiscount, KindFullReduction, KindCoupon}

// Limits of the validation rules. Money is int64 cents; the bounds keep
// every sum far from overflowing.
const (
	MaxUnitPrice    = limits.MaxPrice // cents, the catalog's product price
	MaxQuantity     = limits.MaxQuantity
	MaxLines        = limits.MaxLines
	MaxAmount       = MaxUnitPrice * MaxQuantity * MaxLines // the largest possible cart
	MaxSKUs         = limits.MaxPromotionSKUs
	MaxTiers        = limits.MaxTiers
	MaxCoupons      = 1_000_000_000 // coupons one template issues
	MaxPerUserLimit = limits.MaxPerUserLimit
	// BasisPoints is 100%: a SKU discount's RateBP of 9000 is "90%",
	// that is the buyer pays 90% of the price.
	BasisPoints = 10_000
)

// Tier is a step of a full reduction: a cart whose eligible lines add up
// to at least Threshold gets Off taken off.
type Tier struct {
	Threshold int64
	Off       int64
}

// Promotion is a SKU discount or a full reduction, active from StartsAt
// (inclusive) to EndsAt (exclusive).
type Promotion struct {
	ID   int64
	Kind Kind
	// SKUIDs are the SKUs the promotion applies to. A SKU discount names
	// at least one; a full reduction with none applies to every SKU.
	SKUIDs []int64
	// RateBP is a SKU discount's price as a share of the regular price,
	// in basis points (9000 = 90%, i.e. 10% off).
	RateBP int64
	// Tiers are a full reduction's steps; the best one the cart reaches
	// applies.
	Tiers    []Tier
	StartsAt time.Time
	EndsAt   time.Time
}

// ActiveAt reports whether the promotion's window holds t.
func (p Promotion) ActiveAt(t time.Time) bool {
	return !t.Before(p.StartsAt) && t.Before(p.EndsAt)
}

// AppliesTo reports whether the promotion covers the SKU.
func (p Promotion) AppliesTo(skuID int64) bool {
	if len(p.SKUIDs) == 0 {
		return p.Kind == KindFullReduction
	}
	for _, id := range p.SKUIDs {
		if id == skuID {
			return true
		}
	}
	return false
}

// Validate checks a promotion about to be created at now.
func (p Promotion) Validate(now time.Time) error {
	if err := validateWindow(p.StartsAt, p.EndsAt, now, "starts_at", "ends_at"); err != nil {
		return err
	}
	if len(p.SKUIDs) > MaxSKUs {
		return fmt.Errorf("%w: %d SKUs, at most %d", ErrInvalid, len(p.SKUIDs), MaxSKUs)
	}
	for _, id := range p.SKUIDs {
		if id <= 0 {
			return fmt.Errorf("%w: sku id %d is not positive", ErrInvalid, id)
		}
	}
	switch p.Kind {
	case KindSKUDiscount:
		switch {
		case len(p.SKUIDs) == 0:
			return fmt.Errorf("%w: a SKU discount names at least one SKU", ErrInvalid)
		case p.RateBP < 1 || p.RateBP >= BasisPoints:
			return fmt.Errorf("%w: rate %d basis points outside 1..%d", ErrInvalid, p.RateBP, BasisPoints-1)
		case len(p.Tiers) > 0:
			return fmt.Errorf("%w: a SKU discount has no tiers", ErrInvalid)
		}
	case KindFullReduction:
		if p.RateBP != 0 {
			return fmt.Errorf("%w: a full reduction has no rate", ErrInvalid)
		}
		if len(p.Tiers) < 1 || len(p.Tiers) > MaxTiers {
			return fmt.Errorf("%w: %d tiers, want 1..%d", ErrInvalid, len(p.Tiers), MaxTiers)
		}
		for _, t := range p.Tiers {
			if t.Threshold < 1 || t.Threshold > MaxAmount || t.Off < 1 || t.Off > t.Threshold {
				return fmt.Errorf("%w: tier spend %d take %d off: want 1 <= off <= spend <= %d", ErrInvalid, t.Threshold, t.Off, int64(MaxAmount))
			}
		}
	default:
		return fmt.Errorf("%w: promotion kind %q (want %s or %s)", ErrInvalid, p.Kind, KindSKUDiscount, KindFullReduction)
	}
	return nil
}

// CouponTemplate is a batch of platform coupons: Total of them, each
// taking Amount off an order whose payable amount (after the other
// promotions) reaches Threshold, claimable and usable from ValidFrom
// (inclusive) to ValidUntil (exclusive), at most PerUserLimit per user.
type CouponTemplate struct {
	ID           int64
	Threshold    int64
	Amount       int64
	Total        int64
	Claimed      int64
	PerUserLimit int64
	ValidFrom    time.Time
	ValidUntil   time.Time
}

// Validate checks a template about to be created at now.
func (t CouponTemplate) Validate(now time.Time) error {
	switch {
	case t.Threshold < 0 || t.Threshold > MaxAmount:
		return fmt.Errorf("%w: threshold %d outside 0..%d", ErrInvalid, t.Threshold, int64(MaxAmount))
	case t.Amount < 1 || t.Amount > MaxAmount:
		return fmt.Errorf("%w: amount %d outside 1..%d", ErrInvalid, t.Amount, int64(MaxAmount))
	case t.Total < 1 || t.Total > MaxCoupons:
		return fmt.Errorf("%w: total %d outside 1..%d", ErrInvalid, t.Total, MaxCoupons)
	case t.PerUserLimit < 1 || t.PerUserLimit > MaxPerUserLimit:
		return fmt.Errorf("%w: per_user_limit %d outside 1..%d", ErrInvalid, t.PerUserLimit, MaxPerUserLimit)
	}
	return validateWindow(t.ValidFrom, t.ValidUntil, now, "valid_from", "valid_until")
}

func validateWindow(from, until, now time.Time, fromName, untilName string) error {
	switch {
	case from.IsZero() || until.IsZero():
		return fmt.Errorf("%w: %s and %s are required", ErrInvalid, fromName, untilName)
	case !from.Before(until):
		return fmt.Errorf("%w: %s is not before %s", ErrInvalid, fromName, untilName)
	case !until.After(now):
		return fmt.Errorf("%w: %s %s is not in the future", ErrInvalid, untilName, until.Format(time.RFC3339))
	}
	return nil
}

// CouponStatus is where a coupon stands.
type CouponStatus string

// The coupon statuses. EXPIRED is not stored: it is an AVAILABLE coupon
// past its validity.
const (
	CouponAvailable CouponStatus = "AVAILABLE"
	CouponUsed      CouponStatus = "USED"
	CouponExpired   CouponStatus = "EXPIRED"
)

// Coupon is one user's coupon, claimed from a template whose terms it
// copies. OrderID is the order that consumed it (zero while unused).
type Coupon struct {
	ID         int64
	TemplateID int64
	UserID     int64
	Threshold  int64
	Amount     int64
	ValidFrom  time.Time
	ValidUntil time.Time
	Status     CouponStatus
	OrderID    int64
	ClaimedAt  time.Time
}

// UsedCoupon is an order that holds a coupon: used and not released, at
// UsedAt by the marketing service's clock.
type UsedCoupon struct {
	OrderID int64
	UsedAt  time.Time
}

// Bounds of a ListUsedCoupons page.
const (
	// MinUsedAge is the most recent use a page may ask for: more recent
	// ones may belong to checkouts still running (the order service
	// bounds a checkout at 30 s).
	MinUsedAge = time.Minute
	// MaxUsedPage is the most orders one page returns.
	MaxUsedPage = 1000
)

// ValidAt reports whether the coupon's window holds t.
func (c Coupon) ValidAt(t time.Time) bool {
	return !t.Before(c.ValidFrom) && t.Before(c.ValidUntil)
}

// StatusAt is the status shown at t: an unused coupon past its window is
// EXPIRED.
func (c Coupon) StatusAt(t time.Time) CouponStatus {
	if c.Status == CouponAvailable && !t.Before(c.ValidUntil) {
		return CouponExpired
	}
	return c.Status
}
