package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"admin"}}, func(s *localstack.Stack) { stack = s })
}

var dbs atomic.Int64

func init() { dbs.Store(time.Now().UnixMicro()) }

// mustDatabase creates a fresh database and returns a pool on it.
func mustDatabase(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.Dial(context.Background(), mustDatabaseURL(tb), 8)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// mustDatabaseURL creates a fresh database and returns its URL.
func mustDatabaseURL(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	admin, err := postgres.Dial(ctx, stack.PostgresURL("admin"), 2)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("migrate_%d", dbs.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return stack.PostgresURL(name)
}

// schema is a service's migrations directory.
func schema(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte("-- +goose Up\n" + body)}
	}
	return fsys
}

var v2 = map[string]string{
	"001_items.sql": "CREATE TABLE items (id bigint PRIMARY KEY);",
	"002_seed.sql":  "INSERT INTO items VALUES (1);",
}

func count(tb testing.TB, pool *pgxpool.Pool, sql string) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestMigrateFromEmptyOnceUnderConcurrency: replicas that start together
// on an empty database apply each migration once between them, and a
// later start applies nothing.
func TestMigrateFromEmptyOnceUnderConcurrency(t *testing.T) {
	pool := mustDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(context.Background(), pool, schema(v2)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if err := postgres.Migrate(context.Background(), pool, schema(v2)); err != nil {
		t.Fatalf("a later start: %v", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM items"); n != 1 {
		t.Errorf("the seed ran %d times, want once", n)
	}
	if v := count(t, pool, "SELECT max(version_id) FROM goose_db_version"); v != 2 {
		t.Errorf("recorded version %d, want 2", v)
	}
}

func TestMigrateRefusesTwoFilesWithOneVersion(t *testing.T) {
	pool := mustDatabase(t)
	files := map[string]string{"001_a.sql": "CREATE TABLE a (id int);", "001_b.sql": "CREATE TABLE b (id int);"}
	if err := postgres.Migrate(context.Background(), pool, schema(files)); err == nil {
		t.Fatal("two migrations numbered 001 were accepted")
	}
}

// TestMigrateAdoptsTheEarlierRunnersDatabase: a database the platform's
// earlier runner migrated (files recorded by name in schema_migrations,
// two of them sharing a number, as the order service's did) is adopted:
// the files it applied are not run again, even under their new numbers,
// and only the new migration runs.
func TestMigrateAdoptsTheEarlierRunnersDatabase(t *testing.T) {
	pool := mustDatabase(t)
	ctx := context.Background()
	legacy := []struct{ name, sql string }{
		{"001_items.sql", "CREATE TABLE items (id bigint PRIMARY KEY)"},
		{"002_seed.sql", "INSERT INTO items VALUES (1)"},
		{"002_tags.sql", "CREATE TABLE tags (id bigint PRIMARY KEY)"},
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range legacy {
		if _, err := pool.Exec(ctx, m.sql); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", m.name); err != nil {
			t.Fatal(err)
		}
	}
	renumbered := map[string]string{
		"001_items.sql": "CREATE TABLE items (id bigint PRIMARY KEY);",
		"002_seed.sql":  "INSERT INTO items VALUES (1);",
		"003_tags.sql":  "CREATE TABLE tags (id bigint PRIMARY KEY);",
		"004_more.sql":  "INSERT INTO items VALUES (2);",
	}
	for range 2 {
		if err := postgres.Migrate(ctx, pool, schema(renumbered)); err != nil {
			t.Fatalf("migrate the earlier runner's database: %v", err)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM items"); n != 2 {
		t.Errorf("%d items, want 2 (the seed once and the new migration)", n)
	}
	if v := count(t, pool, "SELECT max(version_id) FROM goose_db_version"); v != 4 {
		t.Errorf("recorded version %d, want 4", v)
	}

	unknown := mustDatabase(t)
	if _, err := unknown.Exec(ctx, `CREATE TABLE schema_migrations (name text PRIMARY KEY);
		INSERT INTO schema_migrations VALUES ('007_gone.sql')`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, unknown, schema(renumbered)); err == nil || !strings.Contains(err.Error(), "007_gone.sql") {
		t.Errorf("a recorded file this service does not have: %v, want it named in an error", err)
	}
}
