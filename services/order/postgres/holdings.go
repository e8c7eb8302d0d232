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
	return s.dueEntries(ctx, "overdue flash-sale orders", overdueSeckill, before, after.At, after.ID, limit)
}

// dueEntries runs stmt, which selects activity_id, order_id and
// expires_at, and returns its rows as entries; what names them in errors.
func (s *Store) dueEntries(ctx context.Context, what, stmt string, args ...any) ([]order.DueEntry, error) {
	rows, err := s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (order.DueEntry, error) {
		var d order.DueEntry
		return d, row.Scan(&d.ActivityID, &d.OrderID, &d.DueAt)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return due, nil
}

// ExpireOverdueSeckill moves the flash-sale orders among ids that are
// still PENDING_PAYMENT to EXPIRED, with an EXPIRED event each at at, as
// EndUnpaid does, and marks each stock_due in the same statement: the
// backstop's release is still to come (SeckillStockReleased clears the
// mark). It returns the ids it moved.
func (s *Store) ExpireOverdueSeckill(ctx context.Context, ids []int64, at time.Time) ([]int64, error) {
	return s.endUnpaid(ctx, ids, order.StatusExpired, at, true)
}

// seckillStockDue is SeckillStockDue's statement: its candidates leave
// the orders_seckill_stock_due index (migration 011) once released, so a
// page reads its own rows (TestSweepsReadOnlyTheirPage).
const seckillStockDue = `
		SELECT activity_id, order_id, expires_at FROM orders
		WHERE stock_due AND order_id > $1
		ORDER BY order_id
		LIMIT $2`

// SeckillStockDue returns up to limit flash-sale orders the backstop
// expired whose stock is not marked given back, with ids above after, by
// id.
func (s *Store) SeckillStockDue(ctx context.Context, after int64, limit int) ([]order.DueEntry, error) {
	return s.dueEntries(ctx, "flash-sale orders owed their stock", seckillStockDue, after, limit)
}

// SeckillStockReleased clears the stock_due mark of the orders among ids.
func (s *Store) SeckillStockReleased(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET stock_due = false WHERE order_id = ANY($1) AND stock_due`, ids); err != nil {
		return fmt.Errorf("mark the stock of %d expired flash-sale orders given back: %w", len(ids), err)
	}
	return nil
}
