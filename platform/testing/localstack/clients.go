package localstack

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/rpc"
)

// MustDial returns a client connection to the gRPC server at addr,
// closed when the test ends.
func MustDial(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	cc, err := rpc.Dial(addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// MustPool returns a pool of at most maxConns connections on the stack's
// database db with migrations applied, closed when the test ends.
func (s *Stack) MustPool(tb testing.TB, db string, maxConns int32, migrations fs.FS) *pgxpool.Pool {
	tb.Helper()
	ctx := context.Background()
	pool, err := pgplatform.Dial(ctx, s.PostgresURL(db), maxConns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := pgplatform.Migrate(ctx, pool, migrations); err != nil {
		tb.Fatal(err)
	}
	return pool
}
