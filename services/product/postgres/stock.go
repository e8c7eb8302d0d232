package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/services/product"
)

// ReserveStock takes the lines' units for the order in one call of
// reserve_stock (migrations/005_stock_functions.sql): the order's advisory
// lock, the replay and tombstone checks, the products' row locks in id
// order, the check of every line, the conditional decrement and the
// reservation rows all run inside the database, in one statement. The
// products' rows are hot (every checkout of a product updates its row),
// and their locks are held until the statement's transaction ends: taken
// and released inside the database, they never wait for a round trip to
// this service (TestHotRowWritersMakeOneRoundTrip). A reservation already
// recorded for the order makes it a replay that takes nothing.
func (s *Store) ReserveStock(ctx context.Context, orderID int64, lines []product.StockLine) (bool, error) {
	skus := make([]int64, len(lines))
	qtys := make([]int64, len(lines))
	for i, l := range lines {
		skus[i], qtys[i] = l.SKUID, l.Quantity
	}
	var outcome string
	var sku, stock int64
	if err := s.pool.QueryRow(ctx, `SELECT outcome, at_sku, at_stock FROM reserve_stock($1, $2, $3)`, orderID, skus, qtys).
		Scan(&outcome, &sku, &stock); err != nil {
		return false, fmt.Errorf("reserve stock: %w", err)
	}
	switch outcome {
	case "reserved":
		return false, nil
	case "replayed":
		return true, nil
	case "given_up":
		return false, fmt.Errorf("order %d: %w", orderID, product.ErrGivenUp)
	case "missing":
		return false, errMissing(sku)
	case "short":
		return false, errShort(product.ErrSoldOut, sku, qtys[slices.Index(skus, sku)], stock)
	}
	return false, fmt.Errorf("reserve stock: unknown outcome %q", outcome)
}

// ReleaseStock marks the order's reservation released and gives its units
// back, in one call of release_stock (one statement, like ReserveStock);
// a released or missing reservation matches no row, so releasing twice
// gives back nothing more, and an order with no reservation at all gets a
// tombstone, so a reserve still on its way takes nothing.
func (s *Store) ReleaseStock(ctx context.Context, orderID int64) ([]product.StockLine, error) {
	rows, err := s.pool.Query(ctx, `SELECT sku_id, quantity FROM release_stock($1)`, orderID)
	if err != nil {
		return nil, fmt.Errorf("release stock: %w", err)
	}
	released, err := pgx.CollectRows(rows, pgx.RowToStructByPos[product.StockLine])
	if err != nil {
		return nil, fmt.Errorf("release stock: %w", err)
	}
	return released, nil
}
