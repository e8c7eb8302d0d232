package audit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
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

// queryBooks reads the stored orders of a flash sale: each order's
// buyer, status, idempotency key, and its lines and units.
func queryBooks(ctx context.Context, orders *pgxpool.Pool, activityID int64) (*SeckillBooks, error) {
	rows, err := orders.Query(ctx, `SELECT o.order_id, o.user_id, o.status, o.idempotency_key, COUNT(l.line_id), COALESCE(SUM(l.quantity), 0)
		FROM orders o LEFT JOIN order_lines l ON l.order_id = o.order_id
		WHERE o.activity_id = $1 GROUP BY o.order_id, o.user_id, o.status, o.idempotency_key`, activityID)
	if err != nil {
		return nil, fmt.Errorf("audit: orders: %w", err)
	}
	defer rows.Close()
	b := newSeckillBooks()
	for rows.Next() {
		var orderID, userID, lines, units int64
		var status, key string
		if err := rows.Scan(&orderID, &userID, &status, &key, &lines, &units); err != nil {
			return nil, fmt.Errorf("audit: scan: %w", err)
		}
		id := strconv.FormatInt(orderID, 10)
		b.add(id, userID, status, lines, units)
		b.Keys[id] = key
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: orders: %w", err)
	}
	return b, nil
}

// queryPayments reads every payment of the orders.
func queryPayments(ctx context.Context, pool *pgxpool.Pool, orderIDs []string) (map[string][]PaymentRecord, error) {
	ids := make([]int64, 0, len(orderIDs))
	for _, s := range orderIDs {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: order id %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	rows, err := pool.Query(ctx, `SELECT order_id, payment_id, channel, status FROM payments WHERE order_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("audit: payments: %w", err)
	}
	defer rows.Close()
	out := map[string][]PaymentRecord{}
	for rows.Next() {
		var orderID, paymentID int64
		var p PaymentRecord
		if err := rows.Scan(&orderID, &paymentID, &p.Channel, &p.Status); err != nil {
			return nil, fmt.Errorf("audit: scan payment: %w", err)
		}
		p.PaymentID = strconv.FormatInt(paymentID, 10)
		key := strconv.FormatInt(orderID, 10)
		out[key] = append(out[key], p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: payments: %w", err)
	}
	return out, nil
}
