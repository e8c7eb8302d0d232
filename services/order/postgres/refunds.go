package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/order"
)

// errKeyTaken rolls back a RecordRefund whose key names a refund already.
var errKeyTaken = errors.New("the idempotency key names a refund already")

// RecordRefund stores r with its lines' amounts and moves the order, in
// one transaction of conditional updates and no SELECT … FOR UPDATE:
//
//  1. the order's row moves only when it is the user's PAID or
//     PARTIALLY_REFUNDED order; its row lock, held until commit, makes
//     refunds of one order take turns, so each later statement here sees
//     every earlier refund of the order;
//  2. a refund of the order with r's idempotency key ends it, changing
//     nothing: a duplicate waited in step 1 for the first request's
//     transaction, so it sees that refund here, even when the first
//     refund left no units (the order REFUNDED, step 1 matching nothing);
//  3. each line adds its units only while they fit (refunded_quantity +
//     k <= quantity), which returns the units refunded before, the `done`
//     the apportionment prices the k units after;
//  4. the order adds the amounts and becomes REFUNDED when no line has
//     units left, else PARTIALLY_REFUNDED;
//  5. the refund and its lines are inserted PENDING; the table's UNIQUE
//     (order_id, idempotency_key) stands behind step 2;
//  6. its REFUNDED event goes to the outbox.
//
// Any refusal rolls everything back, so an over-refund changes nothing.
func (s *Store) RecordRefund(ctx context.Context, r order.Refund) (order.Refund, order.Order, bool, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE orders SET updated_at = now()
			WHERE order_id = $1 AND user_id = $2 AND status IN ('PAID', 'PARTIALLY_REFUNDED') AND payment_id IS NOT NULL
			RETURNING payment_id`, r.OrderID, r.UserID).Scan(&r.PaymentID)
		refundable := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM order_refunds r JOIN orders o ON o.order_id = r.order_id
			WHERE r.order_id = $1 AND o.user_id = $2 AND r.idempotency_key = $3)`,
			r.OrderID, r.UserID, r.IdempotencyKey).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return errKeyTaken
		}
		if !refundable {
			return fmt.Errorf("%w: order %d is not a paid order of user %d", order.ErrConflict, r.OrderID, r.UserID)
		}
		r.Amount = 0
		lineIDs, qtys, amounts := make([]int64, len(r.Lines)), make([]int64, len(r.Lines)), make([]int64, len(r.Lines))
		for i, rl := range r.Lines {
			amount, err := refundLine(ctx, tx, r.OrderID, rl)
			if err != nil {
				return err
			}
			r.Lines[i].Amount = amount
			r.Amount += amount
			lineIDs[i], qtys[i], amounts[i] = rl.LineID, rl.Quantity, amount
		}
		var status string
		if err := tx.QueryRow(ctx, `UPDATE orders SET refunded = refunded + $2, updated_at = now(),
				status = CASE WHEN EXISTS (SELECT 1 FROM order_lines WHERE order_id = $1 AND refunded_quantity < quantity)
				              THEN 'PARTIALLY_REFUNDED' ELSE 'REFUNDED' END
			WHERE order_id = $1 RETURNING status`, r.OrderID, r.Amount).Scan(&status); err != nil {
			return err
		}
		r.Status, r.Completes = order.RefundPending, order.Status(status) == order.StatusRefunded
		if _, err := tx.Exec(ctx, `INSERT INTO order_refunds (refund_id, order_id, payment_id, idempotency_key, amount, status, completes, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			r.ID, r.OrderID, r.PaymentID, r.IdempotencyKey, r.Amount, string(r.Status), r.Completes, r.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO order_refund_lines (refund_id, line_id, quantity, amount)
			SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])`, r.ID, lineIDs, qtys, amounts); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO order_events (order_id, type, kind, activity_id, amount, ref, at)
			SELECT order_id, 'REFUNDED', kind, coalesce(activity_id, 0), $2, $3, $4 FROM orders WHERE order_id = $1`,
			r.OrderID, r.Amount, r.ID, r.CreatedAt)
		return err
	})
	created := err == nil
	recorded := r
	if errors.Is(err, errKeyTaken) {
		recorded, err = s.RefundByKey(ctx, r.OrderID, r.UserID, r.IdempotencyKey)
	}
	if err != nil {
		return order.Refund{}, order.Order{}, false, fmt.Errorf("record refund of order %d: %w", r.OrderID, err)
	}
	o, err := s.Order(ctx, r.OrderID)
	if err != nil {
		return order.Refund{}, order.Order{}, false, err
	}
	return recorded, o, created, nil
}

// refundLine adds rl's units to its line when they fit and returns what
// they cost the buyer.
func refundLine(ctx context.Context, tx pgx.Tx, orderID int64, rl order.RefundLine) (int64, error) {
	l := order.Line{ID: rl.LineID}
	var done int64
	err := tx.QueryRow(ctx, `UPDATE order_lines SET refunded_quantity = refunded_quantity + $3
		WHERE line_id = $1 AND order_id = $2 AND refunded_quantity + $3 <= quantity
		RETURNING unit_price, quantity, discount, refunded_quantity - $3, refunded`, rl.LineID, orderID, rl.Quantity).
		Scan(&l.UnitPrice, &l.Quantity, &l.Discount, &done, &l.Refunded)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: line %d of order %d has fewer than %d units left to refund", order.ErrConflict, rl.LineID, orderID, rl.Quantity)
	}
	if err != nil {
		return 0, err
	}
	amount, err := order.RefundAmount(l, done, rl.Quantity)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE order_lines SET refunded = refunded + $2 WHERE line_id = $1`, rl.LineID, amount); err != nil {
		return 0, err
	}
	return amount, nil
}

// RefundSucceeded marks a PENDING refund SUCCEEDED and returns its
// units; moved is false when it was not PENDING.
func (s *Store) RefundSucceeded(ctx context.Context, refundID int64, at time.Time) (units int64, moved bool, err error) {
	err = s.pool.QueryRow(ctx, `UPDATE order_refunds SET status = 'SUCCEEDED', done_at = $2
		WHERE refund_id = $1 AND status = 'PENDING'
		RETURNING (SELECT coalesce(sum(quantity), 0) FROM order_refund_lines WHERE refund_id = $1)`, refundID, at).Scan(&units)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("refund %d succeeded: %w", refundID, err)
	}
	return units, true, nil
}

// pendingRefunds is PendingRefunds' statement.
const pendingRefunds = `SELECT r.refund_id, r.order_id, o.user_id, r.payment_id, r.amount, r.completes, r.created_at
		FROM order_refunds r JOIN orders o ON o.order_id = r.order_id
		WHERE r.status = 'PENDING' AND r.created_at <= $1 AND (r.created_at, r.refund_id) > ($2, $3)
		ORDER BY r.created_at, r.refund_id LIMIT $4`

// PendingRefunds returns up to limit PENDING refunds created at or before
// before with keys above after, by creation and id, without their lines.
// The order_refunds_due index (migration 010) holds them in that order,
// so a page reads its own rows (TestSweepsReadOnlyTheirPage).
func (s *Store) PendingRefunds(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]order.Refund, error) {
	rows, err := s.pool.Query(ctx, pendingRefunds, before, after.At, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("pending refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (order.Refund, error) {
		r := order.Refund{Status: order.RefundPending}
		err := row.Scan(&r.ID, &r.OrderID, &r.UserID, &r.PaymentID, &r.Amount, &r.Completes, &r.CreatedAt)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("pending refunds: %w", err)
	}
	return out, nil
}

// Refunds returns the order's refunds with their lines, oldest first.
func (s *Store) Refunds(ctx context.Context, orderID int64) ([]order.Refund, error) {
	out, err := s.queryRefunds(ctx, `WHERE r.order_id = $1 ORDER BY r.created_at, r.refund_id, l.line_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("refunds of order %d: %w", orderID, err)
	}
	return out, nil
}

// RefundByKey returns the user's refund of the order with the
// idempotency key, with its lines, or order.ErrNotFound. The UNIQUE
// (order_id, idempotency_key) is its index.
func (s *Store) RefundByKey(ctx context.Context, orderID, userID int64, key string) (order.Refund, error) {
	found, err := s.queryRefunds(ctx, `WHERE r.order_id = $1 AND o.user_id = $2 AND r.idempotency_key = $3 ORDER BY l.line_id`,
		orderID, userID, key)
	if err != nil {
		return order.Refund{}, fmt.Errorf("refund of order %d by key: %w", orderID, err)
	}
	if len(found) == 0 {
		return order.Refund{}, fmt.Errorf("refund of order %d by key: %w", orderID, order.ErrNotFound)
	}
	return found[0], nil
}

// queryRefunds returns the refunds, with their lines, that where (a WHERE
// and ORDER BY clause over refunds r, orders o and refund lines l, which
// keeps each refund's lines together) selects.
func (s *Store) queryRefunds(ctx context.Context, where string, args ...any) ([]order.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.refund_id, r.order_id, o.user_id, r.payment_id, coalesce(r.idempotency_key, ''),
			r.amount, r.status, r.completes, r.created_at, l.line_id, l.quantity, l.amount
		FROM order_refunds r JOIN orders o ON o.order_id = r.order_id JOIN order_refund_lines l ON l.refund_id = r.refund_id `+where, args...)
	if err != nil {
		return nil, err
	}
	var out []order.Refund
	var r order.Refund
	var status string
	var l order.RefundLine
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.OrderID, &r.UserID, &r.PaymentID, &r.IdempotencyKey, &r.Amount, &status, &r.Completes,
		&r.CreatedAt, &l.LineID, &l.Quantity, &l.Amount}, func() error {
		if n := len(out); n == 0 || out[n-1].ID != r.ID {
			r.Status, r.Lines = order.RefundStatus(status), nil
			out = append(out, r)
		}
		out[len(out)-1].Lines = append(out[len(out)-1].Lines, l)
		return nil
	})
	return out, err
}
