// Package shadow is the pressure-test (全链路压测) side of the load test:
// the leakage audit of a run in which marked and real traffic shared one
// platform, and the cleanup of the shadow data afterwards
// (docs/pressure-test.md).
//
// The audit needs no list of what was marked: ids are snowflakes, unique
// across the two classes, so a row is marked by where it lives, and the
// checks are that the schemas do not meet (no id in both), that every
// reference stays in its class (a shadow order's activity is a shadow
// activity, a shadow payment's order a shadow order; the same for real
// rows), and that Redis holds no real key of a shadow activity and no
// shadow key of a real one.
package shadow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/shadow"
)

// Stores are the platform's stores, as the audit and the cleanup reach
// them: one URL per service database, the Redis client (one server or a
// cluster).
type Stores struct {
	Product, Orders, Payment, Marketing string
	Redis                               redis.UniversalClient
}

// Check is one audit check: how many leaked rows or keys it found.
type Check struct {
	Name  string
	Leaks int64
}

// Report is the audit's checks, and the figures of each class.
type Report struct {
	Checks []Check
	// Orders and Payments count each class's rows, by label (real, shadow).
	Orders, Payments map[string]int64
}

// Clean reports whether no check found a leak.
func (r Report) Clean() bool {
	for _, c := range r.Checks {
		if c.Leaks != 0 {
			return false
		}
	}
	return true
}

// String is the report as the load test prints it.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pressure-test leakage audit: orders real %d shadow %d, payments real %d shadow %d\n",
		r.Orders[shadow.LabelReal], r.Orders[shadow.LabelShadow], r.Payments[shadow.LabelReal], r.Payments[shadow.LabelShadow])
	for _, c := range r.Checks {
		verdict := "ok"
		if c.Leaks != 0 {
			verdict = fmt.Sprintf("LEAK %d", c.Leaks)
		}
		fmt.Fprintf(&b, "  %-60s %s\n", c.Name, verdict)
	}
	return b.String()
}

// ids reads one bigint column.
func ids(ctx context.Context, conn *pgx.Conn, sql string) (map[int64]bool, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	out := make(map[int64]bool, len(got))
	for _, id := range got {
		out[id] = true
	}
	return out, err
}

// classIDs reads a column from the real and the shadow table.
func classIDs(ctx context.Context, url, column, table string) (real, shadowed map[int64]bool, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)
	if real, err = ids(ctx, conn, fmt.Sprintf("SELECT %s FROM public.%s WHERE %s IS NOT NULL", column, table, column)); err != nil {
		return nil, nil, err
	}
	shadowed, err = ids(ctx, conn, fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s IS NOT NULL", column, shadow.Schema, table, column))
	return real, shadowed, err
}

// count is how many of a are in b.
func count(a, b map[int64]bool) int64 {
	var n int64
	for id := range a {
		if b[id] {
			n++
		}
	}
	return n
}

// missing is how many of a are not in b.
func missing(a, b map[int64]bool) int64 { return int64(len(a)) - count(a, b) }

// Audit checks that the two classes never met in the stores.
func Audit(ctx context.Context, s Stores) (Report, error) {
	var r Report
	realActs, shadowActs, err := classIDs(ctx, s.Product, "activity_id", "activities")
	if err != nil {
		return r, fmt.Errorf("audit: activities: %w", err)
	}
	realOrders, shadowOrders, err := classIDs(ctx, s.Orders, "order_id", "orders")
	if err != nil {
		return r, fmt.Errorf("audit: orders: %w", err)
	}
	realOrderActs, shadowOrderActs, err := classIDs(ctx, s.Orders, "activity_id", "orders")
	if err != nil {
		return r, fmt.Errorf("audit: orders' activities: %w", err)
	}
	realPayOrders, shadowPayOrders, err := classIDs(ctx, s.Payment, "order_id", "payments")
	if err != nil {
		return r, fmt.Errorf("audit: payments: %w", err)
	}
	r.Orders = map[string]int64{shadow.LabelReal: int64(len(realOrders)), shadow.LabelShadow: int64(len(shadowOrders))}
	r.Payments = map[string]int64{shadow.LabelReal: int64(len(realPayOrders)), shadow.LabelShadow: int64(len(shadowPayOrders))}
	r.Checks = append(r.Checks,
		Check{"activities in both schemas", count(realActs, shadowActs)},
		Check{"orders in both schemas", count(realOrders, shadowOrders)},
		Check{"real orders of a shadow activity", count(realOrderActs, shadowActs)},
		Check{"shadow orders of a real activity", count(shadowOrderActs, realActs)},
		Check{"shadow orders of no shadow activity", missing(shadowOrderActs, shadowActs)},
		Check{"real payments of a shadow order", count(realPayOrders, shadowOrders)},
		Check{"shadow payments of a real order", count(shadowPayOrders, realOrders)},
		Check{"shadow payments of no shadow order", missing(shadowPayOrders, shadowOrders)},
	)
	if s.Redis != nil {
		var realKeysOfShadow, shadowKeysOfReal int64
		for id := range shadowActs {
			n, err := s.Redis.Exists(ctx, stockKey(id)).Result()
			if err != nil {
				return r, fmt.Errorf("audit: redis: %w", err)
			}
			realKeysOfShadow += n
		}
		for id := range realActs {
			n, err := s.Redis.Exists(ctx, shadow.KeyPrefix+stockKey(id)).Result()
			if err != nil {
				return r, fmt.Errorf("audit: redis: %w", err)
			}
			shadowKeysOfReal += n
		}
		r.Checks = append(r.Checks,
			Check{"real stock keys of a shadow activity", realKeysOfShadow},
			Check{"shadow stock keys of a real activity", shadowKeysOfReal})
	}
	return r, nil
}

// stockKey is inventory's stock key of an activity ("{act:ID}:stock";
// services/inventory/redis names it, which the load test does not import).
func stockKey(activityID int64) string {
	return "{act:" + strconv.FormatInt(activityID, 10) + "}:stock"
}

// Cleaned is what Clean removed.
type Cleaned struct {
	Tables, Keys int
}

// Clean removes the shadow data: it empties every shadow table of each
// database and deletes every shadow key (SCAN on every primary of a
// cluster). Real data is not named by any of it. Run it between load
// tests, once the marked traffic has stopped and been consumed.
//
// It leaves the shadow topics: the order service's shadow consumer group
// stays subscribed to them, and a topic deleted and made again under a
// live group keeps the group's committed offsets, so the next run's
// first messages would be skipped (marked orders lost: the mixed-run
// test saw it on its second run). Their messages are consumed already
// and age out with the topics' retention.
func Clean(ctx context.Context, s Stores) (Cleaned, error) {
	var c Cleaned
	for _, url := range []string{s.Product, s.Orders, s.Payment, s.Marketing} {
		if url == "" {
			continue
		}
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return c, fmt.Errorf("clean: %w", err)
		}
		n, err := postgres.TruncateShadow(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return c, fmt.Errorf("clean: %w", err)
		}
		c.Tables += n
	}
	if s.Redis != nil {
		n, err := deleteShadowKeys(ctx, s.Redis)
		c.Keys = n
		if err != nil {
			return c, fmt.Errorf("clean: redis: %w", err)
		}
	}
	return c, nil
}

// deleteShadowKeys deletes the keys under shadow.KeyPrefix, on every
// primary of a cluster (SCAN sees one node's keys).
func deleteShadowKeys(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	return eachShadowKey(ctx, rdb, func(ctx context.Context, node redis.Cmdable, key string) error {
		// One key a DEL: a cluster refuses keys of several slots in one.
		return node.Del(ctx, key).Err()
	})
}

// eachShadowKey calls fn on every key under shadow.KeyPrefix, on every
// primary of a cluster (SCAN sees one node's keys), and counts them.
func eachShadowKey(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.Cmdable, key string) error) (int, error) {
	var total atomic.Int64
	each := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, shadow.KeyPrefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := fn(ctx, node, iter.Val()); err != nil {
				return err
			}
			total.Add(1)
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return each(ctx, node) })
	} else {
		err = each(ctx, rdb)
	}
	return int(total.Load()), err
}

// Contents is what the shadow side holds: rows of the shadow tables
// (the migrations' version table aside) and keys under the shadow prefix.
type Contents struct {
	Rows, Tables, Keys int64
}

// Empty reports whether the shadow side holds nothing.
func (c Contents) Empty() bool { return c.Rows == 0 && c.Keys == 0 }

// migrationsTable is the migrations' version table (platform/postgres),
// which the cleanup keeps: it says the shadow schema is migrated.
const migrationsTable = "goose_db_version"

// Count counts what the shadow side holds, in every database named and
// (with a Redis) under the shadow prefix on every primary: the figures
// before a cleanup, and the proof of it after.
func Count(ctx context.Context, s Stores) (Contents, error) {
	var c Contents
	for _, url := range []string{s.Product, s.Orders, s.Payment, s.Marketing} {
		if url == "" {
			continue
		}
		if err := countRows(ctx, url, &c); err != nil {
			return c, fmt.Errorf("count: %w", err)
		}
	}
	if s.Redis != nil {
		n, err := eachShadowKey(ctx, s.Redis, func(context.Context, redis.Cmdable, string) error { return nil })
		c.Keys = int64(n)
		if err != nil {
			return c, fmt.Errorf("count: redis: %w", err)
		}
	}
	return c, nil
}

// countRows adds the rows of one database's shadow tables to c.
func countRows(ctx context.Context, url string, c *Contents) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = $1 AND tablename <> $2`,
		shadow.Schema, migrationsTable)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+shadow.Schema+"."+t).Scan(&n); err != nil {
			return err
		}
		c.Rows += n
		c.Tables++
	}
	return nil
}

// SaleStock is one flash sale's stock as one class's stores hold it.
type SaleStock struct {
	// Remaining is the units the sale's stock key holds; HasKey is false
	// when there is no key.
	Remaining int64
	HasKey    bool
	// Orders maps each stored order of the sale to the units it holds:
	// none once its stock was released (cancelled, expired). Held sums
	// them: what the sale sold.
	Orders map[int64]int64
	Held   int64
}

// ReadSale reads a flash sale's stock key and stored orders on one
// class's side: the real tables and key, or (marked) the shadow ones. It
// names the schema and the key itself rather than going through the
// routing, so the figures do not depend on the mechanism they check.
func ReadSale(ctx context.Context, s Stores, marked bool, activityID int64) (SaleStock, error) {
	st := SaleStock{Orders: map[int64]int64{}}
	schema, key := "public", stockKey(activityID)
	if marked {
		schema, key = shadow.Schema, shadow.KeyPrefix+key
	}
	conn, err := pgx.Connect(ctx, s.Orders)
	if err != nil {
		return st, fmt.Errorf("sale: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT o.order_id, o.status, COALESCE(SUM(l.quantity), 0)
		FROM %[1]s.orders o LEFT JOIN %[1]s.order_lines l ON l.order_id = o.order_id
		WHERE o.activity_id = $1 GROUP BY o.order_id, o.status`, schema), activityID)
	if err != nil {
		return st, fmt.Errorf("sale: orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, units int64
		var status string
		if err := rows.Scan(&id, &status, &units); err != nil {
			return st, fmt.Errorf("sale: orders: %w", err)
		}
		if status == "CANCELLED" || status == "EXPIRED" {
			units = 0
		}
		st.Orders[id] = units
		st.Held += units
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("sale: orders: %w", err)
	}
	if s.Redis != nil {
		n, err := s.Redis.Get(ctx, key).Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return st, fmt.Errorf("sale: stock: %w", err)
		default:
			st.Remaining, st.HasKey = n, true
		}
	}
	return st, nil
}
