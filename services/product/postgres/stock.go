package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/sweep"
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

// heldStock is a page of the orders holding stock: $1 and $2 the ages in
// seconds (0: no upper bound), after the key ($3, $4), $5 rows at most.
// It reads only its own rows, from migrations/006's index of the
// unreleased reservations by time and order
// (TestHeldStockPagesReadOnlyTheirRows), however many paid orders hold
// stock for good before and after them.
// The lower bound is one key, the later of ($3, $4) and the window's
// start (a time of $2 ago, before every id), so that the index scan
// starts there: a key far behind the window (a process's first page) with
// the window as a filter would step over every paid order before it.
const heldStock = `
	SELECT DISTINCT order_id, created_at FROM stock_reservations
	WHERE released_at IS NULL
	  AND created_at < now() - make_interval(secs => $1::float8)
	  AND (created_at, order_id) > (
	      GREATEST($3, CASE WHEN $2::float8 > 0 THEN now() - make_interval(secs => $2::float8) ELSE '-infinity'::timestamptz END),
	      CASE WHEN $2::float8 > 0 AND $3 < now() - make_interval(secs => $2::float8) THEN 0::bigint ELSE $4::bigint END)
	ORDER BY created_at, order_id
	LIMIT $5`

// HeldStock reads a page of the orders holding stock: an order's lines
// are one reservation, stamped by one statement's now(), so they share
// their time and the order appears once.
func (s *Store) HeldStock(ctx context.Context, q sweep.AgedQuery) ([]product.HeldStock, error) {
	rows, err := s.pool.Query(ctx, heldStock, q.OlderThan.Seconds(), q.YoungerThan.Seconds(), q.After.At, q.After.ID, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("held stock: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowToStructByPos[product.HeldStock])
	if err != nil {
		return nil, fmt.Errorf("held stock: %w", err)
	}
	return held, nil
}
