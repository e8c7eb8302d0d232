package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/services/order"
)

// ExpireRegular moves up to limit regular orders that are PENDING_PAYMENT
// with a deadline at or before now to EXPIRED, earliest deadline first,
// with an EXPIRED event each at now, and returns their ids. Rows another transaction has locked (a cancel, a
// payment, another worker) are skipped rather than waited for: the
// locker either moves the row itself or leaves it for the next round. The
// outer status condition makes the UPDATE conditional like every other
// transition.
func (s *Store) ExpireRegular(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `
		WITH moved AS (
			UPDATE orders SET status = 'EXPIRED', updated_at = now()
			WHERE order_id IN (
				SELECT order_id FROM orders
				WHERE kind = 'REGULAR' AND status = 'PENDING_PAYMENT' AND expires_at <= $1
				ORDER BY expires_at
				LIMIT $2
				FOR UPDATE SKIP LOCKED)
			  AND status = 'PENDING_PAYMENT'
			RETURNING order_id),
		events AS (
			INSERT INTO order_events (order_id, type, kind, amount, at)
			SELECT order_id, 'EXPIRED', 'REGULAR', 0, $1 FROM moved)
		SELECT order_id FROM moved`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("expire regular orders due at %s: %w", now.Format(time.RFC3339), err)
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("expire regular orders due at %s: %w", now.Format(time.RFC3339), err)
	}
	return moved, nil
}

// unreleasedRegular is UnreleasedRegular's statement: its candidates
// leave the orders_regular_unreleased index once released, so they stay
// few, and a page reads its own rows (TestSweepsReadOnlyTheirPage).
const unreleasedRegular = `
		SELECT order_id, coalesce(coupon_id, 0) FROM orders
		WHERE kind = 'REGULAR' AND status IN ('CANCELLED', 'EXPIRED') AND released_at IS NULL AND order_id > $1
		ORDER BY order_id
		LIMIT $2`

// UnreleasedRegular returns up to limit ended (EXPIRED or CANCELLED)
// regular orders whose stock and coupon are not marked given back, with
// ids above after, by id.
func (s *Store) UnreleasedRegular(ctx context.Context, after int64, limit int) ([]order.RegularHold, error) {
	rows, err := s.pool.Query(ctx, unreleasedRegular, after, limit)
	if err != nil {
		return nil, fmt.Errorf("unreleased regular orders: %w", err)
	}
	holds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[order.RegularHold])
	if err != nil {
		return nil, fmt.Errorf("unreleased regular orders: %w", err)
	}
	return holds, nil
}

// MarkRegularReleased marks those of ids that are ended regular orders as
// having given back their stock and coupon; an order already marked
// keeps its first time.
func (s *Store) MarkRegularReleased(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE orders SET released_at = now()
		WHERE order_id = ANY($1) AND kind = 'REGULAR' AND status IN ('CANCELLED', 'EXPIRED') AND released_at IS NULL`,
		ids); err != nil {
		return fmt.Errorf("mark %d regular orders released: %w", len(ids), err)
	}
	return nil
}

// Stored returns those of ids that are stored orders.
func (s *Store) Stored(ctx context.Context, ids []int64) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT order_id FROM orders WHERE order_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("stored orders among %d: %w", len(ids), err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("stored orders among %d: %w", len(ids), err)
	}
	return stored, nil
}
