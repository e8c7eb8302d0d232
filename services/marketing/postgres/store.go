// Package postgres stores promotions, coupon templates and coupons in
// PostgreSQL. The schema is migrations/*.sql (Migrations, applied at
// start). Claiming and consuming coupons are single conditional
// statements, never SELECT … FOR UPDATE: the row lock an UPDATE takes
// until commit is all the serialisation they need.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/services/marketing"
)

// Migrations is the schema, for platform/postgres.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Store implements marketing.Store on a connection pool.
type Store struct {
	pool pgplatform.DB
}

// New returns a store on pool, whose schema is Migrations.
func New(pool pgplatform.DB) *Store { return &Store{pool: pool} }

// CreatePromotion records p and, in the same statement, the SKUs it names
// in promotion_skus, the index LivePromotions looks them up by.
func (s *Store) CreatePromotion(ctx context.Context, p marketing.Promotion) error {
	thresholds := make([]int64, len(p.Tiers))
	offs := make([]int64, len(p.Tiers))
	for i, t := range p.Tiers {
		thresholds[i], offs[i] = t.Threshold, t.Off
	}
	skus := p.SKUIDs
	if skus == nil {
		skus = []int64{}
	}
	_, err := s.pool.Exec(ctx, `WITH p AS (
			INSERT INTO promotions (promotion_id, kind, sku_ids, rate_bp, tier_thresholds, tier_offs, starts_at, ends_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING promotion_id, sku_ids, ends_at)
		INSERT INTO promotion_skus (sku_id, ends_at, promotion_id)
		SELECT DISTINCT sku_id, p.ends_at, p.promotion_id FROM p, unnest(p.sku_ids) AS sku_id`,
		p.ID, string(p.Kind), skus, p.RateBP, thresholds, offs, p.StartsAt, p.EndsAt)
	if err != nil {
		return fmt.Errorf("insert promotion: %w", err)
	}
	return nil
}

const promotionColumns = `promotion_id, kind, sku_ids, rate_bp, tier_thresholds, tier_offs, starts_at, ends_at`

// LivePromotions returns every promotion active at now that names one of
// skuIDs or names none (it applies to every SKU), in no particular order.
// Both halves are index lookups (migrations/002_promotion_skus.sql): the
// rows read are the cart's own promotions, whatever else is live, and
// nothing is left out for speed.
func (s *Store) LivePromotions(ctx context.Context, skuIDs []int64, now time.Time) ([]marketing.Promotion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+promotionColumns+` FROM promotions
		WHERE promotion_id IN (SELECT promotion_id FROM promotion_skus WHERE sku_id = ANY($1) AND ends_at > $2)
		  AND starts_at <= $2
		UNION ALL
		SELECT `+promotionColumns+` FROM promotions
		WHERE cardinality(sku_ids) = 0 AND ends_at > $2 AND starts_at <= $2`, skuIDs, now)
	if err != nil {
		return nil, fmt.Errorf("select live promotions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (marketing.Promotion, error) {
		var p marketing.Promotion
		var kind string
		var thresholds, offs []int64
		err := r.Scan(&p.ID, &kind, &p.SKUIDs, &p.RateBP, &thresholds, &offs, &p.StartsAt, &p.EndsAt)
		p.Kind = marketing.Kind(kind)
		for i := range thresholds {
			p.Tiers = append(p.Tiers, marketing.Tier{Threshold: thresholds[i], Off: offs[i]})
		}
		if len(p.SKUIDs) == 0 {
			p.SKUIDs = nil
		}
		p.StartsAt, p.EndsAt = p.StartsAt.UTC(), p.EndsAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("select live promotions: %w", err)
	}
	return list, nil
}

// CreateCouponTemplate records t with nothing claimed.
func (s *Store) CreateCouponTemplate(ctx context.Context, t marketing.CouponTemplate) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO coupon_templates
		(template_id, threshold, amount, total, per_user_limit, valid_from, valid_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.ID, t.Threshold, t.Amount, t.Total, t.PerUserLimit, t.ValidFrom, t.ValidUntil)
	if err != nil {
		return fmt.Errorf("insert coupon template: %w", err)
	}
	return nil
}

// errKeyClaimed rolls back a claim whose key the user already claimed
// the template with.
var errKeyClaimed = errors.New("the idempotency key claimed a coupon already")

// ClaimCoupon claims one coupon in one transaction of four statements:
// a conditional UPDATE that counts the claim on the template only while
// claimed < total (its row lock serialises the template's claims until
// commit, and the condition is evaluated on the latest committed count,
// so the total can never be passed); a look for the user's coupon of the
// template with the key, which ends a retry with that coupon (a
// duplicate waited for the first claim's lock, so it sees the coupon,
// also when the first claim took the last one and the UPDATE matched
// nothing); a conditional upsert that counts the claim for the user only
// while under the per-user limit; and the coupon's insert, whose UNIQUE
// (user_id, template_id, idempotency_key) stands behind the look. Any
// refusal, and a retry, rolls all of it back.
func (s *Store) ClaimCoupon(ctx context.Context, templateID, userID, couponID int64, key string, now time.Time) (marketing.Coupon, error) {
	c := marketing.Coupon{ID: couponID, TemplateID: templateID, UserID: userID, Status: marketing.CouponAvailable, ClaimedAt: now.UTC()}
	var first marketing.Coupon
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var limit int64
		err := tx.QueryRow(ctx, `UPDATE coupon_templates SET claimed = claimed + 1
			WHERE template_id = $1 AND claimed < total AND valid_from <= $2 AND valid_until > $2
			RETURNING threshold, amount, per_user_limit, valid_from, valid_until`, templateID, now).
			Scan(&c.Threshold, &c.Amount, &limit, &c.ValidFrom, &c.ValidUntil)
		counted := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("count claim: %w", err)
		}
		first, err = scanCoupon(tx.QueryRow(ctx, `SELECT `+couponColumns+` FROM coupons
			WHERE user_id = $1 AND template_id = $2 AND idempotency_key = $3`, userID, templateID, key))
		switch {
		case err == nil:
			return errKeyClaimed
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("coupon by key: %w", err)
		}
		if !counted {
			return whyNotClaimed(ctx, tx, templateID, now)
		}
		var mine int64
		err = tx.QueryRow(ctx, `INSERT INTO coupon_claims AS c (template_id, user_id, claimed) VALUES ($1, $2, 1)
			ON CONFLICT (template_id, user_id) DO UPDATE SET claimed = c.claimed + 1 WHERE c.claimed < $3
			RETURNING claimed`, templateID, userID, limit).Scan(&mine)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user %d holds %d: %w", userID, limit, marketing.ErrClaimLimit)
		}
		if err != nil {
			return fmt.Errorf("count user claim: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO coupons
			(coupon_id, template_id, user_id, threshold, amount, valid_from, valid_until, status, claimed_at, idempotency_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'AVAILABLE', $8, $9)`,
			c.ID, templateID, userID, c.Threshold, c.Amount, c.ValidFrom, c.ValidUntil, c.ClaimedAt, key); err != nil {
			return fmt.Errorf("insert coupon: %w", err)
		}
		return nil
	})
	if errors.Is(err, errKeyClaimed) {
		return first, nil
	}
	if err != nil {
		return marketing.Coupon{}, err
	}
	c.ValidFrom, c.ValidUntil = c.ValidFrom.UTC(), c.ValidUntil.UTC()
	return c, nil
}

// whyNotClaimed tells apart the reasons the claiming UPDATE matched no
// row.
func whyNotClaimed(ctx context.Context, tx pgx.Tx, templateID int64, now time.Time) error {
	var claimed, total int64
	var from, until time.Time
	err := tx.QueryRow(ctx, `SELECT claimed, total, valid_from, valid_until FROM coupon_templates WHERE template_id = $1`, templateID).
		Scan(&claimed, &total, &from, &until)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("template %d: %w", templateID, marketing.ErrNotFound)
	case err != nil:
		return fmt.Errorf("select template %d: %w", templateID, err)
	case now.Before(from) || !now.Before(until):
		return fmt.Errorf("claimable %s..%s: %w", from.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), marketing.ErrNotClaimable)
	}
	return fmt.Errorf("all %d claimed: %w", total, marketing.ErrCouponsExhausted)
}

const couponColumns = `coupon_id, template_id, user_id, threshold, amount, valid_from, valid_until, status, coalesce(order_id, 0), claimed_at`

func scanCoupon(row pgx.Row) (marketing.Coupon, error) {
	var c marketing.Coupon
	var status string
	err := row.Scan(&c.ID, &c.TemplateID, &c.UserID, &c.Threshold, &c.Amount, &c.ValidFrom, &c.ValidUntil, &status, &c.OrderID, &c.ClaimedAt)
	c.Status = marketing.CouponStatus(status)
	c.ValidFrom, c.ValidUntil, c.ClaimedAt = c.ValidFrom.UTC(), c.ValidUntil.UTC(), c.ClaimedAt.UTC()
	return c, err
}

// Coupon returns the user's coupon, or marketing.ErrNotFound.
func (s *Store) Coupon(ctx context.Context, userID, couponID int64) (marketing.Coupon, error) {
	c, err := scanCoupon(s.pool.QueryRow(ctx, `SELECT `+couponColumns+` FROM coupons WHERE coupon_id = $1 AND user_id = $2`, couponID, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return marketing.Coupon{}, fmt.Errorf("coupon %d: %w", couponID, marketing.ErrNotFound)
	}
	if err != nil {
		return marketing.Coupon{}, fmt.Errorf("select coupon %d: %w", couponID, err)
	}
	return c, nil
}

// UserCoupons returns up to limit of the user's coupons, newest first.
func (s *Store) UserCoupons(ctx context.Context, userID int64, limit int) ([]marketing.Coupon, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+couponColumns+` FROM coupons WHERE user_id = $1 ORDER BY coupon_id DESC LIMIT $2`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("select coupons of user %d: %w", userID, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (marketing.Coupon, error) { return scanCoupon(r) })
	if err != nil {
		return nil, fmt.Errorf("select coupons of user %d: %w", userID, err)
	}
	return list, nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a unique constraint.
const uniqueViolation = "23505"

// ConsumeCoupon marks the coupon used by the order with one conditional
// UPDATE; when it matches nothing, a read tells why (or that this order
// already holds it, which is success).
func (s *Store) ConsumeCoupon(ctx context.Context, userID, couponID, orderID int64, now time.Time) (marketing.Coupon, error) {
	var c marketing.Coupon
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		givenUp, err := lockOrder(ctx, tx, orderID)
		if err != nil || givenUp {
			return err
		}
		c, err = scanCoupon(tx.QueryRow(ctx, `UPDATE coupons SET status = 'USED', order_id = $3, used_at = $4
			WHERE coupon_id = $1 AND user_id = $2 AND status = 'AVAILABLE' AND valid_from <= $4 AND valid_until > $4
			RETURNING `+couponColumns, couponID, userID, orderID, now))
		return err
	})
	if err == nil && c.ID == 0 {
		return marketing.Coupon{}, fmt.Errorf("order %d: %w", orderID, marketing.ErrGivenUp)
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return c, nil
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return marketing.Coupon{}, fmt.Errorf("order %d holds another coupon: %w", orderID, marketing.ErrCouponUsed)
	case !errors.Is(err, pgx.ErrNoRows):
		return marketing.Coupon{}, fmt.Errorf("use coupon %d: %w", couponID, err)
	}
	c, err = s.Coupon(ctx, userID, couponID)
	switch {
	case err != nil:
		return marketing.Coupon{}, err
	case c.Status == marketing.CouponUsed && c.OrderID == orderID:
		return c, nil
	case c.Status == marketing.CouponUsed:
		return marketing.Coupon{}, fmt.Errorf("coupon %d used by order %d: %w", couponID, c.OrderID, marketing.ErrCouponUsed)
	}
	return marketing.Coupon{}, fmt.Errorf("coupon %d valid %s..%s: %w", couponID,
		c.ValidFrom.Format(time.RFC3339), c.ValidUntil.Format(time.RFC3339), marketing.ErrCouponNotApplicable)
}

// lockOrder serialises the use and the release of one order's coupon
// until tx ends (a transaction-scoped advisory lock on the order id) and
// reports whether a release left the order's tombstone.
func lockOrder(ctx context.Context, tx pgx.Tx, orderID int64) (givenUp bool, err error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, orderID); err != nil {
		return false, fmt.Errorf("lock order %d: %w", orderID, err)
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM coupon_tombstones WHERE order_id = $1)`, orderID).Scan(&givenUp); err != nil {
		return false, fmt.Errorf("tombstone of order %d: %w", orderID, err)
	}
	return givenUp, nil
}

// ReleaseCoupon makes the order's coupon available again. When the order
// holds none it leaves a tombstone, so that a use for the order still on
// its way (its caller gave the order up) is refused with ErrGivenUp.
func (s *Store) ReleaseCoupon(ctx context.Context, orderID int64) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockOrder(ctx, tx, orderID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `UPDATE coupons SET status = 'AVAILABLE', order_id = NULL, used_at = NULL
			WHERE order_id = $1 RETURNING coupon_id`, orderID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err = tx.Exec(ctx, `INSERT INTO coupon_tombstones (order_id) VALUES ($1) ON CONFLICT DO NOTHING`, orderID)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release coupon of order %d: %w", orderID, err)
	}
	return id, nil
}
