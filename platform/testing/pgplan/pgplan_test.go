package pgplan_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/platform/testing/pgplan"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"pgplan"}, NoBroker: true},
		func(s *localstack.Stack) { stack = s })
}

// recorder is a testing.TB that keeps the failures a check reports
// instead of failing the test.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// A pass that starts before its window, from the zero key, steps over
// every entry before the window inside the index: the start key is the
// row comparison's, and the window's lower bound rejects the entries
// without their rows being returned or filtered out (the stuck payments'
// pass did so, over every payment left PAYING before the sweep's
// window). RowsRead counts only the page's own rows; the buffers it
// touched give the walk away, and PagesReadTheirRows fails it. The same
// page from the window's start passes both.
func TestPagesThatStepOverIndexEntriesFail(t *testing.T) {
	schema := fstest.MapFS{"migrations/001_swept.sql": &fstest.MapFile{Data: []byte(`-- +goose Up
CREATE TABLE swept (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX swept_by_age ON swept (at, id);`)}}
	pool := stack.MustPool(t, "pgplan", 2, schema)
	// 100,000 rows a millisecond apart; the window is the 20,000 from
	// 20 s on, after 20,000 that a pass from the zero key steps over.
	conn := pgplan.Conn(t, pool,
		`TRUNCATE swept`,
		`INSERT INTO swept SELECT g, timestamptz '2026-11-11' + g * interval '1 ms' FROM generate_series(1, 100000) g`,
		`ANALYZE swept`)
	const stmt = `SELECT id, at FROM swept WHERE at >= $1 AND at <= $2 AND (at, id) > ($3, $4)
		ORDER BY at, id LIMIT $5`
	const page = 500
	window := "timestamptz '2026-11-11' + interval '20000 ms', timestamptz '2026-11-11' + interval '40000 ms'"
	limit := fmt.Sprintf(", %d", page)
	atStart := window + ", timestamptz '2026-11-11' + interval '20000 ms', 0" + limit
	fromZero := window + ", '-infinity', 0" + limit

	err := pgplan.Plans(context.Background(), conn, stmt, []string{fromZero}, true, func(mode, _ string, plan pgplan.Node, raw []byte) {
		if read := plan.RowsRead()["swept"]; read > 2*page {
			t.Errorf("%s: RowsRead counts %.0f rows, more than two pages: the case is meant to be one it misses:\n%s", mode, read, raw)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	r := &recorder{TB: t}
	pgplan.PagesReadTheirRows(r, conn, "from the zero key", stmt, []string{fromZero}, page)
	if len(r.failures) != len(pgplan.Modes) {
		t.Errorf("a page stepping over 20,000 entries failed %d times, want once in each of %d modes: %q",
			len(r.failures), len(pgplan.Modes), r.failures)
	}
	for _, f := range r.failures {
		if !strings.Contains(f, "using swept_by_age touched") {
			t.Errorf("a page stepping over 20,000 entries failed, but not on the buffers its index scan touched:\n%s", f)
		}
	}

	r = &recorder{TB: t}
	pgplan.PagesReadTheirRows(r, conn, "from the window's start", stmt, []string{atStart}, page)
	if len(r.failures) > 0 {
		t.Errorf("a page reading its own rows failed: %q", r.failures)
	}
}
