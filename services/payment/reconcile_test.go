package payment_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/services/payment"
)

// billBook is a ledger of paid payments and a channel whose statement
// lists their trades in pages, for reconciliation. The ledger records
// payment times in microseconds, as Postgres does, while the channel's
// carry nanoseconds. It notes how far the ledger had been read each time
// the channel handed over a page.
type billBook struct {
	payment.Ledger
	held   map[int64]payment.Payment
	paid   []payment.PaidRef // the ledger's paid payments, by time then id
	trades []payment.Trade   // the statement, by time then trade number
	size   int               // a statement page's size
	read   time.Time         // the latest payment time the ledger returned
	lags   []string          // pages handed over with the ledger read behind or ahead
}

func (b *billBook) Payments(_ context.Context, ids []int64) (map[int64]payment.Payment, error) {
	out := map[int64]payment.Payment{}
	for _, id := range ids {
		if p, ok := b.held[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

func (b *billBook) PaidSince(context.Context, string, time.Time) (payment.PaidReader, error) {
	return &billReader{b: b}, nil
}

type billReader struct {
	b    *billBook
	next int
}

func (r *billReader) Next(_ context.Context, before time.Time, limit int) ([]payment.PaidRef, error) {
	var out []payment.PaidRef
	for ; r.next < len(r.b.paid) && len(out) < limit; r.next++ {
		p := r.b.paid[r.next]
		if !before.IsZero() && !p.PaidAt.Before(before) {
			break
		}
		out = append(out, p)
		r.b.read = p.PaidAt
	}
	return out, nil
}

func (r *billReader) Close(context.Context) {}

// billChannel serves the book's statement.
type billChannel struct{ *billBook }

func (c billChannel) Statement(_ context.Context, _ time.Time, each func([]payment.Trade) error) error {
	for i := 0; i < len(c.trades); i += c.size {
		if i > 0 {
			// The ledger's payments paid well before the last page's
			// last trade must have been read by now, and none paid
			// after it: the ledger is read along the statement, a page
			// at a time, not first and whole.
			prev := c.trades[i-1].PaidAt
			if c.read.After(prev) {
				c.lags = append(c.lags, fmt.Sprintf("page %d: the ledger read up to %s, ahead of the statement's %s", i/c.size, c.read, prev))
			}
			for _, p := range c.paid {
				if p.PaidAt.Before(prev.Add(-2*time.Millisecond)) && p.PaidAt.After(c.read) {
					c.lags = append(c.lags, fmt.Sprintf("page %d: payment %d paid %s not read", i/c.size, p.ID, p.PaidAt))
					break
				}
			}
		}
		if err := each(c.trades[i:min(i+c.size, len(c.trades))]); err != nil {
			return err
		}
	}
	return nil
}

func (billChannel) Create(context.Context, payment.Payment) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

func (billChannel) Query(context.Context, int64) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

func (billChannel) Refund(context.Context, string, int64, int64) (string, error) {
	return "", errors.New("not used")
}

func (billChannel) Notification([]byte, string) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

// reconcileAlipay reconciles b's statement as alipay's at now.
func reconcileAlipay(t *testing.T, b *billBook, now time.Time) ([]payment.ReconcileReport, error) {
	t.Helper()
	router, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := payment.NewService(payment.Config{Ledger: b, Channels: map[string]payment.Channel{"alipay": billChannel{b}},
		Router: router, Clock: clock.NewManual(now), NextID: func() int64 { return 0 }})
	return svc.Reconcile(context.Background())
}

// TestReconcileMergesLedgerAndStatementByTime: reconciliation holds the
// ledger's paid payments against the statement as it reads both, by
// payment time, page by page, instead of loading the day's ids first. It
// must find exactly the payments the ledger holds paid without a paid
// trade (one in the middle of the day, one after the statement's last
// trade), however the pages cut trades that share a microsecond or a
// nanosecond, and however the ledger's microseconds round the channel's
// nanoseconds; and it must have read the ledger up to each page before
// asking for the next, which is what keeps its memory to a page.
func TestReconcileMergesLedgerAndStatementByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	b := &billBook{held: map[int64]payment.Payment{}, size: 4}
	for i := range int64(60) {
		// Three trades in each millisecond, two of them in the same
		// nanosecond, the third 999 ns later: the same microsecond or
		// the next.
		at := t0.Add(time.Duration(i/3)*time.Millisecond + time.Duration(i%3/2)*999*time.Nanosecond + 500*time.Nanosecond)
		id := 1000 + i
		tr := payment.Trade{TradeNo: fmt.Sprintf("T%03d", 99-i), PaymentID: id, Amount: 100, Status: payment.TradePaid, PaidAt: at}
		st := payment.StatusSucceeded
		if i%7 == 0 {
			tr.Status, tr.Refunded, st = payment.TradeRefunded, 100, payment.StatusRefunded
		}
		b.trades = append(b.trades, tr)
		b.held[id] = payment.Payment{ID: id, Channel: "alipay", Amount: 100, Status: st, TradeNo: tr.TradeNo, PaidAt: at, Refunded: tr.Refunded}
		b.paid = append(b.paid, payment.PaidRef{ID: id, PaidAt: at.Truncate(time.Microsecond)})
	}
	// The ledger holds two payments paid that the channel never took.
	b.paid = append(b.paid, payment.PaidRef{ID: 1, PaidAt: t0.Add(7 * time.Millisecond)},
		payment.PaidRef{ID: 2, PaidAt: t0.Add(time.Hour)})
	slices.SortFunc(b.trades, func(x, y payment.Trade) int {
		return cmp.Or(x.PaidAt.Compare(y.PaidAt), cmp.Compare(x.TradeNo, y.TradeNo))
	})
	slices.SortFunc(b.paid, func(x, y payment.PaidRef) int {
		return cmp.Or(x.PaidAt.Compare(y.PaidAt), cmp.Compare(x.ID, y.ID))
	})
	reps, err := reconcileAlipay(t, b, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 {
		t.Fatalf("%d reports, want alipay's", len(reps))
	}
	rep := reps[0]
	if rep.Checked != 60 || !slices.Equal(rep.Unpaid, []int64{1, 2}) ||
		len(rep.Unknown)+len(rep.Mismatched)+len(rep.Repaired) != 0 {
		t.Errorf("checked %d, unpaid %v, unknown %v, mismatched %v, repaired %v; want 60 checked and only 1 and 2 unpaid",
			rep.Checked, rep.Unpaid, rep.Unknown, rep.Mismatched, rep.Repaired)
	}
	if rep.Found[payment.DiffUnpaid] != 2 || len(rep.Found) != 1 {
		t.Errorf("found %v, want 2 unpaid_at_channel", rep.Found)
	}
	if len(b.lags) > 0 {
		t.Errorf("the ledger was not read along the statement: %v", b.lags)
	}
}

// TestReconcileListsABoundedFew: a statement that disagrees with the
// ledger wholesale (here another merchant's bill: every trade unknown)
// is counted in full but listed only so far.
func TestReconcileListsABoundedFew(t *testing.T) {
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	b := &billBook{held: map[int64]payment.Payment{}, size: 1000}
	const n = 2500
	for i := range int64(n) {
		b.trades = append(b.trades, payment.Trade{TradeNo: fmt.Sprintf("X%05d", i), PaymentID: 1 + i, Amount: 1,
			Status: payment.TradePaid, PaidAt: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	reps, err := reconcileAlipay(t, b, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rep := reps[0]
	if rep.Found[payment.DiffUnknown] != n || len(rep.Unknown) >= n || len(rep.Unknown) == 0 || rep.Unknown[0] != 1 {
		t.Errorf("found %d unknown, listed %d starting %v; want all %d counted and the first few listed",
			rep.Found[payment.DiffUnknown], len(rep.Unknown), rep.Unknown[:min(len(rep.Unknown), 1)], n)
	}
}

// downChannel is a channel whose statement cannot be read.
type downChannel struct{ billChannel }

func (downChannel) Statement(context.Context, time.Time, func([]payment.Trade) error) error {
	return fmt.Errorf("statement: 503 SYSTEM_BUSY: %w", payment.ErrUnavailable)
}

// TestReconcileReachesEveryChannelWhileOneIsDown: a channel whose
// statement cannot be read (an outage that may last the whole window a
// statement covers) does not keep the channels after it from being
// reconciled: the others' differences are found and reported, and the
// failure comes back beside them.
func TestReconcileReachesEveryChannelWhileOneIsDown(t *testing.T) {
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	b := &billBook{held: map[int64]payment.Payment{}, size: 10,
		trades: []payment.Trade{{TradeNo: "T9", PaymentID: 9, Amount: 990, Status: payment.TradePaid, PaidAt: now.Add(-time.Hour)}}}
	router, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"down", "alipay"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := payment.NewService(payment.Config{Ledger: b,
		Channels: map[string]payment.Channel{"down": downChannel{billChannel{b}}, "alipay": billChannel{b}},
		Router:   router, Clock: clock.NewManual(now), NextID: func() int64 { return 0 }})
	reports, err := svc.Reconcile(context.Background())
	if err == nil || !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("error %v, want the down channel's", err)
	}
	i := slices.IndexFunc(reports, func(r payment.ReconcileReport) bool { return r.Channel == "alipay" })
	if i < 0 || reports[i].Checked != 1 || !slices.Equal(reports[i].Unknown, []int64{9}) {
		t.Fatalf("reports %+v, want alipay's, its one trade checked and found unknown", reports)
	}
}

// countedChannel counts the statements asked of it.
type countedChannel struct {
	billChannel
	asked *int
}

func (c countedChannel) Statement(ctx context.Context, since time.Time, each func([]payment.Trade) error) error {
	*c.asked++
	return c.billChannel.Statement(ctx, since, each)
}

// With live channels and no stub, a pressure test's call never reaches a
// channel: its reconciliation (as its refunds and queries, which take
// the same channels) is refused UNAVAILABLE before anything is sent,
// while a real one reads the statement.
func TestPressureTestsNeverReachLiveChannels(t *testing.T) {
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	b := &billBook{held: map[int64]payment.Payment{}, size: 10}
	router, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay"}})
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	svc := payment.NewService(payment.Config{Ledger: b, Live: true,
		Channels: map[string]payment.Channel{"alipay": countedChannel{billChannel{b}, &asked}},
		Router:   router, Clock: clock.NewManual(now), NextID: func() int64 { return 0 }})
	if svc.PressureTestsPay() {
		t.Fatal("live channels without a stub: pressure tests may pay, want refused")
	}
	if _, err := svc.Reconcile(shadow.With(context.Background())); !errors.Is(err, payment.ErrUnavailable) || asked != 0 {
		t.Fatalf("a pressure test's reconciliation: %v after %d statements asked, want UNAVAILABLE and none", err, asked)
	}
	if _, err := svc.Reconcile(context.Background()); err != nil || asked != 1 {
		t.Fatalf("a real reconciliation: %v after %d statements asked, want one", err, asked)
	}
}
