// Package pgcalls records the calls a store makes on its database, for
// tests that hold a store to a number of round trips: a store that updates
// a hot row must do it in one statement, never in a transaction that goes
// back to the service between statements while the row is locked
// (docs/stock-reservation.md, "Regular stock: hot rows").
package pgcalls

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flashsale/flashsale/platform/postgres"
)

// Recorder is a postgres.DB that passes every call to DB and records the
// method's name.
type Recorder struct {
	postgres.DB
	mu    sync.Mutex
	calls []string
}

var _ postgres.DB = (*Recorder)(nil)

// New records the calls made on db.
func New(db postgres.DB) *Recorder { return &Recorder{DB: db} }

func (r *Recorder) record(name string) {
	r.mu.Lock()
	r.calls = append(r.calls, name)
	r.mu.Unlock()
}

// Take returns the calls recorded since the last Take and forgets them.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func (r *Recorder) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.record("Exec")
	return r.DB.Exec(ctx, sql, args...)
}

func (r *Recorder) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.record("Query")
	return r.DB.Query(ctx, sql, args...)
}

func (r *Recorder) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	r.record("QueryRow")
	return r.DB.QueryRow(ctx, sql, args...)
}

func (r *Recorder) Begin(ctx context.Context) (pgx.Tx, error) {
	r.record("Begin")
	return r.DB.Begin(ctx)
}

func (r *Recorder) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	r.record("SendBatch")
	return r.DB.SendBatch(ctx, b)
}

func (r *Recorder) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	r.record("CopyFrom")
	return r.DB.CopyFrom(ctx, table, columns, src)
}
