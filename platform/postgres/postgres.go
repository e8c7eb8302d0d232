// Package postgres dials a pgx connection pool and applies a service's
// schema migrations.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/pressly/goose/v3/lock"
)

// Dial opens a pool of at most maxConns connections and checks it.
func Dial(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: ping: %w", err)
	}
	return pool, nil
}

// migrationLock is the advisory lock key that serialises migrations when
// several replicas start at once.
const migrationLock = 7_246_161_001

// versionTable is where goose records the applied versions; legacyTable is
// where the platform's own runner recorded applied files by name before.
const (
	versionTable = "goose_db_version"
	legacyTable  = "schema_migrations"
)

// Migrate brings a service's schema up to date with goose: the numbered
// *.sql files in the migrations directory of fsys (a service embeds them
// as Migrations, each annotated "-- +goose Up"), each in its
// own transaction, in version order, once per database: replicas that
// start together take turns under a Postgres advisory lock, and every
// applied version is recorded in goose_db_version. Versions must be
// unique (goose refuses two files with one number).
//
// A database migrated by the platform's earlier runner, which recorded
// applied files by name in schema_migrations, is adopted first: each file
// it applied is recorded under its version, found by the file's name
// after its number (renumbering kept those unique), so nothing runs twice.
func Migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) error {
	migrations, err := fs.Sub(fsys, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLock), lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := adoptLegacy(ctx, db, provider.ListSources()); err != nil {
		return fmt.Errorf("migrate: adopt %s: %w", legacyTable, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// adoptLegacy records in goose's table, once, the versions of the files
// the earlier runner recorded by name, under the same advisory lock.
func adoptLegacy(ctx context.Context, db *sql.DB, sources []*goose.Source) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return err
	}
	defer func() {
		_, uerr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock)
		err = errors.Join(err, uerr)
	}()
	var legacy, adopted bool
	if err := conn.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
		legacyTable, versionTable).Scan(&legacy, &adopted); err != nil {
		return err
	}
	if !legacy || adopted {
		return nil
	}
	byName := make(map[string]int64, len(sources))
	for _, src := range sources {
		name := unnumbered(path.Base(src.Path))
		if _, twice := byName[name]; twice {
			return fmt.Errorf("two migrations are named %q after their number", name)
		}
		byName[name] = src.Version
	}
	rows, err := conn.QueryContext(ctx, "SELECT name FROM "+legacyTable+" ORDER BY name")
	if err != nil {
		return err
	}
	var versions []int64
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		v, ok := byName[unnumbered(name)]
		if !ok {
			rows.Close()
			return fmt.Errorf("%s records %q, which is no migration of this service", legacyTable, name)
		}
		versions = append(versions, v)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	store, err := database.NewStore(database.DialectPostgres, versionTable)
	if err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := store.CreateVersionTable(ctx, tx); err != nil {
		return err
	}
	for _, v := range append([]int64{0}, versions...) { // goose starts its table at version 0
		if err := store.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// unnumbered is a migration file's name after its number: "refunds.sql"
// for "004_refunds.sql".
func unnumbered(name string) string {
	_, rest, _ := strings.Cut(name, "_")
	return rest
}

// MaxPoolConns bounds FLASHSALE_POSTGRES_MAX_CONNS.
const MaxPoolConns = 1000

// PoolSize reads a service's pool bound, FLASHSALE_POSTGRES_MAX_CONNS (def
// when unset), and refuses one outside 1..MaxPoolConns, so every service
// that keeps a pool reads the setting the same way.
func PoolSize(env *config.Env, def int32) int32 {
	return int32(env.IntIn("FLASHSALE_POSTGRES_MAX_CONNS", int64(def), 1, MaxPoolConns))
}

// CloseBatch closes br and returns err, or Close's error when err is nil
// (Close repeats the error a result already gave): the end of a batch
// that sends a write and the read of its row in one round trip.
func CloseBatch(br pgx.BatchResults, err error) error {
	if cerr := br.Close(); err == nil {
		return cerr
	}
	return err
}
