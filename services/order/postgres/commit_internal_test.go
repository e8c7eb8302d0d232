package postgres

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A COMMIT's error leaves its outcome unknown unless Postgres itself
// refused: no answer (a deadline, a closed connection), or an answer that
// only says the connection is going, from a pooler or the backend, while
// the backend may still commit. From a review (2026-12-08): PgBouncer
// answers a query_timeout with SQLSTATE 08P01, which was taken as a
// definite failure.
func TestCommitUnanswered(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("commit: %w", io.ErrUnexpectedEOF), true},
		{&pgconn.PgError{Code: "08P01", Message: "query_timeout"}, true},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key value"}, false},
		{&pgconn.PgError{Code: "40001", Message: "could not serialize access"}, false},
	} {
		if got := commitUnanswered(tt.err); got != tt.want {
			t.Errorf("commitUnanswered(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
