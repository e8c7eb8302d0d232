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
	localstack.RunTests(m, localstack.Config{Databases: []string{"payment_plans", "payment_ledger", "payment_ledger_failed"}, NoBroker: true},
		func(s *localstack.Stack) { stack = s })
}

// A page of the payments due for a query reads its own rows and no
// others. Every payment a buyer opened and left stays PAYING for the
// sweep's whole QueryFor window, so on a sale's day they number in the
// thousands, nearly all of them waiting for a later query, and those left
// longer than the window wait for none. The pages: when nothing is due
// yet, when a few hundred are, and when all are (an hour behind), each
// under EXPLAIN ANALYZE as pgx runs it first (a custom plan) and as a
// generic plan (TestSweepsReadOnlyTheirPage in the order store is its
// sibling).
func TestDuePagesReadOnlyTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "payment_plans", 2, postgres.Migrations)
	conn := pgplan.Conn(t, pool,
		`TRUNCATE payments CASCADE`,
		// 100,000 payments created from 00:00, every other one left
		// PAYING, due for a query over the next hour in an order that is
		// not the ids' (a payment's next query depends on its age), and
		// the rest paid; and 50,000 left PAYING the day before, whose
		// questions are over (query_at NULL). The rows lie on disk in
		// the order they were created, not of their next question: each
		// question rewrites its row, so no order on disk follows the
		// page's (pgplan.ScatteredPagesReadTheirRows).
		`INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at, paid_at, query_at)
			SELECT g, g, 1 + g % 4000, 'alipay', 100,
				CASE WHEN g % 2 = 0 THEN 'PAYING' ELSE 'SUCCEEDED' END,
				timestamptz '2026-11-11' + (g / 10) * interval '5 ms',
				CASE WHEN g % 2 = 0 THEN NULL ELSE timestamptz '2026-11-11 01:00' END,
				CASE WHEN g % 2 = 0 THEN timestamptz '2026-11-11 00:01' + (g * 7919 % 100000) * interval '36 ms' END
			FROM generate_series(1, 100000) g`,
		`INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at)
			SELECT 200000 + g, 200000 + g, 1, 'alipay', 100, 'PAYING', timestamptz '2026-11-09' + g * interval '1 ms'
			FROM generate_series(1, 50000) g`,
		`ANALYZE payments`)
	const page = 500
	limit := fmt.Sprintf(", %d", page)
	pages := []string{
		"timestamptz '2026-11-11 00:00:30'" + limit, // nothing due yet
		"timestamptz '2026-11-11 00:02'" + limit,    // about 830 due
		"timestamptz '2026-11-11 02:00'" + limit,    // all 50,000 due
	}
	pgplan.ScatteredPagesReadTheirRows(t, conn, "the payments due for a query", postgres.DueStatement, pages, page)
}
