package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/order"
)

// SeckillHoldings returns every stored order of a flash sale with what
// its reservation holds by the order's status: waiting for payment holds
// its units (RESERVED), paid or refunded holds them for good (CONFIRMED:
// refunded goods are not sold again), ended unpaid holds nothing
// (RELEASED). A fully refunded order gave its units back to the buyer's
// limit (refunds restore the limit only with the refund that completes
// an order).
func (s *Store) SeckillHoldings(ctx context.Context, activityID int64) ([]order.HeldOrder, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT o.order_id, o.user_id, o.status, o.idempotency_key, o.expires_at, sum(l.quantity)
		FROM orders o JOIN order_lines l ON l.order_id = o.order_id
		WHERE o.kind = 'SECKILL' AND o.activity_id = $1
		GROUP BY o.order_id
		ORDER BY o.order_id`, activityID)
	if err != nil {
		return nil, fmt.Errorf("holdings of sale %d: %w", activityID, err)
	}
	held, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (order.HeldOrder, error) {
		var h order.HeldOrder
		var st order.Status
		err := row.Scan(&h.OrderID, &h.UserID, &st, &h.IdempotencyKey, &h.ExpiresAt, &h.Quantity)
		switch st {
		case order.StatusPendingPayment:
			h.Status = order.ReservationReserved
		case order.StatusPaid, order.StatusPartiallyRefunded:
			h.Status = order.ReservationConfirmed
		case order.StatusRefunded:
			h.Status, h.Restored = order.ReservationConfirmed, h.Quantity
		default:
			h.Status = order.ReservationReleased
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("holdings of sale %d: %w", activityID, err)
	}
	return held, nil
}

// overdueSeckill is OverdueSeckill's statement.
const overdueSeckill = `
		SELECT activity_id, order_id, expires_at FROM orders
		WHERE kind = 'SECKILL' AND status = 'PENDING_PAYMENT' AND expires_at <= $1
			AND (expires_at, order_id) > ($2, $3)
		ORDER BY expires_at, order_id
		LIMIT $4`

// OverdueSeckill returns up to limit flash-sale orders still
// PENDING_PAYMENT whose payment deadline is at or before before, with keys
// above after, by deadline and id (a page of the expiry backstop's
// sweep). The orders_seckill_overdue index (migration 009) holds them in
// that order, so the page reads its own rows and no others
// (TestSweepsReadOnlyTheirPage).
func (s *Store) OverdueSeckill(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]order.DueEntry, error) {
	rows, err := s.pool.Query(ctx, overdueSeckill, before, after.At, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("overdue flash-sale orders: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (order.DueEntry, error) {
		var d order.DueEntry
		return d, row.Scan(&d.ActivityID, &d.OrderID, &d.DueAt)
	})
	if err != nil {
		return nil, fmt.Errorf("overdue flash-sale orders: %w", err)
	}
	return due, nil
}
