package payment_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/services/payment"
)

// sweepBook is a ledger of PAYING payments (stuck) and SUCCEEDED ones
// waiting for their order's answer (unsettled), with a channel that
// reports every trade unpaid and an order service that fails to answer for
// the payments in broken. It holds only what Sweep reads and writes; any
// other ledger call panics on the nil embedded interface.
type sweepBook struct {
	payment.Ledger
	mu        sync.Mutex
	stuck     []payment.Payment // by id
	unsettled []payment.Payment // by id
	broken    map[int64]bool
	queried   map[int64]bool
	outcome   map[int64]payment.Outcome
}

func page(ps []payment.Payment, after int64, limit int, skip func(payment.Payment) bool) []payment.Payment {
	var out []payment.Payment
	for _, p := range ps {
		if p.ID > after && !skip(p) && len(out) < limit {
			out = append(out, p)
		}
	}
	return out
}

// Stuck pages as the ledger does, by creation and then id; the book's
// stuck payments are in that order.
func (b *sweepBook) Stuck(_ context.Context, _, _ time.Time, after sweep.TimeKey, limit int) ([]payment.Payment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []payment.Payment
	for _, p := range b.stuck {
		if (sweep.TimeKey{At: p.CreatedAt, ID: p.ID}).After(after) && len(out) < limit {
			out = append(out, p)
		}
	}
	return out, nil
}

func (b *sweepBook) Unsettled(_ context.Context, after int64, limit int) ([]payment.Payment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return page(b.unsettled, after, limit, func(p payment.Payment) bool { return b.outcome[p.ID] != payment.OutcomeNone }), nil
}

func (b *sweepBook) SetOutcome(_ context.Context, id int64, o payment.Outcome, reason string) (payment.Outcome, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outcome[id] = o
	return o, reason, nil
}

// unpaidChannel is the channel of the book's payments: it has every trade
// waiting for its buyer.
type unpaidChannel struct{ *sweepBook }

func (b unpaidChannel) Query(_ context.Context, id int64) (payment.Trade, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queried[id] = true
	return payment.Trade{PaymentID: id, Status: payment.TradeWaitPay}, nil
}

func (b *sweepBook) MarkPaid(_ context.Context, p payment.Payment) (bool, string, error) {
	if b.broken[p.ID] {
		return false, "", errors.New("order service: unavailable for this order")
	}
	return true, "", nil
}

func (b *sweepBook) Order(context.Context, int64, int64) (payment.Order, error) {
	return payment.Order{}, payment.ErrNotFound
}

func (unpaidChannel) Create(context.Context, payment.Payment) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

func (unpaidChannel) Refund(context.Context, string, int64, int64) (string, error) {
	return "", errors.New("not used")
}

func (unpaidChannel) Statement(context.Context, time.Time, func([]payment.Trade) error) error {
	return nil
}

func (unpaidChannel) Notification([]byte, string) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

// TestSweepReachesPaymentsBehindOnesThatStay: in a flash sale most
// opened payments are never paid and stay PAYING for a day, and an order
// the order service cannot answer for keeps its payment unsettled. Neither
// may hide the payments behind them: a pass of the sweep queries every
// stuck payment and settles every payment that can be settled. (Reading
// the oldest 500 each round, as the sweep did, queried the first 500
// unpaid payments forever and never settled the 100 behind the broken.)
func TestSweepReachesPaymentsBehindOnesThatStay(t *testing.T) {
	const page, behind = 500, 100
	b := &sweepBook{broken: map[int64]bool{}, queried: map[int64]bool{}, outcome: map[int64]payment.Outcome{}}
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	for i := range int64(page + behind) {
		b.stuck = append(b.stuck, payment.Payment{ID: 1 + i, Channel: "alipay", Amount: 100, Status: payment.StatusPaying})
		id := 10_000 + i
		b.unsettled = append(b.unsettled, payment.Payment{ID: id, OrderID: id, Channel: "alipay", Amount: 100,
			Status: payment.StatusSucceeded, TradeNo: "T", PaidAt: now})
		if i < page {
			b.broken[id] = true
		}
	}
	svc := payment.NewService(payment.Config{Ledger: b, Orders: b, Channels: map[string]payment.Channel{"alipay": unpaidChannel{b}},
		Clock: clock.NewManual(now), NextID: func() int64 { return 0 }})
	resumed := 0
	for range 2 { // a pass over 600 in pages of 500 takes 2 sweeps
		rep, err := svc.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		resumed += rep.Resumed
	}
	if len(b.queried) != page+behind {
		t.Errorf("2 sweeps queried %d stuck payments, want all %d", len(b.queried), page+behind)
	}
	if resumed != behind {
		t.Errorf("2 sweeps settled %d payments, want the %d behind the %d the order service cannot answer for",
			resumed, behind, page)
	}
}
