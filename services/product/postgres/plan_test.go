package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/testing/pgplan"
	"github.com/flashsale/flashsale/services/product/postgres"
)

// The order service's sweep of held stock (ListHeldStock) reads a page
// every poll in every expiry worker, and every paid order holds its stock
// for good: a page must read its own rows, not the paid orders before
// its key, nor the released reservations among them.
func TestHeldStockPagesReadOnlyTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "products_plans", 2, postgres.Migrations)
	const reservations = 100_000
	// A reservation every 50 ms from three hours ago, in time order as a
	// table fills; every third released. Their order ids are a
	// permutation of that order (g × 7919 modulo their count), so id
	// order is not time order.
	conn := pgplan.Conn(t, pool,
		`TRUNCATE stock_reservations, stock_tombstones, activities, products CASCADE`,
		`INSERT INTO products (sku_id, title, price, stock) VALUES (1, 'Phone', 100, 1000000)`,
		fmt.Sprintf(`INSERT INTO stock_reservations (order_id, sku_id, quantity, created_at, released_at)
			SELECT 1 + g * 7919 %% %[1]d, 1, 1, now() - interval '3 hours' + g * interval '50 ms',
				CASE WHEN g %% 3 = 0 THEN now() - interval '3 hours' + g * interval '50 ms' + interval '1 minute' END
			FROM generate_series(1, %[1]d) g`, reservations),
		`ANALYZE stock_reservations`)
	const page = 500
	held := func(offset int) string { return heldKey(t, conn, offset) }
	var all int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM stock_reservations WHERE released_at IS NULL`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	ages := "600, 14400, " // ten minutes old, the lookback four hours
	limit := fmt.Sprintf(", %d", page)
	pgplan.PagesReadTheirRows(t, conn, "the held stock", postgres.HeldStockStatement, []string{
		ages + "'-infinity', 0" + limit,     // a process's first page
		"600, 0, '-infinity', 0" + limit,    // no lookback
		ages + held(all/2) + limit,          // the middle of the backlog
		ages + held(all-100) + limit,        // its last page
		ages + held(all-1) + limit,          // the common one: nothing new
		"600, 3600, '-infinity', 0" + limit, // a lookback that starts inside the rows
	}, page)
}

// heldKey returns the key (its time and order id, as SQL literals) of
// the unreleased reservation at offset in the page order.
func heldKey(t *testing.T, conn *pgx.Conn, offset int) string {
	t.Helper()
	var key string
	if err := conn.QueryRow(context.Background(), `SELECT format('%L, %s', created_at, order_id) FROM stock_reservations
		WHERE released_at IS NULL ORDER BY created_at, order_id OFFSET $1 LIMIT 1`, offset).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}
