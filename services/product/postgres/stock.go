package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flashsale/flashsale/services/product"
)

// uniqueViolation is PostgreSQL's SQLSTATE for a unique constraint.
const uniqueViolation = "23505"

// ReserveStock takes the lines' units in one transaction: per SKU, in id
// order (so two orders never lock products in opposite orders), one
// conditional UPDATE … WHERE stock >= n, optimistic and without SELECT …
// FOR UPDATE; then the reservation rows. A reservation already recorded
// for the order makes it a replay that takes nothing, also when a
// concurrent attempt of the same order commits first (its rows then
// collide with ours and this transaction rolls back).
func (s *Store) ReserveStock(ctx context.Context, orderID int64, lines []product.StockLine) (bool, error) {
	sorted := slices.Clone(lines)
	slices.SortFunc(sorted, func(a, b product.StockLine) int { return cmp.Compare(a.SKUID, b.SKUID) })
	replayed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOrder(ctx, tx, orderID); err != nil {
			return err
		}
		var givenUp bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stock_reservations WHERE order_id = $1),
			EXISTS (SELECT 1 FROM stock_tombstones WHERE order_id = $1)`, orderID).Scan(&replayed, &givenUp); err != nil {
			return fmt.Errorf("select reservation: %w", err)
		}
		if replayed {
			return nil
		}
		if givenUp {
			return fmt.Errorf("order %d: %w", orderID, product.ErrGivenUp)
		}
		skus := make([]int64, len(sorted))
		qtys := make([]int64, len(sorted))
		for i, l := range sorted {
			tag, err := tx.Exec(ctx, `UPDATE products SET stock = stock - $2 WHERE sku_id = $1 AND stock >= $2`, l.SKUID, l.Quantity)
			if err != nil {
				return fmt.Errorf("take stock of sku %d: %w", l.SKUID, err)
			}
			if tag.RowsAffected() == 0 {
				return whyShort(ctx, tx, l.SKUID, l.Quantity, product.ErrSoldOut)
			}
			skus[i], qtys[i] = l.SKUID, l.Quantity
		}
		_, err := tx.Exec(ctx, `INSERT INTO stock_reservations (order_id, sku_id, quantity)
			SELECT $1, sku, qty FROM unnest($2::bigint[], $3::bigint[]) AS x(sku, qty)`, orderID, skus, qtys)
		if err != nil {
			return fmt.Errorf("insert reservation: %w", err)
		}
		return nil
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return replayed, nil
}

// lockOrder serialises the reserve and the release of one order until tx
// ends (a transaction-scoped advisory lock on the order id), so that a
// release and a reserve racing each other see each other's rows.
func lockOrder(ctx context.Context, tx pgx.Tx, orderID int64) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, orderID); err != nil {
		return fmt.Errorf("lock order %d: %w", orderID, err)
	}
	return nil
}

// ReleaseStock marks the order's reservation released and gives its units
// back, in one transaction; a released or missing reservation matches no
// row, so releasing twice gives back nothing more.
func (s *Store) ReleaseStock(ctx context.Context, orderID int64) ([]product.StockLine, error) {
	var released []product.StockLine
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOrder(ctx, tx, orderID); err != nil {
			return err
		}
		// No reservation at all (not even a released one): the reserve may
		// still be on its way; the tombstone makes it take nothing.
		if _, err := tx.Exec(ctx, `INSERT INTO stock_tombstones (order_id)
			SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM stock_reservations WHERE order_id = $1)
			ON CONFLICT DO NOTHING`, orderID); err != nil {
			return fmt.Errorf("tombstone: %w", err)
		}
		rows, err := tx.Query(ctx, `UPDATE stock_reservations SET released_at = now()
			WHERE order_id = $1 AND released_at IS NULL RETURNING sku_id, quantity`, orderID)
		if err != nil {
			return fmt.Errorf("release reservation: %w", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowToStructByPos[product.StockLine])
		if err != nil {
			return fmt.Errorf("release reservation: %w", err)
		}
		slices.SortFunc(lines, func(a, b product.StockLine) int { return cmp.Compare(a.SKUID, b.SKUID) })
		for _, l := range lines {
			if _, err := tx.Exec(ctx, `UPDATE products SET stock = stock + $2 WHERE sku_id = $1`, l.SKUID, l.Quantity); err != nil {
				return fmt.Errorf("give back stock of sku %d: %w", l.SKUID, err)
			}
		}
		released = lines
		return nil
	})
	if err != nil {
		return nil, err
	}
	return released, nil
}
