package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/services/order"
)

// EndUnpaid moves those of ids that are PENDING_PAYMENT to to (CANCELLED
// or EXPIRED) in one conditional UPDATE, which also writes each moved
// order's event at at, and returns the ids it moved. A
// racing transition (a payment, a cancel, another worker) either happened
// first, and the row no longer matches, or waits for this one's row lock
// and then finds the row changed: exactly one of them wins.
func (s *Store) EndUnpaid(ctx context.Context, ids []int64, to order.Status, at time.Time) ([]int64, error) {
	return s.endUnpaid(ctx, ids, to, at, false)
}

// endUnpaid is EndUnpaid; stockDue also marks the flash-sale orders it
// moves as owed their stock (ExpireOverdueSeckill), and moves no other.
func (s *Store) endUnpaid(ctx context.Context, ids []int64, to order.Status, at time.Time, stockDue bool) ([]int64, error) {
	if to != order.StatusCancelled && to != order.StatusExpired {
		return nil, fmt.Errorf("end unpaid orders: %w: target status %s", order.ErrInvalid, to)
	}
	rows, err := s.pool.Query(ctx, `
		WITH moved AS (
			UPDATE orders SET status = $2, updated_at = now(), stock_due = $4
			WHERE order_id = ANY($1) AND status = 'PENDING_PAYMENT' AND (NOT $4 OR kind = 'SECKILL')
			RETURNING order_id, kind, activity_id),
		events AS (
			INSERT INTO order_events (order_id, type, kind, activity_id, amount, at)
			SELECT order_id, $2, kind, coalesce(activity_id, 0), 0, $3 FROM moved)
		SELECT order_id FROM moved`, ids, string(to), at, stockDue)
	if err != nil {
		return nil, fmt.Errorf("end %d unpaid orders as %s: %w", len(ids), to, err)
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("end %d unpaid orders as %s: %w", len(ids), to, err)
	}
	return moved, nil
}

// Statuses returns the status of every stored order among ids.
func (s *Store) Statuses(ctx context.Context, ids []int64) (map[int64]order.Status, error) {
	rows, err := s.pool.Query(ctx, `SELECT order_id, status FROM orders WHERE order_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("statuses of %d orders: %w", len(ids), err)
	}
	out := make(map[int64]order.Status, len(ids))
	var id int64
	var st string
	if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		out[id] = order.Status(st)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("statuses of %d orders: %w", len(ids), err)
	}
	return out, nil
}
