// Package pgplan reads Postgres's plans of the platform's statements in
// tests, so a test can hold a statement to the rows and buffers it may
// read: a read by id must not scan a table, a sweep's page must not walk
// every candidate (docs/testing.md). A statement is planned as pgx runs it:
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
	// Shared buffers found in the cache and read in, over all loops, by
	// this node and every node under it (ANALYZE only).
	SharedHit  float64 `json:"Shared Hit Blocks"`
	SharedRead float64 `json:"Shared Read Blocks"`
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

// ownBuffers returns the shared buffers n touched itself, hit or read,
// over all its loops: EXPLAIN counts the buffers of the nodes under n in
// n's, so theirs are taken off (summed over a plan, they make its top
// node's count).
func (n Node) ownBuffers() float64 {
	own := n.SharedHit + n.SharedRead
	for _, c := range n.Plans {
		own -= c.SharedHit + c.SharedRead
	}
	return own
}

// Modes are the plan cache modes a statement run through pgx meets.
var Modes = []string{"force_custom_plan", "force_generic_plan"}

// Plans prepares stmt on conn and, for each of args (a statement's
// arguments as SQL literals, comma-separated) in each of Modes, calls
// check with its plan and EXPLAIN's own text of it; analyze runs the
// statement (EXPLAIN ANALYZE) for the counts of rows read and buffers
// touched.
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
		options = "ANALYZE, BUFFERS, " + options
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

// The buffers a node of a page's plan may touch itself
// (PagesReadTheirRows). RowsRead counts the rows a scan returns or
// filters out, not the index entries an index condition steps over
// inside the index (a start key before a long run of entries the
// condition rejects, a condition on a later column): those cost leaf
// pages, one per some 270 entries of (time, id), and no other count shows
// them. A scan of a correct page touches, in each loop, the pages from its
// index's root down to its first entry and that entry's heap page (an
// index of the tests' 100,000 rows is two levels deep, one of a hundred
// million four: five buffers at most), and then the leaf pages listing
// the rows it reads, hundreds to a page, and the heap pages holding them:
// tens to a page where a table holds its rows in about the order its
// sweep reads them, as a table filled over time does and as the tests
// must seed it. A page of 500 rows may so touch 6 + 500/15 = 39 buffers
// in the scan that drives it (the sweeps' touch 12 to 21) and 6 a loop in
// a lookup of a joined row (3); a scan that steps over 10,000 entries
// more touches some 37 leaf pages more, and fails. (A LockRows node, a
// page read FOR UPDATE, touches a buffer more per row: the lock is
// written on the row's heap page.) The bound is each
// node's, not the page's: the page's total (its top node's count) is in
// the refund sweep nearly all the joined orders' lookups, 1,500 of some
// 1,520 buffers, and a bound on it would hide such a walk.
const (
	descentBuffers = 6  // per loop
	rowsPerBuffer  = 15 // rows read per buffer after the descent
)

// PagesReadTheirRows fails tb when a page of the sweep named name, its
// statement stmt run with each of pages (arguments as in Plans, the
// page's size limit last), reads more than two pages' rows of any table,
// or when one of its nodes touches more buffers itself than a scan of its
// rows may (see descentBuffers): a page must read its own rows, not walk
// the candidates behind or before it, whether it filters them out or
// steps over their index entries.
func PagesReadTheirRows(tb testing.TB, conn *pgx.Conn, name, stmt string, pages []string, limit int) {
	tb.Helper()
	pagesRead(tb, conn, name, stmt, pages, limit, 0)
}

// ScatteredPagesReadTheirRows is PagesReadTheirRows for a page whose rows
// lie anywhere in their table: a queue whose rows are rewritten each
// time they are claimed, so no order on disk follows the page's (its test
// seeds the rows as they arrive, not in the page's order). Each node may also
// touch a heap buffer per row it reads. That allowance would hide a scan
// stepping over index entries inside its index, so the page's index must
// begin with the page's own range condition, leaving no entries between
// the rows it reads.
func ScatteredPagesReadTheirRows(tb testing.TB, conn *pgx.Conn, name, stmt string, pages []string, limit int) {
	tb.Helper()
	pagesRead(tb, conn, name, stmt, pages, limit, 1)
}

func pagesRead(tb testing.TB, conn *pgx.Conn, name, stmt string, pages []string, limit int, buffersPerRow float64) {
	tb.Helper()
	err := Plans(context.Background(), conn, stmt, pages, true, func(mode, args string, plan Node, raw []byte) {
		for _, e := range overreads(plan, limit, buffersPerRow) {
			tb.Errorf("%s (%s), %s: %s:\n%s", name, args, mode, e, raw)
		}
	})
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// overreads says how a plan of EXPLAIN (ANALYZE, BUFFERS) of a page of
// limit rows read more than its own rows.
func overreads(plan Node, limit int, buffersPerRow float64) []string {
	var bad []string
	read := plan.RowsRead()
	if len(read) == 0 {
		bad = append(bad, "no scan in the plan")
	}
	for table, rows := range read {
		if rows > float64(2*limit) {
			bad = append(bad, fmt.Sprintf("read %.0f rows of %s for a page of %d", rows, table, limit))
		}
	}
	plan.Walk(func(n Node) {
		rows := (n.Rows + n.Filtered + n.Rechecked) * n.Loops
		may := descentBuffers*n.Loops + rows/rowsPerBuffer + rows*buffersPerRow
		if n.NodeType == "LockRows" {
			// FOR UPDATE takes each row's lock on its heap page: a
			// buffer per row it locks, wherever the rows lie.
			may += rows
		}
		if own := n.ownBuffers(); own > may {
			bad = append(bad, fmt.Sprintf("%s touched %.0f buffers for %.0f rows in %.0f loops, more than %.0f",
				n.name(), own, rows, n.Loops, may))
		}
	})
	return bad
}

// name names n for a failure: its type and what it scans.
func (n Node) name() string {
	switch {
	case n.IndexName != "":
		return n.NodeType + " using " + n.IndexName
	case n.Relation != "":
		return n.NodeType + " on " + n.Relation
	}
	return n.NodeType
}
