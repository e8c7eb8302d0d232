package marketing

import (
	"context"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/idempotency"
	"github.com/flashsale/flashsale/platform/sweep"
)

// Store keeps promotions, coupon templates and coupons (Postgres).
type Store interface {
	// CreatePromotion records a promotion.
	CreatePromotion(ctx context.Context, p Promotion) error
	// LivePromotions returns every promotion active at now that names
	// one of skuIDs or applies to every SKU: all of them, by an index,
	// however many other promotions are live.
	LivePromotions(ctx context.Context, skuIDs []int64, now time.Time) ([]Promotion, error)
	// CreateCouponTemplate records a template.
	CreateCouponTemplate(ctx context.Context, t CouponTemplate) error
	// ClaimCoupon atomically counts one more coupon of the template as
	// claimed, overall and by the user, and records it as couponID with
	// the idempotency key. It never lets the claims pass the template's
	// total or the user's limit: ErrCouponsExhausted, ErrClaimLimit,
	// ErrNotClaimable (outside the window at now), ErrNotFound. When the
	// user already claimed a coupon of the template with the key, it
	// claims nothing and returns that coupon, whatever the counts are.
	ClaimCoupon(ctx context.Context, templateID, userID, couponID int64, key string, now time.Time) (Coupon, error)
	// Coupon returns the user's coupon, or ErrNotFound (also when it is
	// someone else's).
	Coupon(ctx context.Context, userID, couponID int64) (Coupon, error)
	// UserCoupons returns up to limit of the user's coupons, newest first.
	UserCoupons(ctx context.Context, userID int64, limit int) ([]Coupon, error)
	// ConsumeCoupon marks the user's available, valid coupon used by the
	// order. Consuming it again for the same order succeeds and changes
	// nothing; ErrCouponUsed when another order holds it or the order
	// holds another coupon, ErrCouponNotApplicable outside its window,
	// ErrNotFound.
	ConsumeCoupon(ctx context.Context, userID, couponID, orderID int64, now time.Time) (Coupon, error)
	// ReleaseCoupon makes the coupon the order consumed available again
	// and returns its id, or zero when the order holds none (never did,
	// or it is already released).
	ReleaseCoupon(ctx context.Context, orderID int64) (int64, error)
	// UsedCoupons returns up to limit orders holding a coupon used
	// before before, by the time of the use and then by order id, after
	// after (a use's time and its order id).
	UsedCoupons(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]UsedCoupon, error)
}

// IDs hands out new unique ids (a snowflake generator).
type IDs interface {
	Next() int64
}

// Config holds the service's dependencies.
type Config struct {
	Store Store
	IDs   IDs
	Clock clock.Clock
}

// ListLimit bounds ListCoupons.
const ListLimit = 200

// Service is the marketing use cases.
//
// It keeps no copy of the promotions: each quote looks up its own cart's
// by an index, so a promotion applies from the first quote after it is
// recorded, on every replica (docs/marketing.md, "Finding a cart's
// promotions", says why there is no cache in front).
type Service struct {
	store Store
	ids   IDs
	clock clock.Clock
}

// NewService returns a service over cfg.
func NewService(cfg Config) *Service {
	return &Service{store: cfg.Store, ids: cfg.IDs, clock: cfg.Clock}
}

// CreatePromotion validates p and records it with a fresh id.
func (s *Service) CreatePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	p.StartsAt, p.EndsAt = dbTime(p.StartsAt), dbTime(p.EndsAt)
	if err := p.Validate(s.clock.Now()); err != nil {
		return Promotion{}, fmt.Errorf("create promotion: %w", err)
	}
	p.ID = s.ids.Next()
	if err := s.store.CreatePromotion(ctx, p); err != nil {
		return Promotion{}, fmt.Errorf("create promotion: %w", err)
	}
	return p, nil
}

// CreateCouponTemplate validates t and records it with a fresh id and
// nothing claimed.
func (s *Service) CreateCouponTemplate(ctx context.Context, t CouponTemplate) (CouponTemplate, error) {
	t.ValidFrom, t.ValidUntil = dbTime(t.ValidFrom), dbTime(t.ValidUntil)
	t.Claimed = 0
	if err := t.Validate(s.clock.Now()); err != nil {
		return CouponTemplate{}, fmt.Errorf("create coupon template: %w", err)
	}
	t.ID = s.ids.Next()
	if err := s.store.CreateCouponTemplate(ctx, t); err != nil {
		return CouponTemplate{}, fmt.Errorf("create coupon template: %w", err)
	}
	return t, nil
}

// dbTime rounds t as Postgres stores it (microseconds, UTC), so an answer
// equals every later read.
func dbTime(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// ClaimCoupon gives the user one coupon of the template. The client's
// idempotency key names the claim within the user's claims of the
// template: a retry with it (a timeout, a double click) claims nothing
// more and answers the coupon the first claim gave, with its status as
// it stands, even once the template is exhausted or the user at the
// limit. The key is kept with the coupon in Postgres.
func (s *Service) ClaimCoupon(ctx context.Context, userID, templateID int64, key string) (Coupon, error) {
	if userID <= 0 || templateID <= 0 {
		return Coupon{}, fmt.Errorf("claim coupon: %w: user and template ids must be positive", ErrInvalid)
	}
	if err := idempotency.CheckKey(key); err != nil {
		return Coupon{}, fmt.Errorf("claim coupon: %w: %v", ErrInvalid, err)
	}
	now := s.clock.Now()
	c, err := s.store.ClaimCoupon(ctx, templateID, userID, s.ids.Next(), key, now)
	if err != nil {
		return Coupon{}, fmt.Errorf("claim coupon of template %d: %w", templateID, err)
	}
	c.Status = c.StatusAt(now)
	return c, nil
}

// ListCoupons returns the user's coupons, newest first, with the status
// they have now.
func (s *Service) ListCoupons(ctx context.Context, userID int64) ([]Coupon, error) {
	if userID <= 0 {
		return nil, fmt.Errorf("list coupons: %w: user id must be positive", ErrInvalid)
	}
	list, err := s.store.UserCoupons(ctx, userID, ListLimit)
	if err != nil {
		return nil, fmt.Errorf("list coupons: %w", err)
	}
	now := s.clock.Now()
	for i := range list {
		list[i].Status = list[i].StatusAt(now)
	}
	return list, nil
}

// Quote prices the user's cart with the active promotions and, when
// couponID is not zero, the user's coupon (see Price). The coupon must be
// available, or already consumed by orderID: a retried checkout prices
// the same way as its first attempt.
func (s *Service) Quote(ctx context.Context, userID int64, lines []Line, couponID, orderID int64) (Quote, error) {
	const op = "quote"
	if userID <= 0 || couponID < 0 || orderID < 0 {
		return Quote{}, fmt.Errorf("%s: %w: ids must be positive", op, ErrInvalid)
	}
	if err := ValidateLines(lines); err != nil {
		return Quote{}, fmt.Errorf("%s: %w", op, err)
	}
	now := s.clock.Now()
	skus := make([]int64, len(lines))
	for i, l := range lines {
		skus[i] = l.SKUID
	}
	promotions, err := s.store.LivePromotions(ctx, skus, now)
	if err != nil {
		return Quote{}, fmt.Errorf("%s: promotions: %w", op, err)
	}
	var coupon *Coupon
	if couponID != 0 {
		c, err := s.store.Coupon(ctx, userID, couponID)
		if err != nil {
			return Quote{}, fmt.Errorf("%s: %w", op, err)
		}
		if c.Status == CouponUsed && (orderID == 0 || c.OrderID != orderID) {
			return Quote{}, fmt.Errorf("%s: coupon %d used by order %d: %w", op, couponID, c.OrderID, ErrCouponUsed)
		}
		coupon = &c
	}
	q, err := Price(lines, promotions, coupon, now)
	if err != nil {
		return Quote{}, fmt.Errorf("%s: %w", op, err)
	}
	return q, nil
}

// ConsumeCoupon marks the user's coupon used by the order; repeating it
// for the same order is harmless.
func (s *Service) ConsumeCoupon(ctx context.Context, userID, couponID, orderID int64) (Coupon, error) {
	if userID <= 0 || couponID <= 0 || orderID <= 0 {
		return Coupon{}, fmt.Errorf("consume coupon: %w: ids must be positive", ErrInvalid)
	}
	c, err := s.store.ConsumeCoupon(ctx, userID, couponID, orderID, s.clock.Now())
	if err != nil {
		return Coupon{}, fmt.Errorf("consume coupon %d for order %d: %w", couponID, orderID, err)
	}
	return c, nil
}

// ListUsedCoupons returns the page of orders holding a coupon that q
// asks for, its ages on the service's clock, which stamps the uses.
func (s *Service) ListUsedCoupons(ctx context.Context, q sweep.AgedQuery) ([]UsedCoupon, error) {
	if err := q.Validate(MinUsedAge, MaxUsedPage); err != nil {
		return nil, fmt.Errorf("list used coupons: %w: %w", ErrInvalid, err)
	}
	before, after := q.Bounds(s.clock.Now())
	used, err := s.store.UsedCoupons(ctx, before, after, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list used coupons: %w", err)
	}
	return used, nil
}

// ReleaseCoupon gives back the coupon the order consumed (the order was
// cancelled, expired or fully refunded) and returns its id, zero when
// there was none. Repeating it is harmless.
func (s *Service) ReleaseCoupon(ctx context.Context, orderID int64) (int64, error) {
	if orderID <= 0 {
		return 0, fmt.Errorf("release coupon: %w: order id must be positive", ErrInvalid)
	}
	id, err := s.store.ReleaseCoupon(ctx, orderID)
	if err != nil {
		return 0, fmt.Errorf("release coupon of order %d: %w", orderID, err)
	}
	return id, nil
}
