package postgres

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/platform/shadow"
)

// DB is what a store needs of Postgres: the pgx methods the stores call.
// A *pgxpool.Pool is one; a *Router is one that sends marked
// (pressure-test) work to the shadow schema.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (*Router)(nil)
)

// Router is a service's database seen by both traffic classes: real work
// uses Real, whose tables are in the public schema, and marked work
// (platform/shadow) uses Shadow, a pool on the same database whose
// search_path is only the shadow schema (shadow.Schema), holding the same
// tables made by the same migrations. The stores' SQL names tables
// unqualified, so one statement runs on either; a marked statement cannot
// reach a real table, having no public schema on its path.
type Router struct {
	Real, Shadow *pgxpool.Pool
}

// DialRouted dials the real pool of at most maxConns connections and the
// shadow pool beside it, of at most a quarter of them (at least two): load
// tests are sized below real sales, and idle pools hold no connections.
func DialRouted(ctx context.Context, url string, maxConns int32) (*Router, error) {
	real, err := Dial(ctx, url, maxConns)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		real.Close()
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = shadow.Schema
	cfg.MaxConns = max(2, maxConns/4)
	if maxConns <= 0 {
		cfg.MaxConns = 4
	}
	sh, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = sh.Ping(ctx)
	}
	if err != nil {
		real.Close()
		return nil, fmt.Errorf("postgres: shadow pool: %w", err)
	}
	return &Router{Real: real, Shadow: sh}, nil
}

// MigrateRouted creates the shadow schema when missing and applies the
// migrations of fsys to both schemas, so the shadow tables are always the
// real ones' twins.
func MigrateRouted(ctx context.Context, r *Router, fsys fs.FS) error {
	if _, err := r.Real.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+shadow.Schema); err != nil {
		// Replicas starting together race on the catalogue; the schema
		// is there either way.
		if _, err2 := r.Real.Exec(ctx, "SELECT 'shadow'::regnamespace"); err2 != nil {
			return fmt.Errorf("migrate: shadow schema: %w", err)
		}
	}
	if err := Migrate(ctx, r.Real, fsys); err != nil {
		return err
	}
	if err := Migrate(ctx, r.Shadow, fsys); err != nil {
		return fmt.Errorf("shadow schema: %w", err)
	}
	return nil
}

// For is the pool of ctx's traffic class.
func (r *Router) For(ctx context.Context) *pgxpool.Pool {
	if shadow.Is(ctx) {
		return r.Shadow
	}
	return r.Real
}

// Ping checks both pools.
func (r *Router) Ping(ctx context.Context) error {
	if err := r.Real.Ping(ctx); err != nil {
		return err
	}
	return r.Shadow.Ping(ctx)
}

// Close closes both pools.
func (r *Router) Close() {
	r.Real.Close()
	r.Shadow.Close()
}

func (r *Router) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return r.For(ctx).Exec(ctx, sql, args...)
}

func (r *Router) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return r.For(ctx).Query(ctx, sql, args...)
}

func (r *Router) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return r.For(ctx).QueryRow(ctx, sql, args...)
}

func (r *Router) Begin(ctx context.Context) (pgx.Tx, error) { return r.For(ctx).Begin(ctx) }

func (r *Router) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return r.For(ctx).SendBatch(ctx, b)
}

func (r *Router) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return r.For(ctx).CopyFrom(ctx, table, columns, src)
}

// TruncateShadow empties every table of the shadow schema (the goose
// version table excepted): the cleanup after a pressure test. Real
// tables are not named, so not touched.
func TruncateShadow(ctx context.Context, db DB) (tables int, err error) {
	rows, err := db.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = $1 AND tablename <> $2`,
		shadow.Schema, versionTable)
	if err != nil {
		return 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		return 0, err
	}
	list := ""
	for i, n := range names {
		if i > 0 {
			list += ", "
		}
		list += shadow.Schema + "." + n
	}
	if _, err := db.Exec(ctx, "TRUNCATE "+list+" RESTART IDENTITY CASCADE"); err != nil {
		return 0, fmt.Errorf("truncate shadow: %w", err)
	}
	return len(names), nil
}
