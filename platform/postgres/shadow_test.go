package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/shadow"
)

// A routed database has twin tables in public and shadow, made by one set
// of migrations; marked statements, transactions and batches write and
// read only the shadow ones, unmarked only the real ones, the shadow
// sequence does not advance the real one, and TruncateShadow empties the
// shadow tables alone.
func TestRouterKeepsTheClassesApart(t *testing.T) {
	ctx := context.Background()
	marked := shadow.With(ctx)
	r, err := postgres.DialRouted(ctx, mustDatabaseURL(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	files := map[string]string{
		"001_items.sql": "CREATE TABLE items (id bigserial PRIMARY KEY, what text NOT NULL);",
		"002_seed.sql":  "INSERT INTO items (what) VALUES ('seed');",
	}
	for range 2 { // a second start applies nothing
		if err := postgres.MigrateRouted(ctx, r, schema(files)); err != nil {
			t.Fatal(err)
		}
	}
	var db postgres.DB = r
	if _, err := db.Exec(ctx, "INSERT INTO items (what) VALUES ('real')"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(marked, "INSERT INTO items (what) VALUES ('marked')"); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(marked, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(marked, "INSERT INTO items (what) VALUES ('marked in a tx')")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("INSERT INTO items (what) VALUES ('marked in a batch')")
	if err := db.SendBatch(marked, b).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CopyFrom(marked, pgx.Identifier{"items"}, []string{"what"}, pgx.CopyFromRows([][]any{{"marked by copy"}})); err != nil {
		t.Fatal(err)
	}

	what := func(ctx context.Context, sql string) []string {
		t.Helper()
		rows, err := db.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := what(ctx, "SELECT what FROM items ORDER BY id"); len(got) != 2 || got[0] != "seed" || got[1] != "real" {
		t.Fatalf("real table: %q, want the seed and the real row", got)
	}
	if got := what(marked, "SELECT what FROM items ORDER BY id"); len(got) != 5 || got[1] != "marked" {
		t.Fatalf("shadow table: %q, want the seed and four marked rows", got)
	}
	// Qualified names show the same, from outside the router.
	if got := what(ctx, "SELECT what FROM shadow.items WHERE what = 'real'"); len(got) != 0 {
		t.Fatalf("a real row in the shadow table: %q", got)
	}
	if got := what(ctx, "SELECT what FROM public.items WHERE what LIKE 'marked%'"); len(got) != 0 {
		t.Fatalf("a marked row in the real table: %q", got)
	}
	// A marked statement cannot name the real table unqualified: public is
	// not on its path.
	if _, err := r.Shadow.Exec(ctx, "SELECT 1 FROM goose_db_version LIMIT 0"); err != nil {
		t.Fatalf("the shadow schema has no version table of its own: %v", err)
	}

	n, err := postgres.TruncateShadow(ctx, db)
	if err != nil || n != 1 {
		t.Fatalf("TruncateShadow: %d tables, %v; want 1", n, err)
	}
	if got := what(marked, "SELECT what FROM items"); len(got) != 0 {
		t.Fatalf("shadow rows after the cleanup: %q", got)
	}
	if got := what(ctx, "SELECT what FROM items"); len(got) != 2 {
		t.Fatalf("the cleanup touched the real table: %q", got)
	}
	if v := count(t, r.Shadow, "SELECT max(version_id) FROM goose_db_version"); v != 2 {
		t.Fatalf("the cleanup touched the shadow versions: %d", v)
	}
}
