// Package pgplan reads Postgres's plans of the platform's statements in
// tests, so a test can hold a statement to the rows it may read: a read
// by id must not scan a table, a sweep's page must not walk every
// candidate (docs/testing.md). A statement is planned as pgx runs it:
// prepared, first with a custom plan for its arguments, and later with a
// generic plan, which Postgres may switch to after five runs.
package pgplan

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Node is a node of EXPLAIN (FORMAT JSON), with the counts EXPLAIN ANALYZE
// adds.
type Node struct {
	NodeType  string `json:"Node Type"`
	Relation  string `json:"Relation Name"`
	IndexName string `json:"Index Name"`
	IndexCond string `json:"Index Cond"`
	Plans     []Node `json:"Plans"`
	// Rows per loop, kept and filtered out (ANALYZE only).
	Rows      float64 `json:"Actual Rows"`
	Loops     float64 `json:"Actual Loops"`
	Filtered  float64 `json:"Rows Removed by Filter"`
	Rechecked float64 `json:"Rows Removed by Index Recheck"`
}

// Walk calls f on n and on every node under it.
func (n Node) Walk(f func(Node)) {
	f(n)
	for _, c := range n.Plans {
		c.Walk(f)
	}
}

// RowsRead returns, by table, the rows the scans under n read: those
// they returned and those they filtered out, over all their loops. It
// needs a plan of EXPLAIN ANALYZE.
func (n Node) RowsRead() map[string]float64 {
	read := map[string]float64{}
	n.Walk(func(n Node) {
		if n.Relation != "" {
			read[n.Relation] += (n.Rows + n.Filtered + n.Rechecked) * n.Loops
		}
	})
	return read
}

// Modes are the plan cache modes a statement run through pgx meets.
var Modes = []string{"force_custom_plan", "force_generic_plan"}

// Plans prepares stmt on conn and, for each of args (a statement's
// arguments as SQL literals, comma-separated) in each of Modes, calls
// check with its plan and EXPLAIN's own text of it; analyze runs the
// statement (EXPLAIN ANALYZE) for the counts of rows read.
func Plans(ctx context.Context, conn *pgx.Conn, stmt string, args []string, analyze bool,
	check func(mode, args string, plan Node, raw []byte)) error {
	if _, err := conn.Exec(ctx, "PREPARE planned AS "+stmt); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE planned")
		_, _ = conn.Exec(context.WithoutCancel(ctx), "RESET plan_cache_mode")
	}()
	options := "FORMAT JSON"
	if analyze {
		options = "ANALYZE, " + options
	}
	for _, a := range args {
		for _, mode := range Modes {
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
				return err
			}
			var raw []byte
			if err := conn.QueryRow(ctx, "EXPLAIN ("+options+") EXECUTE planned("+a+")").Scan(&raw); err != nil {
				return fmt.Errorf("explain (%s): %w", a, err)
			}
			var plan []struct{ Plan Node }
			if err := json.Unmarshal(raw, &plan); err != nil {
				return err
			}
			check(mode, a, plan[0].Plan, raw)
		}
	}
	return nil
}

// Conn runs setup on pool (the test's rows, then ANALYZE) and returns a
// connection of pool to plan on, given back when the test ends.
func Conn(tb testing.TB, pool *pgxpool.Pool, setup ...string) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	for _, sql := range setup {
		if _, err := pool.Exec(ctx, sql); err != nil {
			tb.Fatalf("%.60s…: %v", sql, err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(conn.Release)
	return conn.Conn()
}

// PagesReadTheirRows fails tb when a page of the sweep named name, its
// statement stmt run with each of pages (arguments as in Plans, the
// page's size limit last), reads more than two pages' rows of any table:
// a page must read its own rows, not walk the candidates behind or
// before it.
func PagesReadTheirRows(tb testing.TB, conn *pgx.Conn, name, stmt string, pages []string, limit int) {
	tb.Helper()
	err := Plans(context.Background(), conn, stmt, pages, true, func(mode, args string, plan Node, raw []byte) {
		read := plan.RowsRead()
		if len(read) == 0 {
			tb.Errorf("%s: no scan in the plan:\n%s", name, raw)
		}
		for table, rows := range read {
			if rows > float64(2*limit) {
				tb.Errorf("%s (%s), %s: read %.0f rows of %s for a page of %d:\n%s", name, args, mode, rows, table, limit, raw)
			}
		}
	})
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}
