package postgres_test

import (
	"fmt"
	"testing"

	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/platform/testing/pgplan"
	"github.com/flashsale/flashsale/services/payment/postgres"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"payment_plans"}, NoBroker: true},
		func(s *localstack.Stack) { stack = s })
}

// A page of the sweep's stuck payments reads its own rows and no others.
// Every payment a buyer opened and left stays PAYING for the sweep's whole
// QueryFor window, so on a sale's day they number in the thousands; read
// by creation with the page ordered by id, each page read every one in
// the window to return a few hundred. The pages: the first of a pass,
// one from its middle (between two payments created at one instant),
// its last, and one when none is old enough yet, each under EXPLAIN
// ANALYZE as pgx runs it first (a custom plan) and as a generic plan
// (TestSweepsReadOnlyTheirPage in the order store is its sibling).
func TestStuckPagesReadOnlyTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "payment_plans", 2, postgres.Migrations)
	conn := pgplan.Conn(t, pool,
		`TRUNCATE payments CASCADE`,
		// 100,000 payments, ten every 5 ms from 00:00, every other one
		// left PAYING and the rest paid; and 50,000 left PAYING the day
		// before, outside the window, which a pass must not step over.
		`INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at, paid_at)
			SELECT g, g, 1 + g % 4000, 'alipay', 100,
				CASE WHEN g % 2 = 0 THEN 'PAYING' ELSE 'SUCCEEDED' END,
				timestamptz '2026-11-11' + (g / 10) * interval '5 ms',
				CASE WHEN g % 2 = 0 THEN NULL ELSE timestamptz '2026-11-11 01:00' END
			FROM generate_series(1, 100000) g`,
		`INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at)
			SELECT 200000 + g, 200000 + g, 1, 'alipay', 100, 'PAYING', timestamptz '2026-11-09' + g * interval '1 ms'
			FROM generate_series(1, 50000) g`,
		`ANALYZE payments`)
	const page = 500
	// The window holds the payments created in the first 20 s: 20,000.
	window := "timestamptz '2026-11-10', timestamptz '2026-11-11' + interval '20000 ms'"
	limit := fmt.Sprintf(", %d", page)
	pages := []string{
		window + ", timestamptz '2026-11-10', 0" + limit, // a pass starts at the window's start (Stuck)
		window + ", timestamptz '2026-11-11' + interval '5000 ms', 10004" + limit,
		window + ", timestamptz '2026-11-11' + interval '19900 ms', 39800" + limit,
		"timestamptz '2026-11-10', timestamptz '2026-11-10 23:00', timestamptz '2026-11-10', 0" + limit,
	}
	pgplan.PagesReadTheirRows(t, conn, "the stuck payments", postgres.StuckStatement, pages, page)
}
