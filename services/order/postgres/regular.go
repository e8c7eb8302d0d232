package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/services/order"
)

// InsertRegular stores a regular order, its lines, its promotions and its
// STORED event in one transaction. The orders table's unique (user, kind, activity, key)
// makes a second order for one key impossible: when it is taken, nothing
// is stored and the order holding it is returned. A COMMIT that got no
// answer fails with order.ErrCommitUnknown.
func (s *Store) InsertRegular(ctx context.Context, o order.Order) (order.Order, bool, error) {
	created, committing := false, false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A COMMIT the checkout gave up on (ErrCommitUnknown) must land
		// soon or never: the expiry worker gives the checkout's stock and
		// coupon back once no order has come (at least 2 × MaxCheckout).
		// A session idle in this transaction longer than MaxCheckout (its
		// COMMIT still on the wire, a partition) is ended by the server,
		// and the transaction with it.
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", order.MaxCheckout.Milliseconds())); err != nil {
			return fmt.Errorf("bound the transaction's idle time: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO orders (order_id, user_id, kind, status, total, discount, payable,
				idempotency_key, created_at, expires_at, coupon_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11::bigint, 0))
			ON CONFLICT DO NOTHING`,
			o.ID, o.UserID, string(o.Kind), string(o.Status), o.Total, o.Discount, o.Payable,
			o.IdempotencyKey, o.CreatedAt, o.ExpiresAt, o.CouponID)
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		var l lineColumns
		l.add(o)
		if _, err := tx.Exec(ctx, `
			INSERT INTO order_lines (line_id, order_id, sku_id, quantity, unit_price, amount, discount, payable)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
			                     $6::bigint[], $7::bigint[], $8::bigint[])`,
			l.id, l.order, l.sku, l.qty, l.price, l.amount, l.discount, l.payable); err != nil {
			return fmt.Errorf("insert order lines: %w", err)
		}
		ids, kinds, amounts := make([]int64, len(o.Promotions)), make([]string, len(o.Promotions)), make([]int64, len(o.Promotions))
		for i, p := range o.Promotions {
			ids[i], kinds[i], amounts[i] = p.ID, p.Kind, p.Amount
		}
		if _, err := tx.Exec(ctx, `INSERT INTO order_promotions (order_id, position, promotion_id, kind, amount)
			SELECT $1, ord - 1, id, k, a FROM unnest($2::bigint[], $3::text[], $4::bigint[]) WITH ORDINALITY AS x(id, k, a, ord)`,
			o.ID, ids, kinds, amounts); err != nil {
			return fmt.Errorf("insert order promotions: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO order_events (order_id, type, kind, amount, at) VALUES ($1, 'STORED', 'REGULAR', $2, $3)`,
			o.ID, o.Payable, o.CreatedAt); err != nil {
			return fmt.Errorf("insert order event: %w", err)
		}
		created, committing = true, true
		return nil
	})
	switch {
	case err != nil && committing && commitUnanswered(err):
		return order.Order{}, false, fmt.Errorf("insert order %d: commit: %w: %w", o.ID, order.ErrCommitUnknown, err)
	case err != nil:
		return order.Order{}, false, err
	}
	if created {
		return o, true, nil
	}
	prev, err := s.RegularByKey(ctx, o.UserID, o.IdempotencyKey)
	if err != nil {
		return order.Order{}, false, fmt.Errorf("order %d conflicts, but no order holds its key: %w", o.ID, err)
	}
	return prev, false, nil
}

// commitUnanswered says whether err, a COMMIT's, leaves its outcome
// unknown: no answer from Postgres at all, or one that only says the
// connection is going (SQLSTATE 08, 57P: a pooler's timeout, the backend
// terminated), while the backend may still commit. Any other answer of
// Postgres's is a definite refusal.
func commitUnanswered(err error) bool {
	var pg *pgconn.PgError
	return !errors.As(err, &pg) || errcode.Unreachable(err)
}

// SeckillByKey returns the user's flash-sale order of the activity made
// with the idempotency key (the orders' unique key).
func (s *Store) SeckillByKey(ctx context.Context, userID, activityID int64, key string) (order.Order, error) {
	found, err := s.query(ctx, seckillByKey, userID, activityID, key)
	if err != nil {
		return order.Order{}, fmt.Errorf("flash-sale order of user %d in activity %d by key: %w", userID, activityID, err)
	}
	if len(found) == 0 {
		return order.Order{}, fmt.Errorf("flash-sale order of user %d in activity %d by key: %w", userID, activityID, order.ErrNotFound)
	}
	return found[0], nil
}

// RegularByKey returns the user's regular order with the idempotency key.
func (s *Store) RegularByKey(ctx context.Context, userID int64, key string) (order.Order, error) {
	found, err := s.query(ctx, regularByKey, userID, key)
	if err != nil {
		return order.Order{}, fmt.Errorf("regular order of user %d by key: %w", userID, err)
	}
	if len(found) == 0 {
		return order.Order{}, fmt.Errorf("regular order of user %d by key: %w", userID, order.ErrNotFound)
	}
	return found[0], nil
}
