package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/platform/testing/pgcalls"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/postgres"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"orders", "orders_plans"}}, func(s *localstack.Stack) { stack = s })
}

// MustPool returns a pool on the migrated orders database.
func MustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return stack.MustPool(tb, "orders", 8, postgres.Migrations)
}

var nextID atomic.Int64

func init() { nextID.Store(time.Now().UnixNano() / 1000) }

var created = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

// placed returns a fresh valid event of user for activity.
func placed(user, activity, qty int64) order.Placed {
	id := nextID.Add(2)
	return order.Placed{OrderID: id, LineID: id + 1, UserID: user, ActivityID: activity, SKUID: 9,
		Quantity: qty, UnitPrice: 1250, IdempotencyKey: "key-" + time.Unix(0, id).String(),
		CreatedAt: created.Add(time.Duration(id) * time.Microsecond), ExpiresAt: created.Add(time.Duration(id)*time.Microsecond + time.Hour)}
}

func TestInsertIsIdempotent(t *testing.T) {
	pool := MustPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	a, b := placed(1, 100, 1), placed(2, 100, 2)
	dupKey := placed(1, 100, 1)
	dupKey.IdempotencyKey = a.IdempotencyKey
	otherActivity := placed(1, 200, 1)
	otherActivity.IdempotencyKey = a.IdempotencyKey

	tests := []struct {
		name          string
		orders        []order.Order
		want          int
		wantConflicts []int64
	}{
		{"new orders, one twice in the batch", []order.Order{
			a.Order(order.StatusPendingPayment), b.Order(order.StatusPendingPayment), a.Order(order.StatusPendingPayment)}, 2, nil},
		{"the same orders again", []order.Order{a.Order(order.StatusPendingPayment), b.Order(order.StatusPendingPayment)}, 0, nil},
		{"another id with a used idempotency key", []order.Order{
			dupKey.Order(order.StatusPendingPayment), a.Order(order.StatusPendingPayment)}, 0, []int64{dupKey.OrderID}},
		{"the same key in another activity", []order.Order{otherActivity.Order(order.StatusPendingPayment)}, 1, nil},
		{"empty batch", nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conflicts, err := s.Insert(ctx, tt.orders)
			if err != nil {
				t.Fatal(err)
			}
			var gotConflicts []int64
			for _, o := range conflicts {
				gotConflicts = append(gotConflicts, o.ID)
			}
			if got != tt.want || fmt.Sprint(gotConflicts) != fmt.Sprint(tt.wantConflicts) {
				t.Fatalf("inserted: got %d, conflicts %v, want %d, conflicts %v", got, gotConflicts, tt.want, tt.wantConflicts)
			}
		})
	}
	var orders, lines int
	if err := pool.QueryRow(ctx, `SELECT count(*), (SELECT count(*) FROM order_lines WHERE order_id = ANY($1))
		FROM orders WHERE order_id = ANY($1)`, []int64{a.OrderID, b.OrderID, dupKey.OrderID}).Scan(&orders, &lines); err != nil {
		t.Fatal(err)
	}
	if orders != 2 || lines != 2 {
		t.Fatalf("rows: got %d orders and %d lines, want 2 and 2", orders, lines)
	}
	got, err := s.Order(ctx, b.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	want := b.Order(order.StatusPendingPayment)
	if got.ID != want.ID || got.UserID != 2 || got.Kind != order.KindSeckill || got.Status != order.StatusPendingPayment ||
		got.Total != 2500 || got.Payable != 2500 || len(got.Lines) != 1 || got.Lines[0] != want.Lines[0] ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.PaidAt.IsZero() {
		t.Fatalf("stored order: got %+v, want %+v", got, want)
	}
	if _, err := s.Order(ctx, dupKey.OrderID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("order skipped for its key: got %v, want ErrNotFound", err)
	}
}

func TestInsertRejectsBrokenMoneyAtomically(t *testing.T) {
	pool := MustPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	good := placed(3, 101, 1)
	bad := placed(3, 101, 1).Order(order.StatusPendingPayment)
	bad.Lines[0].Amount++ // amount must be unit_price × quantity
	if _, _, err := s.Insert(ctx, []order.Order{good.Order(order.StatusPendingPayment), bad}); !errors.Is(err, order.ErrInvalid) {
		t.Fatalf("a line whose amount is not price × quantity: %v, want ErrInvalid (the store refuses the data: no retry helps)", err)
	}
	// A window Postgres's microseconds close fails its CHECK the same way.
	shut := placed(3, 102, 1)
	shut.CreatedAt = shut.CreatedAt.Truncate(time.Microsecond)
	shut.ExpiresAt = shut.CreatedAt.Add(500 * time.Nanosecond)
	if _, _, err := s.Insert(ctx, []order.Order{shut.Order(order.StatusPendingPayment)}); !errors.Is(err, order.ErrInvalid) {
		t.Fatalf("expiry within the creation's microsecond: %v, want ErrInvalid", err)
	}
	if _, err := s.Order(ctx, good.OrderID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("the good order of a failed batch: got %v, want ErrNotFound (one transaction)", err)
	}
}

func TestUserOrdersAndActivityStats(t *testing.T) {
	pool := MustPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	activity := nextID.Add(2)
	var batch []order.Order
	var ids []int64
	user, other := nextID.Add(2), nextID.Add(2)
	for _, p := range []order.Placed{placed(user, activity, 1), placed(user, activity, 2), placed(other, activity, 1)} {
		batch = append(batch, p.Order(order.StatusPendingPayment))
		ids = append(ids, p.OrderID)
	}
	if _, _, err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.UserOrders(ctx, user, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[0] || len(got[0].Lines) != 1 {
		t.Fatalf("the user's orders: got %+v, want %d then %d with their lines", got, ids[1], ids[0])
	}
	// A retry after the sale's end finds its order by its key.
	if o, err := s.SeckillByKey(ctx, user, activity, batch[1].IdempotencyKey); err != nil || o.ID != ids[1] {
		t.Fatalf("the user's flash-sale order by key: %+v, %v; want %d", o, err, ids[1])
	}
	if _, err := s.SeckillByKey(ctx, other, activity, batch[1].IdempotencyKey); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("another user's key: %v, want ErrNotFound", err)
	}
	st, err := s.ActivityStats(ctx, activity)
	if err != nil {
		t.Fatal(err)
	}
	if want := (postgres.ActivityStats{Orders: 3, Units: 4, MaxUserUnits: 3}); st != want {
		t.Fatalf("stats: got %+v, want %+v", st, want)
	}
}

// previousNames are the names the earlier migration runner recorded for
// the files renumbered when the service moved to goose (two pairs shared
// a number).
var previousNames = map[string]string{
	"003_payment.sql":         "002_payment.sql",
	"004_refunds.sql":         "003_refunds.sql",
	"005_regular_release.sql": "003_regular_release.sql",
	"006_refund_keys.sql":     "004_refund_keys.sql",
}

// TestMigrateFromThePreviousRelease: a database the previous release
// migrated (every file applied in name order and recorded by name in
// schema_migrations) is brought up to date without running a file twice.
func TestMigrateFromThePreviousRelease(t *testing.T) {
	ctx := context.Background()
	admin := MustPool(t)
	name := fmt.Sprintf("orders_previous_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	pool, err := pgplatform.Dial(ctx, stack.PostgresURL(name), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	files, err := fs.Glob(postgres.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]string{} // previous name → file
	for _, f := range files {
		n := path.Base(f)
		if p, ok := previousNames[n]; ok {
			n = p
		}
		old[n] = f
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, n := range slices.Sorted(maps.Keys(old)) {
		body, err := fs.ReadFile(postgres.Migrations, old[n])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, string(body)); err != nil {
			t.Fatalf("previous release applying %s: %v", n, err)
		}
		if _, err := pool.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", n); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgplatform.Migrate(ctx, pool, postgres.Migrations); err != nil {
		t.Fatalf("migrating the previous release's database: %v", err)
	}
	var version int
	if err := pool.QueryRow(ctx, "SELECT max(version_id) FROM goose_db_version").Scan(&version); err != nil || version != len(files) {
		t.Errorf("recorded version %d (%v), want %d", version, err, len(files))
	}
}

// Reading orders is the platform's most frequent statement (buyers poll
// their orders), so each read is one round trip: the orders, their lines
// and their promotions sent at once. Each order comes back whole: its own
// lines and promotions, none of another order's. Marking an order paid
// reads it back in the same round trip.
func TestOrderReadsAreOneRoundTrip(t *testing.T) {
	calls := pgcalls.New(MustPool(t))
	s := postgres.NewStore(calls)
	ctx := context.Background()
	user := nextID.Add(1)
	plain := MustPaidOrder(t, s, user, [3]int64{2, 500, 0})
	discounted := MustPaidOrder(t, s, user, [3]int64{1, 1000, 100}, [3]int64{3, 200, 60})
	for _, read := range []struct {
		name string
		run  func() ([]order.Order, error)
		want []order.Order
	}{
		{"by id", func() ([]order.Order, error) { o, err := s.Order(ctx, discounted.ID); return []order.Order{o}, err },
			[]order.Order{discounted}},
		{"the user's, newest first", func() ([]order.Order, error) { return s.UserOrders(ctx, user, 10) },
			[]order.Order{discounted, plain}},
		{"the user's, the newest alone", func() ([]order.Order, error) { return s.UserOrders(ctx, user, 1) },
			[]order.Order{discounted}},
		{"by key", func() ([]order.Order, error) {
			o, err := s.RegularByKey(ctx, user, plain.IdempotencyKey)
			return []order.Order{o}, err
		}, []order.Order{plain}},
	} {
		calls.Take()
		got, err := read.run()
		if err != nil {
			t.Fatalf("%s: %v", read.name, err)
		}
		if c := calls.Take(); len(c) != 1 {
			t.Errorf("%s made %v, want one round trip", read.name, c)
		}
		if len(got) != len(read.want) {
			t.Fatalf("%s: %d orders, want %d", read.name, len(got), len(read.want))
		}
		for i, o := range got {
			w := read.want[i]
			if o.ID != w.ID || !reflect.DeepEqual(o.Lines, w.Lines) || !reflect.DeepEqual(o.Promotions, w.Promotions) {
				t.Errorf("%s: order %d with lines %+v and promotions %+v, want order %d with %+v and %+v",
					read.name, o.ID, o.Lines, o.Promotions, w.ID, w.Lines, w.Promotions)
			}
		}
	}
	if _, err := s.Order(ctx, nextID.Add(1)); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("an unknown order: %v, want ErrNotFound", err)
	}

	// Marking an order paid sends its update and the read of the order
	// as it stands afterwards together.
	pending := MustPendingOrder(t, s, user, [3]int64{1, 700, 0})
	pay := order.Paid{OrderID: pending.ID, PaymentID: pending.ID + 1, Channel: "wechat", Amount: pending.Payable, PaidAt: created}
	for _, want := range []bool{true, false} {
		calls.Take()
		paid, moved, err := s.MarkPaid(ctx, pay)
		if err != nil || moved != want || paid.Status != order.StatusPaid || !reflect.DeepEqual(paid.Lines, pending.Lines) {
			t.Fatalf("mark paid: %v with lines %+v, moved %v, %v; want PAID with %+v, moved %v", paid.Status, paid.Lines, moved, err, pending.Lines, want)
		}
		if c := calls.Take(); len(c) != 1 {
			t.Errorf("mark paid made %v, want one round trip", c)
		}
	}
	if _, _, err := s.MarkPaid(ctx, order.Paid{OrderID: nextID.Add(1), PaymentID: 1, Channel: "wechat", Amount: 1, PaidAt: created}); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("marking an unknown order paid: %v, want ErrNotFound", err)
	}
}

// The user's list selects its orders with a LIMIT, and its lines and
// promotions by the same condition: all three must read one snapshot. A
// newer order committed while the read waits between its first statement
// and its second (held here by a lock on order_lines) would otherwise
// move the window, and the oldest order of the list would come back
// without its lines.
func TestUserOrdersReadsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	s, other := postgres.NewStore(MustPool(t)), MustPool(t)
	user := nextID.Add(1)
	older := MustPendingOrder(t, s, user, [3]int64{1, 100, 0})
	newer := MustPendingOrder(t, s, user, [3]int64{2, 100, 0})
	if _, err := s.UserOrders(ctx, user, 2); err != nil { // statements prepared
		t.Fatal(err)
	}
	locker, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(ctx)
	if _, err := locker.Exec(ctx, `LOCK TABLE order_lines IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type read struct {
		orders []order.Order
		err    error
	}
	done := make(chan read, 1)
	go func() {
		orders, err := s.UserOrders(ctx, user, 2)
		done <- read{orders, err}
	}()
	for waiting := 0; waiting == 0; time.Sleep(10 * time.Millisecond) {
		if err := other.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND relation = 'order_lines'::regclass`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	// The newest order of all, copied from newer under another id.
	newest := newer.ID + 500
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`CREATE TEMP TABLE o AS SELECT * FROM orders WHERE order_id = $1`, newer.ID},
		{`UPDATE o SET order_id = $1, idempotency_key = 'newest'`, newest},
		{`CREATE TEMP TABLE l AS SELECT * FROM order_lines WHERE order_id = $1`, newer.ID},
		{`UPDATE l SET order_id = $1, line_id = line_id + 500`, newest},
	} {
		if _, err := locker.Exec(ctx, q.sql, q.arg); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	for _, q := range []string{`INSERT INTO orders SELECT * FROM o`, `INSERT INTO order_lines SELECT * FROM l`} {
		if _, err := locker.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := locker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	if len(got.orders) != 2 || got.orders[0].ID != newer.ID || got.orders[1].ID != older.ID {
		t.Fatalf("read %d orders, want newer %d and older %d as the read began", len(got.orders), newer.ID, older.ID)
	}
	for _, o := range got.orders {
		if len(o.Lines) != 1 {
			t.Errorf("order %d came back with %d lines, want 1", o.ID, len(o.Lines))
		}
	}
}

// The expiry backstop's pages walk the overdue flash-sale orders by
// deadline and then id, with a cursor: orders due at one instant are
// split over pages without one being skipped or read twice, and orders
// not due, or no longer waiting for payment, are never read.
func TestOverduePagesWalkOrdersDueAtOneInstant(t *testing.T) {
	pool := MustPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	// Deadlines long before every other test's orders, so only these are
	// overdue at before.
	at := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	before := at.Add(time.Minute)
	var want []int64
	insert := func(status string, due time.Time) int64 {
		id := nextID.Add(2)
		var paidAt *time.Time
		if status == "PAID" {
			paidAt = &due
		}
		_, err := pool.Exec(ctx, `INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at, paid_at) VALUES ($1, 1, 'SECKILL', $2, 7, 100, 0, 100, $3, $4, $5, $6)`,
			id, status, fmt.Sprint("overdue-", id), due.Add(-time.Hour), due, paidAt)
		if err != nil {
			t.Fatal(err)
		}
		// Gone when the test ends: a later run in this process would find
		// them overdue too.
		t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DELETE FROM orders WHERE order_id = $1", id) })
		return id
	}
	// Inserted newest id first, so id order is not deadline order.
	late := insert("PENDING_PAYMENT", at.Add(time.Second))
	for range 3 {
		want = append(want, insert("PENDING_PAYMENT", at))
	}
	slices.Sort(want)
	want = append(want, late)
	insert("PAID", at)
	insert("PENDING_PAYMENT", before.Add(time.Millisecond))
	var c sweep.Cursor[sweep.TimeKey]
	var seen []int64
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatalf("the pass did not end; read %v", seen)
		}
		page, err := s.OverdueSeckill(ctx, before, c.After(ctx), 2)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]sweep.TimeKey, len(page))
		for i, d := range page {
			seen = append(seen, d.OrderID)
			keys[i] = sweep.TimeKey{At: d.DueAt, ID: d.OrderID}
		}
		c.Read(ctx, keys, 2)
		if len(page) < 2 {
			break
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("one pass in pages of 2 read %v, want the overdue orders by deadline and id %v", seen, want)
	}
	if c.After(ctx) != (sweep.TimeKey{}) {
		t.Errorf("after the pass the cursor is at %v, want the start", c.After(ctx))
	}
}

// The backstop's expiry marks a flash-sale order owed its stock in the
// statement that expires it, and only the release clears the mark: a
// regular order is never moved by it, an order expired once is not moved
// again, and the marked order is listed until its stock is back.
func TestBackstopExpiryOwesTheStockUntilReleased(t *testing.T) {
	pool := MustPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	due := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	insert := func(kind string) int64 {
		id := nextID.Add(2)
		activity := any(7)
		if kind == "REGULAR" {
			activity = nil
		}
		_, err := pool.Exec(ctx, `INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at) VALUES ($1, 1, $2, 'PENDING_PAYMENT', $3, 100, 0, 100, $4, $5, $6)`,
			id, kind, activity, fmt.Sprint("owed-", id), due.Add(-time.Hour), due)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DELETE FROM orders WHERE order_id = $1", id) })
		return id
	}
	seckill, regular := insert("SECKILL"), insert("REGULAR")
	owed := func() bool {
		page, err := s.SeckillStockDue(ctx, seckill-1, 10)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(page, func(d order.DueEntry) bool { return d.OrderID == seckill && d.ActivityID == 7 })
	}
	moved, err := s.ExpireOverdueSeckill(ctx, []int64{seckill, regular}, due.Add(time.Hour))
	if err != nil || !slices.Equal(moved, []int64{seckill}) {
		t.Fatalf("expired %v, %v; want the flash-sale order %d alone", moved, err, seckill)
	}
	var status string
	var events int
	if err := pool.QueryRow(ctx, `SELECT status, (SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'EXPIRED')
		FROM orders WHERE order_id = $1`, seckill).Scan(&status, &events); err != nil || status != "EXPIRED" || events != 1 {
		t.Fatalf("the expired order: %s with %d EXPIRED events (%v), want EXPIRED and one", status, events, err)
	}
	if !owed() {
		t.Fatal("the expired order is not owed its stock")
	}
	if again, err := s.ExpireOverdueSeckill(ctx, []int64{seckill}, due.Add(time.Hour)); err != nil || len(again) != 0 {
		t.Fatalf("expired again: %v, %v; want nothing", again, err)
	}
	if err := s.SeckillStockReleased(ctx, []int64{seckill}); err != nil {
		t.Fatal(err)
	}
	if owed() {
		t.Fatal("the order is still owed its stock once released")
	}
}
