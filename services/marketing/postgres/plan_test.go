package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/testing/pgplan"
	"github.com/flashsale/flashsale/services/marketing/postgres"
)

// The order service's sweep of holds (ListUsedCoupons) reads a page
// every poll in every expiry worker, and every paid order keeps its
// coupon used for good: a page must read its own rows, not the used
// coupons before its key, nor the available ones among them.
func TestUsedCouponPagesReadOnlyTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "marketing_plans", 2, postgres.Migrations)
	const coupons = 100_000
	// A use every 50 ms from 2026-11-11, in time order as a table fills;
	// every third coupon still available. Order ids are a permutation of
	// that order (g × 7919 modulo their count): id order is not time
	// order.
	conn := pgplan.Conn(t, pool,
		`TRUNCATE coupons, coupon_templates CASCADE`,
		fmt.Sprintf(`INSERT INTO coupon_templates (template_id, threshold, amount, total, claimed, per_user_limit, valid_from, valid_until)
			VALUES (1, 0, 100, %[1]d, %[1]d, 1, timestamptz '2026-01-01', timestamptz '2027-01-01')`, coupons),
		fmt.Sprintf(`INSERT INTO coupons (coupon_id, template_id, user_id, threshold, amount, valid_from, valid_until, status, order_id, claimed_at, used_at)
			SELECT g, 1, g, 0, 100, timestamptz '2026-01-01', timestamptz '2027-01-01',
				CASE WHEN g %% 3 = 0 THEN 'AVAILABLE' ELSE 'USED' END,
				CASE WHEN g %% 3 = 0 THEN NULL ELSE 1 + g * 7919 %% %[1]d END,
				timestamptz '2026-11-11',
				CASE WHEN g %% 3 = 0 THEN NULL ELSE timestamptz '2026-11-11' + g * interval '50 ms' END
			FROM generate_series(1, %[1]d) g`, coupons),
		`ANALYZE coupons`)
	const page = 500
	used := func(offset int) string { return usedKey(t, conn, offset) }
	var all int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM coupons WHERE status = 'USED'`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	before := "timestamptz '2026-11-12', " // every use old enough
	limit := fmt.Sprintf(", %d", page)
	pgplan.PagesReadTheirRows(t, conn, "the used coupons", postgres.UsedCouponsStatement, []string{
		before + "'-infinity', 0" + limit,                        // the first page with no window
		before + used(all/2) + limit,                             // a window's start or a mark, in the middle
		before + used(all-100) + limit,                           // the last page
		before + used(all-1) + limit,                             // the common one: nothing new
		"timestamptz '2026-11-11 00:30', '-infinity', 0" + limit, // few old enough
	}, page)
}

// usedKey returns the key (its time and order id, as SQL literals) of the
// used coupon at offset in the page order.
func usedKey(t *testing.T, conn *pgx.Conn, offset int) string {
	t.Helper()
	var key string
	if err := conn.QueryRow(context.Background(), `SELECT format('%L, %s', used_at, order_id) FROM coupons
		WHERE status = 'USED' ORDER BY used_at, order_id OFFSET $1 LIMIT 1`, offset).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}
