package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/payment"
	"github.com/flashsale/flashsale/services/payment/postgres"
)

// mustEmptyLedger returns a ledger on the database db (a pool of conns),
// its payments emptied.
func mustEmptyLedger(tb testing.TB, db string, conns int32) *postgres.Ledger {
	tb.Helper()
	pool := stack.MustPool(tb, db, conns, postgres.Migrations)
	if _, err := pool.Exec(context.Background(), `TRUNCATE payments CASCADE`); err != nil {
		tb.Fatal(err)
	}
	return postgres.NewLedger(pool)
}

// TestTwoSweepersClaimDisjointPages: with two payment replicas, both
// sweeps read the payments due at once. Each payment is claimed by one of
// them, its next query set as it is claimed, so the channel is asked once
// about it; a payment whose questions are over (the zero next time) and
// one paid meanwhile are never due again, even when their buyer looks.
func TestTwoSweepersClaimDisjointPages(t *testing.T) {
	const due, page = 1000, 400
	ctx := context.Background()
	ledger := mustEmptyLedger(t, "payment_ledger", 4)
	now := time.Date(2026, 11, 11, 0, 10, 0, 0, time.UTC)
	for i := range int64(due + 1) {
		p := payment.Payment{ID: 1 + i, OrderID: 1 + i, UserID: 1, Channel: "alipay", Amount: 100,
			Status: payment.StatusPaying, CreatedAt: now.Add(-time.Minute), QueryAt: now.Add(-time.Duration(i) * time.Millisecond)}
		if i == due { // not due yet
			p.QueryAt = now.Add(time.Second)
		}
		if err := ledger.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	next := func(p payment.Payment) time.Time {
		if p.ID%10 == 0 {
			return time.Time{} // its questions are over
		}
		return now.Add(time.Minute)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed = map[int64]int{}
	)
	for range 2 {
		wg.Go(func() {
			for {
				got, err := ledger.Due(ctx, now, page, next)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, p := range got {
					claimed[p.ID]++
				}
				mu.Unlock()
				if len(got) < page {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(claimed) != due {
		t.Errorf("the two sweepers claimed %d payments, want the %d due", len(claimed), due)
	}
	for id, n := range claimed {
		if n != 1 || id > due {
			t.Errorf("payment %d claimed %d times, want once and only when due", id, n)
		}
	}
	if _, _, err := ledger.Succeed(ctx, 1, "T1", now); err != nil {
		t.Fatal(err)
	}
	// A buyer's look moves a payment's question up (AskSoon), but not
	// one paid meanwhile nor one whose questions are over.
	// A buyer's look waits for the gap after the last claim: payment 3,
	// claimed at now, is moved to now + 30 s, not to now.
	for _, id := range []int64{1, 10, 2} {
		if err := ledger.AskSoon(ctx, id, now, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := ledger.AskSoon(ctx, 3, now, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	soon, err := ledger.Due(ctx, now, due, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(soon) != 1 || soon[0].ID != 2 {
		t.Errorf("after looks at payments 1 (paid), 10 (questions over) and 2, due now: %v, want payment 2 alone", soon)
	}
	if p, err := ledger.Payment(ctx, 3); err != nil || !p.QueryAt.Equal(now.Add(30*time.Second)) {
		t.Errorf("payment 3 looked at right after its claim: next question %v (%v), want 30 s after the claim", p.QueryAt, err)
	}
	later, err := ledger.Due(ctx, now.Add(time.Hour), due, next)
	if err != nil {
		t.Fatal(err)
	}
	// All but the paid one and those whose questions are over, and the
	// one that was not due yet.
	if want := due - due/10 - 1 + 1; len(later) != want {
		t.Errorf("an hour later %d payments are due, want %d", len(later), want)
	}
	for _, p := range later {
		want := now.Add(time.Minute)
		switch p.ID {
		case due + 1:
			want = now.Add(time.Second)
		case 3:
			want = now.Add(30 * time.Second)
		}
		if p.ID%10 == 0 || p.ID == 1 || !p.QueryAt.Equal(want) {
			t.Errorf("payment %d due an hour later, next query at %v; want none whose questions are over, not the paid one, and %v",
				p.ID, p.QueryAt, want)
		}
	}
}

// TestPaymentsOfTheReleaseBeforeAreAskedAbout: during a rolling update the
// release before migration 006 still creates payments, with no query
// time of their own. Each gets its first question as this release would
// schedule it, QueryAfter's default after its creation, instead of none.
func TestPaymentsOfTheReleaseBeforeAreAskedAbout(t *testing.T) {
	ctx := context.Background()
	pool := stack.MustPool(t, "payment_ledger", 2, postgres.Migrations)
	const id = 9_000_001
	if _, err := pool.Exec(ctx, `DELETE FROM payments WHERE payment_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	// The release before's Ledger.Create, word for word.
	if _, err := pool.Exec(ctx, `INSERT INTO payments (payment_id, order_id, user_id, channel, amount, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, now())`, id, id, 1, "alipay", 100, "PAYING"); err != nil {
		t.Fatal(err)
	}
	var wait time.Duration
	if err := pool.QueryRow(ctx, `SELECT query_at - created_at FROM payments WHERE payment_id = $1`, id).Scan(&wait); err != nil {
		t.Fatal(err)
	}
	if wait != 30*time.Second {
		t.Errorf("a payment of the release before is first asked about %v after its creation, want 30s", wait)
	}
}

// A payment whose channel never answered its trade's creation is FAILED
// but keeps its questions: the trade may exist and be paid later, so the
// sweep asks about it when its next question comes (Due), and settles a
// late payment (Succeed takes a FAILED payment). One the channel refused
// is asked nothing more.
func TestFailedPaymentOfUnknownOutcomeIsStillAsked(t *testing.T) {
	ctx := context.Background()
	ledger := mustEmptyLedger(t, "payment_ledger_failed", 2)
	now := time.Date(2026, 11, 11, 0, 10, 0, 0, time.UTC)
	for id := int64(1); id <= 3; id++ {
		if err := ledger.Create(ctx, payment.Payment{ID: id, OrderID: id, UserID: 1, Channel: "alipay", Amount: 100,
			Status: payment.StatusPaying, CreatedAt: now.Add(-time.Minute), QueryAt: now.Add(30 * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ledger.Fail(ctx, 1, true); err != nil { // no answer: unknown
		t.Fatal(err)
	}
	if err := ledger.Fail(ctx, 2, false); err != nil { // refused
		t.Fatal(err)
	}
	next := func(payment.Payment) time.Time { return now.Add(time.Hour) }
	if early, err := ledger.Due(ctx, now, 10, next); err != nil || len(early) != 0 {
		t.Fatalf("due before their question: %v (%v), want none", early, err)
	}
	due, err := ledger.Due(ctx, now.Add(time.Minute), 10, next)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, p := range due {
		ids = append(ids, p.ID)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 3 || due[0].Status != payment.StatusFailed {
		t.Fatalf("due at their question: %v (%+v), want 1 (FAILED, unknown) and 3 (PAYING), not 2 (refused)", ids, due)
	}
	if _, moved, err := ledger.Succeed(ctx, 1, "T1", now); err != nil || !moved {
		t.Fatalf("a late payment of the unknown one: moved %v (%v), want SUCCEEDED", moved, err)
	}
}
