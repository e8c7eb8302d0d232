// Package postgres stores orders in PostgreSQL. The schema lives in
// migrations/ (embedded, applied by Migrate at start); see
// migrations/001_orders.sql for the tables, their CHECKs and indexes.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/services/order"
)

// Migrations is the schema, for platform/postgres.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Store implements order.Store and the consumer's batch insert.
type Store struct {
	pool pgplatform.DB
}

// NewStore returns a Store on pool.
func NewStore(pool pgplatform.DB) *Store { return &Store{pool: pool} }

// Insert stores orders that are not stored yet, in one transaction with
// one multi-row insert per table, and returns how many were new. An order
// whose id is already stored is skipped with its lines, so delivering an
// event twice is harmless. An order whose user, kind, activity and
// idempotency key another order id holds is skipped too and returned in
// conflicts, since it is a second order for one request.
func (s *Store) Insert(ctx context.Context, orders []order.Order) (stored int, conflicts []order.Order, err error) {
	if len(orders) == 0 {
		return 0, nil, nil
	}
	defer func() { err = refusedData(err) }()
	var o orderColumns
	var l lineColumns
	for _, ord := range orders {
		o.add(ord)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("insert orders: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	// The orders that are new get their STORED event in the same
	// statement (the outbox, migrations/008_order_events.sql).
	rows, err := tx.Query(ctx, `
		WITH stored AS (
			INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			                    idempotency_key, created_at, expires_at)
			SELECT id, u, k, st, NULLIF(a, 0), t, d, p, key, c, e
			FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
			            $7::bigint[], $8::bigint[], $9::text[], $10::timestamptz[], $11::timestamptz[])
			     AS x(id, u, k, st, a, t, d, p, key, c, e)
			ON CONFLICT DO NOTHING
			RETURNING order_id, kind, activity_id, payable, created_at),
		events AS (
			INSERT INTO order_events (order_id, type, kind, activity_id, amount, at)
			SELECT order_id, 'STORED', kind, coalesce(activity_id, 0), payable, created_at FROM stored)
		SELECT order_id FROM stored`,
		o.id, o.user, o.kind, o.status, o.activity, o.total, o.discount, o.payable, o.key, o.created, o.expires)
	if err != nil {
		return 0, nil, fmt.Errorf("insert orders: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, nil, fmt.Errorf("insert orders: %w", err)
	}
	fresh := make(map[int64]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	var skipped []int64
	for _, ord := range orders {
		isNew, ok := fresh[ord.ID]
		switch {
		case isNew:
			l.add(ord)
			// A duplicate within the batch must not add its lines twice.
			fresh[ord.ID] = false
		case !ok:
			skipped = append(skipped, ord.ID)
		}
	}
	conflicts, err = s.conflicts(ctx, tx, orders, skipped)
	if err != nil {
		return 0, nil, err
	}
	if len(l.id) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO order_lines (line_id, order_id, sku_id, quantity, unit_price, amount, discount, payable)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
			                     $6::bigint[], $7::bigint[], $8::bigint[])`,
			l.id, l.order, l.sku, l.qty, l.price, l.amount, l.discount, l.payable); err != nil {
			return 0, nil, fmt.Errorf("insert order lines: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, fmt.Errorf("insert orders: commit: %w", err)
	}
	return len(inserted), conflicts, nil
}

// refusedData marks err with order.ErrInvalid when Postgres refused the
// data itself: a data exception (SQLSTATE class 22, a value out of range
// or a time it cannot hold) or an integrity constraint (class 23, a CHECK
// such as expires_at > created_at once both are cut to microseconds).
// No retry changes those; the consumer sets such an order aside.
func refusedData(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23")) {
		return fmt.Errorf("%w: %w", order.ErrInvalid, err)
	}
	return err
}

// conflicts returns the orders among skipped whose id is not stored: what
// kept them out was the idempotency key.
func (s *Store) conflicts(ctx context.Context, tx pgx.Tx, orders []order.Order, skipped []int64) ([]order.Order, error) {
	if len(skipped) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT order_id FROM orders WHERE order_id = ANY($1)`, skipped)
	if err != nil {
		return nil, fmt.Errorf("insert orders: %w", err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("insert orders: %w", err)
	}
	done := make(map[int64]bool, len(present))
	for _, id := range present {
		done[id] = true
	}
	var out []order.Order
	for _, o := range orders {
		if !done[o.ID] && slices.Contains(skipped, o.ID) {
			done[o.ID] = true // report each order once
			out = append(out, o)
		}
	}
	return out, nil
}

// orderColumns holds orders as one array per column, the shape unnest
// turns back into rows.
type orderColumns struct {
	id, user, activity, total, discount, payable []int64
	kind, status, key                            []string
	created, expires                             []time.Time
}

func (c *orderColumns) add(o order.Order) {
	c.id = append(c.id, o.ID)
	c.user = append(c.user, o.UserID)
	c.kind = append(c.kind, string(o.Kind))
	c.status = append(c.status, string(o.Status))
	c.activity = append(c.activity, o.ActivityID)
	c.total = append(c.total, o.Total)
	c.discount = append(c.discount, o.Discount)
	c.payable = append(c.payable, o.Payable)
	c.key = append(c.key, o.IdempotencyKey)
	c.created = append(c.created, o.CreatedAt)
	c.expires = append(c.expires, o.ExpiresAt)
}

type lineColumns struct {
	id, order, sku, qty, price, amount, discount, payable []int64
}

func (c *lineColumns) add(o order.Order) {
	for _, l := range o.Lines {
		c.id = append(c.id, l.ID)
		c.order = append(c.order, o.ID)
		c.sku = append(c.sku, l.SKUID)
		c.qty = append(c.qty, l.Quantity)
		c.price = append(c.price, l.UnitPrice)
		c.amount = append(c.amount, l.Amount)
		c.discount = append(c.discount, l.Discount)
		c.payable = append(c.payable, l.Payable)
	}
}

const orderSelect = `SELECT order_id, user_id, kind, status, coalesce(activity_id, 0), total, discount, payable,
	idempotency_key, created_at, expires_at, paid_at, coalesce(payment_id, 0), coalesce(payment_channel, ''), coalesce(coupon_id, 0), refunded FROM orders `

// orderRead is one way of reading orders: the statements that select
// them by a condition, their lines and their promotions, sent together
// (query).
type orderRead struct{ orders, lines, promotions string }

// readOrders returns the read of the orders that cond (a WHERE clause on
// orders, with its ORDER BY and LIMIT if any) selects; the three
// statements take the same arguments.
//
// The lines and promotions take their orders' ids as an array computed
// once (an InitPlan), `order_id = ANY (ARRAY(…))`, which Postgres looks
// up in the order_id index. Written `order_id IN (SELECT …)`, the user's
// list (a subquery with LIMIT) was planned as a hash semi-join over the
// whole table: the planner could not tell how few ids the subquery
// gives, and after a capacity run (142,121 lines) each list read scanned
// every line, 31-80 ms, until the audit's reads of 32 lists at a time
// ran out of their 2 s budget (TestOrderReadsLookUpTheirRows).
func readOrders(cond string) orderRead {
	ids := `ANY (ARRAY(SELECT order_id FROM orders ` + cond + `))`
	return orderRead{
		orders: orderSelect + cond,
		lines: `SELECT order_id, line_id, sku_id, quantity, unit_price, amount, discount, payable,
			refunded_quantity, refunded FROM order_lines WHERE order_id = ` + ids + ` ORDER BY line_id`,
		promotions: `SELECT order_id, promotion_id, kind, amount FROM order_promotions
			WHERE order_id = ` + ids + ` ORDER BY order_id, position`,
	}
}

var (
	orderByID    = readOrders(`WHERE order_id = $1`)
	ordersOfUser = readOrders(`WHERE user_id = $1 ORDER BY created_at DESC, order_id DESC LIMIT $2`)
	regularByKey = readOrders(`WHERE user_id = $1 AND kind = 'REGULAR' AND idempotency_key = $2`)
	seckillByKey = readOrders(`WHERE user_id = $1 AND kind = 'SECKILL' AND activity_id = $2 AND idempotency_key = $3`)
)

// Order returns a stored order with its lines, or order.ErrNotFound.
func (s *Store) Order(ctx context.Context, id int64) (order.Order, error) {
	found, err := s.query(ctx, orderByID, id)
	if err != nil {
		return order.Order{}, fmt.Errorf("order %d: %w", id, err)
	}
	if len(found) == 0 {
		return order.Order{}, fmt.Errorf("order %d: %w", id, order.ErrNotFound)
	}
	return found[0], nil
}

// MarkPaid moves the order from PENDING_PAYMENT to PAID by p when its
// payable amount is p.Amount, in one conditional update that also writes
// its PAID event, and returns the
// order as it stands afterwards (a loser of a race with expiry, cancel or
// another payment sees the winner's state) and whether the update moved
// it.
func (s *Store) MarkPaid(ctx context.Context, p order.Paid) (order.Order, bool, error) {
	// The update and the read of the order go in one round trip.
	b := &pgx.Batch{}
	b.Queue(`
		WITH paid AS (
			UPDATE orders SET status = 'PAID', paid_at = $3, payment_id = $2, payment_channel = $4, updated_at = now()
			WHERE order_id = $1 AND status = 'PENDING_PAYMENT' AND payable = $5
			RETURNING order_id, kind, activity_id, payable)
		INSERT INTO order_events (order_id, type, kind, activity_id, amount, channel, at)
		SELECT order_id, 'PAID', kind, coalesce(activity_id, 0), payable, $4, $3 FROM paid`,
		p.OrderID, p.PaymentID, p.PaidAt, p.Channel, p.Amount)
	orderByID.queue(b, p.OrderID)
	br := s.pool.SendBatch(ctx, b)
	tag, err := br.Exec()
	var found []order.Order
	if err == nil {
		found, err = collectOrders(br)
	}
	if err = pgplatform.CloseBatch(br, err); err != nil {
		return order.Order{}, false, fmt.Errorf("mark order %d paid: %w", p.OrderID, err)
	}
	if len(found) == 0 {
		return order.Order{}, false, fmt.Errorf("order %d: %w", p.OrderID, order.ErrNotFound)
	}
	return found[0], tag.RowsAffected() == 1, nil
}

// UserOrders returns up to limit of the user's stored orders, newest first.
func (s *Store) UserOrders(ctx context.Context, userID int64, limit int) ([]order.Order, error) {
	found, err := s.query(ctx, ordersOfUser, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("orders of user %d: %w", userID, err)
	}
	return found, nil
}

// query reads the orders that r selects with their lines and
// promotions: three statements sent at once, one round trip (an order
// read is the platform's most frequent statement: buyers poll their
// orders). They run in one read-only REPEATABLE READ transaction, so they
// share one snapshot: a newer order committed in between cannot move a
// LIMIT's window, nor a refund show in the lines and not in the order.
func (s *Store) query(ctx context.Context, r orderRead, args ...any) ([]order.Order, error) {
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	r.queue(b, args...)
	b.Queue(`COMMIT`)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	var orders []order.Order
	if err == nil {
		orders, err = collectOrders(br)
	}
	if err == nil {
		_, err = br.Exec()
	}
	if err = pgplatform.CloseBatch(br, err); err != nil {
		return nil, err
	}
	return orders, nil
}

// queue adds the read's three statements to b.
func (r orderRead) queue(b *pgx.Batch, args ...any) {
	b.Queue(r.orders, args...)
	b.Queue(r.lines, args...)
	b.Queue(r.promotions, args...)
}

// collectOrders reads the results of an orderRead's statements, next in
// br: the orders with their lines and promotions.
func collectOrders(br pgx.BatchResults) ([]order.Order, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) {
		var o order.Order
		var kind, status string
		var paid *time.Time
		err := r.Scan(&o.ID, &o.UserID, &kind, &status, &o.ActivityID, &o.Total, &o.Discount, &o.Payable,
			&o.IdempotencyKey, &o.CreatedAt, &o.ExpiresAt, &paid, &o.PaymentID, &o.PaymentChannel, &o.CouponID, &o.Refunded)
		o.Kind, o.Status = order.Kind(kind), order.Status(status)
		if paid != nil {
			o.PaidAt = *paid
		}
		return o, err
	})
	if err != nil {
		return nil, err
	}
	at := make(map[int64]int, len(orders))
	for i, o := range orders {
		at[o.ID] = i
	}
	if rows, err = br.Query(); err != nil {
		return nil, err
	}
	var l order.Line
	var orderID int64
	_, err = pgx.ForEachRow(rows, []any{&orderID, &l.ID, &l.SKUID, &l.Quantity, &l.UnitPrice, &l.Amount, &l.Discount, &l.Payable,
		&l.RefundedQuantity, &l.Refunded}, func() error {
		if i, ok := at[orderID]; ok {
			orders[i].Lines = append(orders[i].Lines, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rows, err = br.Query(); err != nil {
		return nil, err
	}
	var p order.Promotion
	_, err = pgx.ForEachRow(rows, []any{&orderID, &p.ID, &p.Kind, &p.Amount}, func() error {
		if i, ok := at[orderID]; ok {
			orders[i].Promotions = append(orders[i].Promotions, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return orders, nil
}

// ActivityStats sums up an activity's orders that still hold stock (all
// but CANCELLED, EXPIRED and REFUNDED ones).
type ActivityStats struct {
	Orders int64
	Units  int64
	// MaxUserUnits is the most units one user holds, to check the limit.
	MaxUserUnits int64
}

// ActivityStats returns the activity's aggregates.
func (s *Store) ActivityStats(ctx context.Context, activityID int64) (ActivityStats, error) {
	var st ActivityStats
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(n), 0), coalesce(sum(units), 0), coalesce(max(units), 0)
		FROM (SELECT o.user_id, count(DISTINCT o.order_id) AS n, sum(l.quantity) AS units
		      FROM orders o JOIN order_lines l ON l.order_id = o.order_id
		      WHERE o.activity_id = $1 AND o.status NOT IN ('CANCELLED', 'EXPIRED', 'REFUNDED')
		      GROUP BY o.user_id) AS per_user`, activityID).Scan(&st.Orders, &st.Units, &st.MaxUserUnits)
	if err != nil {
		return ActivityStats{}, fmt.Errorf("stats of activity %d: %w", activityID, err)
	}
	return st, nil
}
