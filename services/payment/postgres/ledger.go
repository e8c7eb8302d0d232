// Package postgres keeps the payment ledger in PostgreSQL. The schema lives
// in migrations/ (embedded, applied by Migrate at start).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/services/payment"
)

// Migrations is the schema, for platform/postgres.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Ledger implements payment.Ledger.
type Ledger struct {
	pool pgplatform.DB
}

// NewLedger returns a Ledger on pool.
func NewLedger(pool pgplatform.DB) *Ledger { return &Ledger{pool: pool} }

// Create stores a new payment.
func (l *Ledger) Create(ctx context.Context, p payment.Payment) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at, query_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, p.ID, p.OrderID, p.UserID, p.Channel, p.Amount, string(p.Status), p.CreatedAt,
		orNull(p.QueryAt))
	if err != nil {
		return fmt.Errorf("create payment %d: %w", p.ID, err)
	}
	return nil
}

// Started records the channel's trade of a payment.
func (l *Ledger) Started(ctx context.Context, id int64, tradeNo, payURL string) error {
	_, err := l.pool.Exec(ctx, `UPDATE payments SET trade_no = $2, pay_url = $3, updated_at = now()
		WHERE payment_id = $1 AND trade_no IS NULL`, id, tradeNo, payURL)
	if err != nil {
		return fmt.Errorf("start payment %d: %w", id, err)
	}
	return nil
}

const paymentSelect = `SELECT payment_id, order_id, user_id, channel, amount, status, coalesce(trade_no, ''),
	coalesce(pay_url, ''), created_at, paid_at, coalesce(order_outcome, ''), coalesce(refusal_reason, ''), refunded, query_at, asked_at FROM payments `

func (l *Ledger) query(ctx context.Context, sql string, args ...any) ([]payment.Payment, error) {
	return collectPayments(l.pool.Query(ctx, paymentSelect+sql, args...))
}

// collectPayments reads the payments of a query of paymentSelect.
func collectPayments(rows pgx.Rows, err error) ([]payment.Payment, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Payment, error) {
		var p payment.Payment
		var status, outcome string
		var paid, queryAt, askedAt *time.Time
		err := r.Scan(&p.ID, &p.OrderID, &p.UserID, &p.Channel, &p.Amount, &status, &p.TradeNo, &p.PayURL,
			&p.CreatedAt, &paid, &outcome, &p.RefusalReason, &p.Refunded, &queryAt, &askedAt)
		p.Status, p.Outcome = payment.Status(status), payment.Outcome(outcome)
		p.PaidAt, p.QueryAt, p.AskedAt = orZero(paid), orZero(queryAt), orZero(askedAt)
		return p, err
	})
}

func (l *Ledger) one(ctx context.Context, what string, sql string, args ...any) (payment.Payment, error) {
	found, err := l.query(ctx, sql, args...)
	return first(what, found, err)
}

// first returns the first of found, or payment.ErrNotFound when there is
// none, each error wrapped with what was looked for.
func first(what string, found []payment.Payment, err error) (payment.Payment, error) {
	if err != nil {
		return payment.Payment{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(found) == 0 {
		return payment.Payment{}, fmt.Errorf("%s: %w", what, payment.ErrNotFound)
	}
	return found[0], nil
}

// Payment returns a payment, or payment.ErrNotFound.
func (l *Ledger) Payment(ctx context.Context, id int64) (payment.Payment, error) {
	return l.one(ctx, fmt.Sprintf("payment %d", id), `WHERE payment_id = $1`, id)
}

// Payments returns those of ids the ledger holds, by id.
func (l *Ledger) Payments(ctx context.Context, ids []int64) (map[int64]payment.Payment, error) {
	found, err := l.query(ctx, `WHERE payment_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	out := make(map[int64]payment.Payment, len(found))
	for _, p := range found {
		out[p.ID] = p
	}
	return out, nil
}

// Open returns the order's newest PAYING payment through channel that has
// a trade.
func (l *Ledger) Open(ctx context.Context, orderID int64, channel string) (payment.Payment, error) {
	return l.one(ctx, fmt.Sprintf("open payment of order %d", orderID),
		`WHERE order_id = $1 AND channel = $2 AND status = 'PAYING' AND trade_no IS NOT NULL
		 ORDER BY created_at DESC, payment_id DESC LIMIT 1`, orderID, channel)
}

// Succeed moves a PAYING or FAILED payment to SUCCEEDED. The update and
// the read of the payment after it go in one round trip (one implicit
// transaction: the read, a statement of its own under READ COMMITTED,
// sees the update and any settler's that committed before it). The
// transaction commits at the batch's end, so an answer lost on the way
// back (a cancelled context, a dropped connection) leaves the payment
// SUCCEEDED while this call reports an error: the next settler finds it
// so and goes on (not moved by it, so the success counter misses that
// one payment).
func (l *Ledger) Succeed(ctx context.Context, id int64, tradeNo string, paidAt time.Time) (payment.Payment, bool, error) {
	b := &pgx.Batch{}
	b.Queue(`UPDATE payments SET status = 'SUCCEEDED', paid_at = $3,
		trade_no = coalesce(trade_no, NULLIF($2, '')), updated_at = now()
		WHERE payment_id = $1 AND status IN ('PAYING', 'FAILED')`, id, tradeNo, paidAt)
	b.Queue(paymentSelect+`WHERE payment_id = $1`, id)
	br := l.pool.SendBatch(ctx, b)
	tag, err := br.Exec()
	var found []payment.Payment
	if err == nil {
		found, err = collectPayments(br.Query())
	}
	p, err := first(fmt.Sprintf("succeed payment %d", id), found, pgplatform.CloseBatch(br, err))
	return p, err == nil && tag.RowsAffected() == 1, err
}

// Fail moves a PAYING payment to FAILED, keeping its next query when
// its outcome is unknown and clearing it otherwise (migration 007).
func (l *Ledger) Fail(ctx context.Context, id int64, outcomeUnknown bool) error {
	if _, err := l.pool.Exec(ctx, `UPDATE payments SET status = 'FAILED', updated_at = now(),
		query_at = CASE WHEN $2 THEN query_at END
		WHERE payment_id = $1 AND status = 'PAYING'`, id, outcomeUnknown); err != nil {
		return fmt.Errorf("fail payment %d: %w", id, err)
	}
	return nil
}

// SetOutcome records the order's answer and its refusal reason unless an
// answer is recorded, and returns the answer and reason on record: o and
// reason, or those a concurrent settler recorded first. The second
// statement runs only when the conditional UPDATE lost, and sees the
// winner's committed answer.
func (l *Ledger) SetOutcome(ctx context.Context, id int64, o payment.Outcome, reason string) (payment.Outcome, string, error) {
	var recorded, recordedReason string
	err := l.pool.QueryRow(ctx, `UPDATE payments SET order_outcome = $2, refusal_reason = NULLIF($3, ''), updated_at = now()
		WHERE payment_id = $1 AND order_outcome IS NULL RETURNING order_outcome, coalesce(refusal_reason, '')`,
		id, string(o), reason).Scan(&recorded, &recordedReason)
	if errors.Is(err, pgx.ErrNoRows) {
		err = l.pool.QueryRow(ctx, `SELECT coalesce(order_outcome, ''), coalesce(refusal_reason, '') FROM payments
			WHERE payment_id = $1`, id).Scan(&recorded, &recordedReason)
	}
	if err != nil {
		return payment.OutcomeNone, "", fmt.Errorf("outcome of payment %d: %w", id, err)
	}
	return payment.Outcome(recorded), recordedReason, nil
}

// AddRefund stores r, the automatic full refund of a payment whose order
// refused it, unless the payment has one already, and returns the
// payment's automatic refund. The payment's refunded sum moves in the same
// transaction.
func (l *Ledger) AddRefund(ctx context.Context, r payment.Refund) (payment.Refund, error) {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO refunds (refund_id, payment_id, amount, reason, created_at, kind)
			VALUES ($1, $2, $3, $4, $5, 'REFUSED') ON CONFLICT (payment_id) WHERE kind = 'REFUSED' DO NOTHING`,
			r.ID, r.PaymentID, r.Amount, r.Reason, r.CreatedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE payments SET refunded = refunded + $2, updated_at = now() WHERE payment_id = $1`,
			r.PaymentID, r.Amount)
		return err
	})
	if err != nil {
		return payment.Refund{}, fmt.Errorf("add refund of payment %d: %w", r.PaymentID, err)
	}
	return l.refund(ctx, fmt.Sprintf("refund of payment %d", r.PaymentID), `payment_id = $1 AND kind = 'REFUSED'`, r.PaymentID)
}

// AddOrderRefund stores r, one of an order's refunds, and adds its amount
// to the payment's refunded sum, in one transaction. The sum moves by a
// conditional UPDATE (a paid, accepted payment with r.Amount left), so
// concurrent refunds can never return more than was paid: a refund that
// would is refused with payment.ErrConflict and nothing is stored. A
// refund id stored already answers that refund, unless it names another
// payment or amount (payment.ErrConflict).
func (l *Ledger) AddOrderRefund(ctx context.Context, r payment.Refund) (payment.Refund, error) {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO refunds (refund_id, payment_id, amount, reason, created_at, kind)
			VALUES ($1, $2, $3, $4, $5, 'ORDER') ON CONFLICT (refund_id) DO NOTHING`,
			r.ID, r.PaymentID, r.Amount, r.Reason, r.CreatedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		tag, err = tx.Exec(ctx, `UPDATE payments SET refunded = refunded + $2, updated_at = now()
			WHERE payment_id = $1 AND status = 'SUCCEEDED' AND order_outcome = 'ACCEPTED' AND refunded + $2 <= amount`,
			r.PaymentID, r.Amount)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: payment %d is not a paid payment with %d cents left to refund", payment.ErrConflict, r.PaymentID, r.Amount)
		}
		return nil
	})
	if err != nil {
		return payment.Refund{}, fmt.Errorf("add refund %d of payment %d: %w", r.ID, r.PaymentID, err)
	}
	got, err := l.refund(ctx, fmt.Sprintf("refund %d", r.ID), `refund_id = $1`, r.ID)
	if err != nil {
		return payment.Refund{}, err
	}
	if got.PaymentID != r.PaymentID || got.Amount != r.Amount {
		return payment.Refund{}, fmt.Errorf("refund %d: %w: it refunds %d of payment %d, not %d of payment %d",
			r.ID, payment.ErrConflict, got.Amount, got.PaymentID, r.Amount, r.PaymentID)
	}
	return got, nil
}

// Refund returns the automatic refund of a payment, or
// payment.ErrNotFound.
func (l *Ledger) Refund(ctx context.Context, paymentID int64) (payment.Refund, error) {
	return l.refund(ctx, fmt.Sprintf("refund of payment %d", paymentID), `payment_id = $1 AND kind = 'REFUSED'`, paymentID)
}

// refund reads the one refund that cond (with $1 = arg) selects.
func (l *Ledger) refund(ctx context.Context, what, cond string, arg int64) (payment.Refund, error) {
	var r payment.Refund
	var no *string
	err := l.pool.QueryRow(ctx, `SELECT refund_id, payment_id, amount, reason, refund_no, created_at
		FROM refunds WHERE `+cond, arg).Scan(&r.ID, &r.PaymentID, &r.Amount, &r.Reason, &no, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Refund{}, fmt.Errorf("%s: %w", what, payment.ErrNotFound)
	}
	if err != nil {
		return payment.Refund{}, fmt.Errorf("%s: %w", what, err)
	}
	if no != nil {
		r.RefundNo, r.Done = *no, true
	}
	return r, nil
}

// RefundDone records the channel's refund and, once every refund of the
// payment is done and they add up to its amount, moves the payment to
// REFUNDED, in one transaction. Its first statement takes the payment's
// row lock, so two refunds finishing at once see each other's done mark
// and one of them moves the payment. It reports whether this call marked
// the refund done, so that a refund settled twice at once counts once.
func (l *Ledger) RefundDone(ctx context.Context, r payment.Refund, refundNo string) (bool, error) {
	var marked bool
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE payments SET updated_at = now() WHERE payment_id = $1`, r.PaymentID); err != nil {
			return fmt.Errorf("refund %d done: %w", r.ID, err)
		}
		tag, err := tx.Exec(ctx, `UPDATE refunds SET refund_no = $2, done_at = now()
			WHERE refund_id = $1 AND done_at IS NULL`, r.ID, refundNo)
		if err != nil {
			return fmt.Errorf("refund %d done: %w", r.ID, err)
		}
		marked = tag.RowsAffected() == 1
		if _, err := tx.Exec(ctx, `UPDATE payments SET status = 'REFUNDED', updated_at = now()
			WHERE payment_id = $1 AND status = 'SUCCEEDED' AND refunded = amount
			  AND NOT EXISTS (SELECT 1 FROM refunds WHERE payment_id = $1 AND done_at IS NULL)`, r.PaymentID); err != nil {
			return fmt.Errorf("refund %d done: %w", r.ID, err)
		}
		return nil
	})
	return marked && err == nil, err
}

// duePayments is Due's statement after paymentSelect.
const duePayments = `WHERE status IN ('PAYING', 'FAILED') AND query_at <= $1
		ORDER BY query_at, payment_id LIMIT $2 FOR UPDATE SKIP LOCKED`

// Due claims the payments whose query is due, earliest first, and sets
// each one's next query and its claim time (asked_at), in one
// transaction: the row locks keep a second payment replica's sweep off
// the same page, and the next query, set before the channel is asked, is
// the claim (a sweeper that dies while asking leaves the payments to
// their next query, not to a lock). The payments_query_due_v2 index
// (migrations 006 and 007) holds only the payments still to be asked, by their
// query time, so a page reads its own rows however many wait for a later
// query (TestDuePagesReadOnlyTheirRows).
func (l *Ledger) Due(ctx context.Context, now time.Time, limit int, next func(payment.Payment) time.Time) ([]payment.Payment, error) {
	var due []payment.Payment
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		if due, err = collectPayments(tx.Query(ctx, paymentSelect+duePayments, now, limit)); err != nil || len(due) == 0 {
			return err
		}
		ids, at := make([]int64, len(due)), make([]*time.Time, len(due))
		for i, p := range due {
			ids[i], at[i] = p.ID, orNull(next(p))
		}
		_, err = tx.Exec(ctx, `UPDATE payments SET query_at = next.at, asked_at = $3
			FROM unnest($1::bigint[], $2::timestamptz[]) AS next (id, at) WHERE payment_id = next.id`, ids, at, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payments due for a query: %w", err)
	}
	return due, nil
}

// AskSoon moves a PAYING payment's next query to at, or to gap after its
// last claim when that is later, when the query was set later still. A
// NULL query time (the questions are over) is not later than anything,
// so it stays NULL; a payment never claimed has no claim to wait for.
func (l *Ledger) AskSoon(ctx context.Context, id int64, at time.Time, gap time.Duration) error {
	if _, err := l.pool.Exec(ctx, `UPDATE payments SET query_at = greatest($2, asked_at + $3)
		WHERE payment_id = $1 AND status = 'PAYING' AND query_at > greatest($2, asked_at + $3)`, id, at, gap); err != nil {
		return fmt.Errorf("ask about payment %d soon: %w", id, err)
	}
	return nil
}

// orZero is the time SQL's NULL scans to: the zero time.
func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// orNull is t, or SQL's NULL for the zero time.
func orNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// PaidSince opens a read-only REPEATABLE READ transaction on the ledger
// and takes its snapshot at once, so every page the reader returns is the
// ledger as it stood when PaidSince returned. The reader pages by
// (paid_at, payment_id) on the payments_paid index.
func (l *Ledger) PaidSince(ctx context.Context, channel string, since time.Time) (payment.PaidReader, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("paid payments of %s: %w", channel, err)
	}
	// SET TRANSACTION must come first; the SELECT takes the snapshot.
	if _, err = tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err == nil {
		_, err = tx.Exec(ctx, `SELECT 1`)
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("paid payments of %s: %w", channel, err)
	}
	return &paidReader{tx: tx, channel: channel, since: since}, nil
}

// paidReader is PaidSince's snapshot and the last payment it returned.
type paidReader struct {
	tx      pgx.Tx
	channel string
	since   time.Time
	last    payment.PaidRef
}

func (r *paidReader) Next(ctx context.Context, before time.Time, limit int) ([]payment.PaidRef, error) {
	var until *time.Time
	if !before.IsZero() {
		until = &before
	}
	rows, err := r.tx.Query(ctx, `SELECT payment_id, paid_at FROM payments
		WHERE channel = $1 AND paid_at IS NOT NULL AND created_at >= $2
		  AND (paid_at, payment_id) > ($3, $4) AND ($5::timestamptz IS NULL OR paid_at < $5)
		ORDER BY paid_at, payment_id LIMIT $6`, r.channel, r.since, r.last.PaidAt, r.last.ID, until, limit)
	if err != nil {
		return nil, fmt.Errorf("paid payments of %s: %w", r.channel, err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.PaidRef, error) {
		var p payment.PaidRef
		err := row.Scan(&p.ID, &p.PaidAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("paid payments of %s: %w", r.channel, err)
	}
	if len(refs) > 0 {
		r.last = refs[len(refs)-1]
	}
	return refs, nil
}

// Close ends the snapshot's transaction, also when ctx has ended.
func (r *paidReader) Close(ctx context.Context) { _ = r.tx.Rollback(context.WithoutCancel(ctx)) }

// Unsettled returns SUCCEEDED payments without the order's answer or
// waiting for their refund.
func (l *Ledger) Unsettled(ctx context.Context, after int64, limit int) ([]payment.Payment, error) {
	found, err := l.query(ctx, `WHERE status = 'SUCCEEDED' AND (order_outcome IS NULL OR order_outcome = 'REFUSED')
		AND payment_id > $1 ORDER BY payment_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("unsettled payments: %w", err)
	}
	return found, nil
}
