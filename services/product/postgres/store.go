// Package postgres stores the catalog in PostgreSQL: products with their
// regular stock and the activities carved out of it.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/services/product"
)

// Migrations is the schema, for platform/postgres.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Store implements product.Store on a connection pool.
type Store struct {
	pool pgplatform.DB
}

// New returns a store on pool, whose schema is Migrations.
func New(pool pgplatform.DB) *Store { return &Store{pool: pool} }

// CreateProduct records p.
func (s *Store) CreateProduct(ctx context.Context, p product.Product) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO products (sku_id, title, price, stock) VALUES ($1, $2, $3, $4)`,
		p.SKUID, p.Title, p.Price, p.Stock)
	if err != nil {
		return fmt.Errorf("insert product: %w", err)
	}
	return nil
}

// Product returns the product, or product.ErrNotFound.
func (s *Store) Product(ctx context.Context, skuID int64) (product.Product, error) {
	p := product.Product{SKUID: skuID}
	err := s.pool.QueryRow(ctx, `SELECT title, price, stock FROM products WHERE sku_id = $1`, skuID).
		Scan(&p.Title, &p.Price, &p.Stock)
	if errors.Is(err, pgx.ErrNoRows) {
		return product.Product{}, fmt.Errorf("product %d: %w", skuID, product.ErrNotFound)
	}
	if err != nil {
		return product.Product{}, fmt.Errorf("select product %d: %w", skuID, err)
	}
	return p, nil
}

// CreateActivity takes a.Stock units from the product with one conditional
// UPDATE (the row lock it holds until commit serialises concurrent
// activities on one product, and the condition makes overselling the
// product impossible), inserts the activity, and commits only after
// preheat succeeded. The product row stays locked during preheat, which is
// acceptable for an admin operation and is what keeps the stock exact.
//
// If the commit itself fails after a successful preheat, the inventory
// service holds stock for an activity id nobody knows; that id is never
// reused, so the keys are inert.
func (s *Store) CreateActivity(ctx context.Context, a product.Activity, preheat func(context.Context) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE products SET stock = stock - $2 WHERE sku_id = $1 AND stock >= $2`, a.SKUID, a.Stock)
		if err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return whyShort(ctx, tx, a.SKUID, a.Stock, product.ErrInsufficientStock)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO activities (activity_id, sku_id, price, stock, per_user_limit, starts_at, ends_at, challenge_required)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.ID, a.SKUID, a.Price, a.Stock, a.PerUserLimit, a.StartsAt, a.EndsAt, a.ChallengeRequired); err != nil {
			return fmt.Errorf("insert activity: %w", err)
		}
		return preheat(ctx)
	})
}

// whyShort tells apart the two reasons a conditional UPDATE taking want
// units of the SKU matched no row: an unknown product, or too little
// stock, reported as short.
func whyShort(ctx context.Context, tx pgx.Tx, skuID, want int64, short error) error {
	var stock int64
	err := tx.QueryRow(ctx, `SELECT stock FROM products WHERE sku_id = $1`, skuID).Scan(&stock)
	if errors.Is(err, pgx.ErrNoRows) {
		return errMissing(skuID)
	}
	if err != nil {
		return fmt.Errorf("select product %d: %w", skuID, err)
	}
	return errShort(short, skuID, want, stock)
}

// errMissing is the refusal of a product that does not exist.
func errMissing(skuID int64) error {
	return fmt.Errorf("product %d: %w", skuID, product.ErrNotFound)
}

// errShort is the refusal of want units of a product that has stock left.
func errShort(short error, skuID, want, stock int64) error {
	return fmt.Errorf("%w: %d units of product %d wanted, %d left", short, want, skuID, stock)
}

const activityColumns = `a.activity_id, a.sku_id, p.title, a.price, a.stock, a.per_user_limit, a.starts_at, a.ends_at, a.challenge_required`

func scanActivity(row pgx.Row) (product.Activity, error) {
	var a product.Activity
	err := row.Scan(&a.ID, &a.SKUID, &a.Title, &a.Price, &a.Stock, &a.PerUserLimit, &a.StartsAt, &a.EndsAt, &a.ChallengeRequired)
	a.StartsAt, a.EndsAt = a.StartsAt.UTC(), a.EndsAt.UTC()
	return a, err
}

// Activity returns the activity, or product.ErrNotFound.
func (s *Store) Activity(ctx context.Context, id int64) (product.Activity, error) {
	a, err := scanActivity(s.pool.QueryRow(ctx, `SELECT `+activityColumns+`
		FROM activities a JOIN products p USING (sku_id) WHERE a.activity_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return product.Activity{}, fmt.Errorf("activity %d: %w", id, product.ErrNotFound)
	}
	if err != nil {
		return product.Activity{}, fmt.Errorf("select activity %d: %w", id, err)
	}
	return a, nil
}

// Activities returns the limit latest starting activities, ordered by
// start time (then id).
func (s *Store) Activities(ctx context.Context, limit int) ([]product.Activity, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+activityColumns+`
		FROM activities a JOIN products p USING (sku_id)
		ORDER BY a.starts_at DESC, a.activity_id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("select activities: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (product.Activity, error) { return scanActivity(r) })
	if err != nil {
		return nil, fmt.Errorf("select activities: %w", err)
	}
	slices.Reverse(list)
	return list, nil
}

// ProductIDs returns the id of every product (the Bloom filter's source).
func (s *Store) ProductIDs(ctx context.Context) ([]int64, error) {
	return s.ids(ctx, `SELECT sku_id FROM products`)
}

// ActivityIDs returns the id of every activity.
func (s *Store) ActivityIDs(ctx context.Context) ([]int64, error) {
	return s.ids(ctx, `SELECT activity_id FROM activities`)
}

func (s *Store) ids(ctx context.Context, query string) ([]int64, error) {
	rows, err := s.pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	return ids, nil
}
