// Package postgres stores promotions, coupon templates and coupons in
// PostgreSQL. The schema is migrations/*.sql (Migrations, applied at
// start). A claim is one statement (claim_coupon), so the template's row
// lock that serialises the template's claims is taken and released inside
// the database, never held across a round trip to the service; using and
// releasing a coupon lock only that coupon's row and the order's advisory
// lock, which no other buyer waits on.
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
	"github.com/flashsale/flashsale/platform/sweep"
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

// ClaimCoupon claims one coupon in one call of claim_coupon
// (migrations/005_claim_function.sql), one statement: it locks the
// template's row (so the template's claims go one at a time, and a
// duplicate claim waits for the first and then sees its coupon), answers
// the coupon the user's key already got, checks the validity window, the
// total and the per-user limit, then counts the claim for the user,
// inserts the coupon and counts it on the template. The template's row is
// hot (every claim of it updates the row), and its lock is taken and
// released inside the database: it never waits for a round trip to this
// service (TestClaimIsOneRoundTrip). A refusal changes nothing.
func (s *Store) ClaimCoupon(ctx context.Context, templateID, userID, couponID int64, key string, now time.Time) (marketing.Coupon, error) {
	c := marketing.Coupon{ID: couponID, TemplateID: templateID, UserID: userID, Status: marketing.CouponAvailable, ClaimedAt: now.UTC()}
	var outcome string
	var total, limit int64
	// An unknown template has no terms: NULL, read as zero.
	err := s.pool.QueryRow(ctx, `SELECT outcome, coalesce(threshold, 0), coalesce(amount, 0), coalesce(total, 0),
		coalesce(per_user_limit, 0), coalesce(valid_from, 'epoch'), coalesce(valid_until, 'epoch')
		FROM claim_coupon($1, $2, $3, $4, $5)`, templateID, userID, couponID, key, now).
		Scan(&outcome, &c.Threshold, &c.Amount, &total, &limit, &c.ValidFrom, &c.ValidUntil)
	if err != nil {
		return marketing.Coupon{}, fmt.Errorf("claim coupon: %w", err)
	}
	c.ValidFrom, c.ValidUntil = c.ValidFrom.UTC(), c.ValidUntil.UTC()
	switch outcome {
	case "claimed":
		return c, nil
	case "existing":
		first, err := scanCoupon(s.pool.QueryRow(ctx, `SELECT `+couponColumns+` FROM coupons
			WHERE user_id = $1 AND template_id = $2 AND idempotency_key = $3`, userID, templateID, key))
		if err != nil {
			return marketing.Coupon{}, fmt.Errorf("coupon by key: %w", err)
		}
		return first, nil
	case "not_found":
		return marketing.Coupon{}, fmt.Errorf("template %d: %w", templateID, marketing.ErrNotFound)
	case "not_claimable":
		return marketing.Coupon{}, fmt.Errorf("claimable %s..%s: %w", c.ValidFrom.Format(time.RFC3339), c.ValidUntil.Format(time.RFC3339), marketing.ErrNotClaimable)
	case "exhausted":
		return marketing.Coupon{}, fmt.Errorf("all %d claimed: %w", total, marketing.ErrCouponsExhausted)
	case "limit":
		return marketing.Coupon{}, fmt.Errorf("user %d holds %d: %w", userID, limit, marketing.ErrClaimLimit)
	}
	return marketing.Coupon{}, fmt.Errorf("claim coupon: unknown outcome %q", outcome)
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

// usedCoupons is a page of the orders holding a coupon used before $1,
// after the key ($2, $3), $4 rows at most. It reads only its own rows,
// from migrations/006's index of the used coupons by the time of their
// use and order (TestUsedCouponPagesReadOnlyTheirRows), however many
// paid orders hold their coupons for good before and after them.
const usedCoupons = `
	SELECT order_id, used_at FROM coupons
	WHERE status = 'USED' AND used_at < $1 AND (used_at, order_id) > ($2, $3)
	ORDER BY used_at, order_id
	LIMIT $4`

// UsedCoupons reads a page of the orders holding a coupon.
func (s *Store) UsedCoupons(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]marketing.UsedCoupon, error) {
	rows, err := s.pool.Query(ctx, usedCoupons, before, after.At, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("used coupons: %w", err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowToStructByPos[marketing.UsedCoupon])
	if err != nil {
		return nil, fmt.Errorf("used coupons: %w", err)
	}
	return used, nil
}
