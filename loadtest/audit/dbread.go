package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/shadow"
)

// The audit's only reads of the services' own databases, in one place:
// every other figure comes through the HTTP API, as a buyer sees it. The
// audit must know what is stored, not what the API answers (an order the
// API never answered about, a payment it would hide), so it reads two
// tables of two services: orders with their lines (order service,
// services/order/postgres/migrations) and payments (payment service,
// services/payment/postgres/migrations). A migration that renames or
// drops a column read here breaks the audit; TestReplayAuditPasses runs
// both queries against the real migrations.
//
// A pressure test's books (a marked replay, docs/pressure-test.md) are in
// each database's shadow schema: its audit runs under a marked context
// (shadow.With) and reads through a postgres.Router, which sends a marked
// statement to the shadow tables, so the same SQL reads either class
// (classDB). TestMixedReplayLeaksNothing runs both.

// errUnrouted refuses a marked audit's read through a plain pool, which
// would read the real tables.
var errUnrouted = errors.New("audit: a pressure test's books are in the shadow schema: read them through a postgres.Router (postgres.DialRouted)")

// classDB is db as the audit reads it for ctx's traffic class: any pool
// for real books, a postgres.Router for marked ones.
func classDB(ctx context.Context, db postgres.DB) (postgres.DB, error) {
	if _, routed := db.(*postgres.Router); shadow.Is(ctx) && !routed {
		return nil, errUnrouted
	}
	return db, nil
}

// queryBooks reads the stored orders of a flash sale: each order's
// buyer, status, idempotency key, and its lines and units.
func queryBooks(ctx context.Context, orders postgres.DB, activityID int64) (*SeckillBooks, error) {
	orders, err := classDB(ctx, orders)
	if err != nil {
		return nil, err
	}
	rows, err := orders.Query(ctx, `SELECT o.order_id, o.user_id, o.status, o.idempotency_key, COUNT(l.line_id), COALESCE(SUM(l.quantity), 0),
			COALESCE(MAX(l.unit_price), 0), o.total, o.discount, o.payable
		FROM orders o LEFT JOIN order_lines l ON l.order_id = o.order_id
		WHERE o.activity_id = $1 GROUP BY o.order_id, o.user_id, o.status, o.idempotency_key, o.total, o.discount, o.payable`, activityID)
	if err != nil {
		return nil, fmt.Errorf("audit: orders: %w", err)
	}
	defer rows.Close()
	b := newSeckillBooks()
	for rows.Next() {
		var orderID, userID, lines int64
		var m OrderMoney
		var status, key string
		if err := rows.Scan(&orderID, &userID, &status, &key, &lines, &m.Units, &m.UnitPrice, &m.Total, &m.Discount, &m.Payable); err != nil {
			return nil, fmt.Errorf("audit: scan: %w", err)
		}
		id := strconv.FormatInt(orderID, 10)
		b.add(id, userID, status, lines, m.Units)
		b.Keys[id], b.Money[id] = key, m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: orders: %w", err)
	}
	return b, nil
}

// queryPayments reads every payment of the orders.
func queryPayments(ctx context.Context, pool postgres.DB, orderIDs []string) (map[string][]PaymentRecord, error) {
	pool, err := classDB(ctx, pool)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(orderIDs))
	for _, s := range orderIDs {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: order id %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	rows, err := pool.Query(ctx, `SELECT order_id, payment_id, user_id, channel, status, amount FROM payments WHERE order_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("audit: payments: %w", err)
	}
	defer rows.Close()
	out := map[string][]PaymentRecord{}
	for rows.Next() {
		var orderID, paymentID, userID int64
		var p PaymentRecord
		if err := rows.Scan(&orderID, &paymentID, &userID, &p.Channel, &p.Status, &p.Amount); err != nil {
			return nil, fmt.Errorf("audit: scan payment: %w", err)
		}
		p.PaymentID, p.UserID = strconv.FormatInt(paymentID, 10), strconv.FormatInt(userID, 10)
		key := strconv.FormatInt(orderID, 10)
		out[key] = append(out[key], p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: payments: %w", err)
	}
	return out, nil
}
