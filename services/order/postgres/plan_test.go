package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/testing/pgplan"
	"github.com/flashsale/flashsale/services/order/postgres"
)

// Reading orders looks their lines and promotions up in the order_id
// indexes, even on statistics taken while the tables were nearly empty:
// a flash sale fills them faster than autovacuum analyzes them. Written
// `order_id IN (SELECT … LIMIT $2)`, the user's list was planned as a
// scan of every line (a capacity run's audit, 142,121 lines, ran its list
// reads out of their 2 s budget). Each statement is planned as pgx runs
// it first (a custom plan, with its arguments) and as a generic plan.
func TestOrderReadsLookUpTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "orders_plans", 2, postgres.Migrations)
	ctx := context.Background()
	const orders, users = 100_000, 4_000
	setup := []string{
		`TRUNCATE orders, order_lines, order_promotions CASCADE`,
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at)
			SELECT g, 1 + g %% %d, 'REGULAR', 'PENDING_PAYMENT', NULL, 100, 10, 90, 'k' || g,
				timestamptz '2026-11-11' + g * interval '1 ms', timestamptz '2026-11-11 01:00' + g * interval '1 ms'
			FROM generate_series(1, %d) g`, users, orders),
		fmt.Sprintf(`INSERT INTO order_lines (line_id, order_id, sku_id, quantity, unit_price, amount, discount, payable)
			SELECT g, g, 3, 1, 100, 100, 10, 90 FROM generate_series(1, %d) g`, orders),
		fmt.Sprintf(`INSERT INTO order_promotions (order_id, position, promotion_id, kind, amount)
			SELECT g, 0, 5, 'SKU_DISCOUNT', 10 FROM generate_series(1, %d) g`, orders),
		// Statistics as an early analyze left them: few distinct orders.
		`ALTER TABLE order_lines ALTER COLUMN order_id SET (n_distinct = 50)`,
		`ALTER TABLE order_promotions ALTER COLUMN order_id SET (n_distinct = 50)`,
		`ANALYZE orders, order_lines, order_promotions`,
	}
	conn := pgplan.Conn(t, pool, setup...)
	args := map[string]string{"by id": "42", "the user's list": "43, 100", "by key": "43, 'k42'", "a flash-sale order by key": "43, 7, 'k42'"}
	for name, stmts := range postgres.OrderReadStatements() {
		for i, stmt := range stmts {
			what := []string{"the lines", "the promotions"}[i]
			err := pgplan.Plans(ctx, conn, stmt, []string{args[name]}, false, func(mode, _ string, plan pgplan.Node, raw []byte) {
				if bad := wholeScans(plan); len(bad) > 0 {
					t.Errorf("%s, %s: %s are read by %s, not by order id:\n%s", name, mode, what, strings.Join(bad, ", "), raw)
				}
			})
			if err != nil {
				t.Fatalf("%s, %s: %v", name, what, err)
			}
		}
	}
}

// wholeScans names the nodes of plan that read order_lines or
// order_promotions whole: a sequential scan, or an index walked without a
// condition.
func wholeScans(plan pgplan.Node) []string {
	var bad []string
	plan.Walk(func(n pgplan.Node) {
		if n.Relation != "order_lines" && n.Relation != "order_promotions" {
			return
		}
		switch n.NodeType {
		case "Index Scan", "Index Only Scan":
			if n.IndexCond == "" {
				bad = append(bad, n.NodeType+" of "+n.IndexName+" without a condition")
			}
		case "Bitmap Heap Scan":
		default:
			bad = append(bad, n.NodeType+" on "+n.Relation)
		}
	})
	return bad
}

// A sweep's page reads its own rows and no others, however many
// candidates wait behind it or are not due yet: on a sale's day every
// order awaiting payment is a candidate of the expiry backstop, and a
// channel's outage leaves thousands of refunds due at once. The backstop
// walked its index by id and filtered on the deadline, reading every
// order awaiting payment to find the few overdue (87 ms a page on
// 200,000, a scan of the whole table, every second in each expiry
// worker); the refund sweep read every due refund to sort a page by id.
// Each statement is run under EXPLAIN (ANALYZE, BUFFERS) as pgx runs it
// first (a custom plan) and as a generic plan, at the first, a middle and
// the last page of a pass and when nothing is due: the rows its scans read
// of each table, kept or filtered out, must stay within two pages, and
// the buffers each node touches within what its rows need
// (pgplan.PagesReadTheirRows).
func TestSweepsReadOnlyTheirPage(t *testing.T) {
	pool := stack.MustPool(t, "orders_plans", 2, postgres.Migrations)
	const awaiting, refunds, unreleased, givenBack, owed, backAgain = 100_000, 50_000, 20_000, 20_000, 20_000, 20_000
	// Five deadlines (and five refunds' creations) every 5 ms from 00:15:
	// 20,000 of each are due at cutoff, forty pages. The rows go in in
	// time order, as a table fills, so a page by time finds its rows
	// together; but their ids are a permutation of that order, g × 7919
	// modulo their count (7919 is prime to 100,000 and 50,000), so id
	// order is not time order: a page by id walks candidates of every
	// time, spread over the whole table.
	const cutoff = "timestamptz '2026-11-11 00:15' + interval '20000 ms'"
	setup := []string{
		`TRUNCATE orders, order_lines, order_promotions, order_refunds CASCADE`,
		// Flash-sale orders awaiting payment: the first overdue are
		// past cutoff.
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at)
			SELECT 1 + g * 7919 %% %[1]d, 1 + g %% 4000, 'SECKILL', 'PENDING_PAYMENT', 7, 100, 0, 100, 'k' || g,
				timestamptz '2026-11-11', timestamptz '2026-11-11 00:15' + (g / 5) * interval '5 ms'
			FROM generate_series(1, %[1]d) g`, awaiting),
		// Ended regular orders whose give-back is due.
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at)
			SELECT %d + g, 1 + g %% 4000, 'REGULAR', 'CANCELLED', NULL, 100, 0, 100, 'r' || g,
				timestamptz '2026-11-11', timestamptz '2026-11-11 00:15'
			FROM generate_series(1, %d) g`, awaiting, unreleased),
		// Ended regular orders given back already, after them by id.
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at, released_at)
			SELECT %d + g, 1 + g %% 4000, 'REGULAR', 'EXPIRED', NULL, 100, 0, 100, 'g' || g,
				timestamptz '2026-11-11', timestamptz '2026-11-11 00:15', timestamptz '2026-11-11 00:16'
			FROM generate_series(1, %d) g`, awaiting+unreleased, givenBack),
		// Flash-sale orders the backstop expired whose stock is owed,
		// then ones whose stock is back, after them by id.
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at, stock_due)
			SELECT %d + g, 1 + g %% 4000, 'SECKILL', 'EXPIRED', 7, 100, 0, 100, 'o' || g,
				timestamptz '2026-11-11', timestamptz '2026-11-11 00:15', g <= %d
			FROM generate_series(1, %d) g`, awaiting+unreleased+givenBack, owed, owed+backAgain),
		// Refunds left pending: the first due were created before
		// cutoff.
		fmt.Sprintf(`INSERT INTO order_refunds (refund_id, order_id, payment_id, amount, status, completes, created_at)
			SELECT 1000001 + g * 7919 %% %[1]d, g, 1, 100, 'PENDING', true, timestamptz '2026-11-11 00:15' + (g / 5) * interval '5 ms'
			FROM generate_series(1, %[1]d) g`, refunds),
		`ANALYZE orders, order_refunds`,
	}
	conn := pgplan.Conn(t, pool, setup...)
	const page = 500
	// The pages to read, by sweep: the first of a pass, one from its
	// middle (after a key between two rows of one instant), its last
	// (fewer than a page left), and the common one, when nothing is due:
	// a walk that filters reads every candidate to find that out. For
	// the give-backs, by id, that is the page after the last order to
	// give back, with only orders given back behind it: the page that
	// ends a pass, and every page once all are given back.
	none := "timestamptz '2026-11-11 00:14'"
	limit := fmt.Sprintf(", %d", page)
	timed := func(table, at, id string) []string {
		return []string{cutoff + ", '-infinity', 0" + limit, cutoff + ", " + keyAt(t, conn, table, at, id, 5000) + limit,
			cutoff + ", " + keyAt(t, conn, table, at, id, 19900) + limit, none + ", '-infinity', 0" + limit}
	}
	byID := func(last, count int) []string {
		return []string{"0" + limit, fmt.Sprint(last-count/2) + limit, fmt.Sprint(last-100) + limit, fmt.Sprint(last) + limit}
	}
	pages := map[string][]string{
		"the expiry backstop":       timed("orders", "expires_at", "order_id"),
		"the backstop's stock owed": byID(awaiting+unreleased+givenBack+owed, owed),
		"the refund sweep":          timed("order_refunds", "created_at", "refund_id"),
		"the regular give-backs":    byID(awaiting+unreleased, unreleased), // the last order to give back
	}
	stmts := postgres.SweepStatements()
	if len(stmts) != len(pages) {
		t.Fatalf("%d sweep statements, %d with pages to read", len(stmts), len(pages))
	}
	for name, stmt := range stmts {
		pgplan.PagesReadTheirRows(t, conn, name, stmt, pages[name], page)
	}
}

// keyAt returns the key (its time and id, as SQL literals) of the third
// by id of the rows of table whose time column at is ms after 00:15: a
// key between two rows of one instant, as a page that ends there leaves
// it. It fails t unless a row of that instant follows the key.
func keyAt(t *testing.T, conn *pgx.Conn, table, at, id string, ms int) string {
	t.Helper()
	var key string
	var rows int
	err := conn.QueryRow(context.Background(), fmt.Sprintf(`SELECT format('%%L, %%s', %[2]s, %[3]s), count(*) OVER ()
		FROM %[1]s WHERE %[2]s = timestamptz '2026-11-11 00:15' + %[4]d * interval '1 ms'
		ORDER BY %[3]s OFFSET 2 LIMIT 1`, table, at, id, ms)).Scan(&key, &rows)
	if err != nil || rows < 4 {
		t.Fatalf("the key at %d ms in %s: %d rows at that instant, want 4 or more (%v)", ms, table, rows, err)
	}
	return key
}
