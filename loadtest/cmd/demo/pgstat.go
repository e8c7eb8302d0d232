package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/loadtest/result"
)

// topStatements is how many statements the -pgstat table lists.
const topStatements = 8

// statement is one line of pg_stat_statements: what one statement of one
// database cost over the replay. Its time includes its waits for locks.
type statement struct {
	db    string
	calls int64
	total time.Duration
	text  string
}

// measureStatements returns an AroundReplay that empties Postgres's
// pg_stat_statements (loaded by localstack.Config.Statements) as the
// replay starts and, as it ends, prints the statements Postgres spent the
// most time on during it: where a lock convoy or a slow query shows up
// (docs/operations.md, "Where to look"). A restart of Postgres during the
// replay (a scenario's kill) empties the counts.
func measureStatements(ctx context.Context, url string, out io.Writer) func() (end func(*result.Replay)) {
	return func() func(*result.Replay) {
		// A connection each time, none held through the replay: a
		// scenario's faults on Postgres would cut it.
		if err := withConn(ctx, url, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
			return err
		}); err != nil {
			fmt.Fprintf(out, "Postgres statements not measured: %v\n", err)
			return func(*result.Replay) {}
		}
		return func(*result.Replay) {
			var list []statement
			err := withConn(ctx, url, func(conn *pgx.Conn) (err error) {
				list, err = topByTime(ctx, conn)
				return err
			})
			if err != nil {
				fmt.Fprintf(out, "Postgres statements not measured: %v\n", err)
				return
			}
			fmt.Fprint(out, statementTable(list))
		}
	}
}

// withConn runs f on a connection to url of its own.
func withConn(ctx context.Context, url string, f func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return f(conn)
}

// topByTime reads the statements that took the most time, every
// database's.
func topByTime(ctx context.Context, conn *pgx.Conn) ([]statement, error) {
	rows, err := conn.Query(ctx, `SELECT d.datname, s.calls, s.total_exec_time, regexp_replace(s.query, '\s+', ' ', 'g')
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE s.query <> 'SELECT pg_stat_statements_reset()'
		ORDER BY s.total_exec_time DESC LIMIT $1`, topStatements)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (statement, error) {
		var s statement
		var ms float64
		err := row.Scan(&s.db, &s.calls, &ms, &s.text)
		s.total = time.Duration(ms * float64(time.Millisecond))
		return s, err
	})
}

// statementTable prints the statements with their calls, total and mean
// time, each statement's text cut to one line.
func statementTable(list []statement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhere Postgres spent its time during the replay (pg_stat_statements; a statement's time includes its waits for locks):\n")
	fmt.Fprintf(&b, "  %-10s %7s %10s %8s  %s\n", "database", "calls", "total ms", "mean ms", "statement")
	for _, s := range list {
		mean := 0.0
		if s.calls > 0 {
			mean = float64(s.total.Microseconds()) / 1000 / float64(s.calls)
		}
		fmt.Fprintf(&b, "  %-10s %7d %10.0f %8.2f  %s\n", s.db, s.calls, float64(s.total.Microseconds())/1000, mean, cut(s.text, 90))
	}
	return b.String()
}

// cut shortens s to at most n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// around runs both hooks around the replay: first's end before second's.
func around(first, second func() func(*result.Replay)) func() func(*result.Replay) {
	return func() func(*result.Replay) {
		a, b := first(), second()
		return func(res *result.Replay) {
			a(res)
			b(res)
		}
	}
}
