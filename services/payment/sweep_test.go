package payment_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/payment"
)

// sweepBook is a ledger of PAYING payments (stuck) and SUCCEEDED ones
// waiting for their order's answer (unsettled), with a channel that
// reports every trade unpaid but those in paid, fails to answer for those
// in down, and an order service that fails to answer for the payments in
// broken. It holds only what Sweep reads and writes; any other ledger
// call panics on the nil embedded interface.
type sweepBook struct {
	payment.Ledger
	mu        sync.Mutex
	stuck     []payment.Payment // by id
	unsettled []payment.Payment // by id
	broken    map[int64]bool
	paid      map[int64]bool
	down      map[int64]bool
	queried   map[int64][]time.Time // when each stuck payment was asked about
	outcome   map[int64]payment.Outcome
	now       func() time.Time
}

func newSweepBook(now func() time.Time) *sweepBook {
	return &sweepBook{broken: map[int64]bool{}, paid: map[int64]bool{}, down: map[int64]bool{},
		queried: map[int64][]time.Time{}, outcome: map[int64]payment.Outcome{}, now: now}
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

// Due claims as the ledger does: the due payments still PAYING, by their
// query time and then id, each one's next query set as it is read.
func (b *sweepBook) Due(_ context.Context, now time.Time, limit int, next func(payment.Payment) time.Time) ([]payment.Payment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var due []*payment.Payment
	for i := range b.stuck {
		p := &b.stuck[i]
		if p.Status == payment.StatusPaying && !p.QueryAt.IsZero() && !p.QueryAt.After(now) {
			due = append(due, p)
		}
	}
	slices.SortFunc(due, func(a, b *payment.Payment) int {
		return cmp.Or(a.QueryAt.Compare(b.QueryAt), cmp.Compare(a.ID, b.ID))
	})
	out := make([]payment.Payment, 0, min(limit, len(due)))
	for _, p := range due[:min(limit, len(due))] {
		out = append(out, *p)
		p.QueryAt, p.AskedAt = next(*p), now
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

// bookChannel is the channel of the book's payments: it has every trade
// waiting for its buyer but the paid ones, and cannot answer for the
// down ones.
type bookChannel struct{ *sweepBook }

func (b bookChannel) Query(_ context.Context, id int64) (payment.Trade, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queried[id] = append(b.queried[id], b.now())
	switch {
	case b.down[id]:
		return payment.Trade{}, errors.New("channel: timeout")
	case b.paid[id]:
		return payment.Trade{PaymentID: id, TradeNo: fmt.Sprint("T", id), Amount: 100, Status: payment.TradePaid, PaidAt: b.now()}, nil
	}
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

func (bookChannel) Create(context.Context, payment.Payment) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

func (bookChannel) Refund(context.Context, string, int64, int64) (string, error) {
	return "", errors.New("not used")
}

func (bookChannel) Statement(context.Context, time.Time, func([]payment.Trade) error) error {
	return nil
}

func (bookChannel) Notification([]byte, string) (payment.Trade, error) {
	return payment.Trade{}, errors.New("not used")
}

// Succeed moves a stuck payment to SUCCEEDED.
func (b *sweepBook) Succeed(_ context.Context, id int64, tradeNo string, paidAt time.Time) (payment.Payment, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.stuck {
		if p := &b.stuck[i]; p.ID == id && p.Status == payment.StatusPaying {
			p.Status, p.TradeNo, p.PaidAt = payment.StatusSucceeded, tradeNo, paidAt
			return *p, true, nil
		}
	}
	return payment.Payment{}, false, payment.ErrNotFound
}

// stuckPayment is a payment through alipay created at created, due for
// its first query QueryAfter (the default, 30 s) later.
func stuckPayment(id int64, created time.Time) payment.Payment {
	return payment.Payment{ID: id, OrderID: id, Channel: "alipay", Amount: 100, Status: payment.StatusPaying,
		CreatedAt: created, QueryAt: created.Add(30 * time.Second)}
}

func sweepService(b *sweepBook, clk clock.Clock) *payment.Service {
	return payment.NewService(payment.Config{Ledger: b, Orders: b, Channels: map[string]payment.Channel{"alipay": bookChannel{b}},
		Clock: clk, NextID: func() int64 { return 1 }})
}

// TestSweepReachesPaymentsBehindOnesThatStay: in a flash sale most
// opened payments are never paid and stay PAYING for a day, a channel
// that is down answers no query, and an order the order service cannot
// answer for keeps its payment unsettled. None of them may hide the
// payments behind them: every due payment is asked about within a pass,
// and every payment that can be settled is. (Reading the oldest 500 each
// round, as the sweep once did, queried the first 500 unpaid payments
// forever and never settled the 100 behind the broken; a payment whose
// query failed and kept its query time would do the same.)
func TestSweepReachesPaymentsBehindOnesThatStay(t *testing.T) {
	const page, behind = 500, 100
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	b := newSweepBook(func() time.Time { return now })
	for i := range int64(page + behind) {
		b.stuck = append(b.stuck, stuckPayment(1+i, now.Add(-time.Minute)))
		if i%2 == 0 {
			b.down[1+i] = true
		}
		id := 10_000 + i
		b.unsettled = append(b.unsettled, payment.Payment{ID: id, OrderID: id, Channel: "alipay", Amount: 100,
			Status: payment.StatusSucceeded, TradeNo: "T", PaidAt: now})
		if i < page {
			b.broken[id] = true
		}
	}
	svc := sweepService(b, clock.NewManual(now))
	var queried, failed, resumed int
	for range 2 { // a pass over 600 in pages of 500 takes 2 sweeps
		rep, err := svc.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		queried, failed, resumed = queried+rep.Queried, failed+rep.Failed, resumed+rep.Resumed
	}
	if len(b.queried) != page+behind || queried != page+behind {
		t.Errorf("2 sweeps asked %d times about %d stuck payments, want once about each of %d",
			queried, len(b.queried), page+behind)
	}
	if resumed != behind {
		t.Errorf("2 sweeps settled %d payments, want the %d behind the %d the order service cannot answer for",
			resumed, behind, page)
	}
	if want := (page+behind)/2 + page; failed != want {
		t.Errorf("2 sweeps failed %d steps, want %d (the queries of the channel that is down, the broken orders)", failed, want)
	}
}

// TestStuckPaymentIsAskedOftenYoungAndSeldomOld follows one payment its
// buyer opened and left, through a day and an hour of sweeps every 5 s:
// it is first asked about QueryAfter after its creation, then again after
// a quarter of its age but never sooner than QueryAfter or later than an
// hour, and never once QueryFor (a day) has passed. A sweep that asked
// every stuck payment each pass asked this one 17,280 times in the day
// when it was alone, and once a pass among 100,000.
func TestStuckPaymentIsAskedOftenYoungAndSeldomOld(t *testing.T) {
	const every, queryAfter, queryFor = 5 * time.Second, 30 * time.Second, 24 * time.Hour
	created := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(created)
	b := newSweepBook(clk.Now)
	b.stuck = []payment.Payment{stuckPayment(1, created)}
	svc := sweepService(b, clk)
	for clk.Now().Before(created.Add(queryFor + time.Hour)) {
		clk.Advance(every)
		if _, err := svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	asked := b.queried[1]
	if len(asked) == 0 || asked[0].Sub(created) != queryAfter {
		t.Fatalf("first asked at %v, want QueryAfter (%v) after the creation", asked, queryAfter)
	}
	for i := 1; i < len(asked); i++ {
		age, wait := asked[i-1].Sub(created), asked[i].Sub(asked[i-1])
		if want := max(queryAfter, min(age/4, time.Hour)); wait < want || wait >= want+every {
			t.Errorf("asked at %v of its age and then %v later, want %v later (to the next sweep)", age, wait, want)
		}
	}
	if last := asked[len(asked)-1].Sub(created); last > queryFor {
		t.Errorf("last asked %v after its creation, want within QueryFor (%v)", last, queryFor)
	}
	young := 0
	for _, at := range asked {
		if at.Sub(created) <= 15*time.Minute {
			young++
		}
	}
	if young < 12 || len(asked) > 50 {
		t.Errorf("asked %d times in its first 15 minutes and %d in all, want at least 12 and at most 50", young, len(asked))
	}
	t.Logf("asked %d times, %d of them in its first 15 minutes", len(asked), young)
}

// TestSweepAsksAboutAPaymentPaidAMinuteAgoFirst: on a sale's day the
// payments opened and never paid number in the thousands, and a callback
// lost for a payment paid a minute ago costs the most, as the order
// expires unpaid within minutes. 10,000 payments are opened over two
// hours and left while the sweep runs every 5 s; then one is opened and
// paid 40 s later, its callback lost. The sweep asks about it at its next
// query, a minute after its creation, and settles it in the first sweep
// after that, while the old payments' questions keep up with their own
// schedule. (Asking every stuck payment in turn, 500 a sweep, the paid
// one waited for a pass over the 10,000: 20 sweeps.)
func TestSweepAsksAboutAPaymentPaidAMinuteAgoFirst(t *testing.T) {
	const every, left = 5 * time.Second, 10_000
	start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	b := newSweepBook(clk.Now)
	svc := sweepService(b, clk)
	opened, asked := 0, 0
	sweep := func() payment.SweepReport {
		t.Helper()
		clk.Advance(every)
		for ; opened < left && !start.Add(time.Duration(opened)*2*time.Hour/left).After(clk.Now()); opened++ {
			b.mu.Lock()
			b.stuck = append(b.stuck, stuckPayment(int64(1+opened), clk.Now()))
			b.mu.Unlock()
		}
		rep, err := svc.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		asked += rep.Queried
		return rep
	}
	for clk.Now().Before(start.Add(2 * time.Hour)) {
		sweep()
	}
	const paid = left + 1
	created := clk.Now()
	b.mu.Lock()
	b.stuck = append(b.stuck, stuckPayment(paid, created))
	b.mu.Unlock()
	var behind time.Duration
	for clk.Now().Before(created.Add(40 * time.Second)) {
		behind = max(behind, sweep().Behind)
	}
	b.mu.Lock()
	b.paid[paid] = true
	b.mu.Unlock()
	for b.outcome[paid] == payment.OutcomeNone && clk.Now().Before(created.Add(10*time.Minute)) {
		behind = max(behind, sweep().Behind)
	}
	settled := clk.Now().Sub(created)
	if b.outcome[paid] != payment.OutcomeAccepted || settled >= time.Minute+every {
		t.Errorf("the payment paid 40 s after its creation was settled %v after it (outcome %q), want by the first sweep a minute after",
			settled, b.outcome[paid])
	}
	if behind >= every {
		t.Errorf("a sweep's questions were up to %v late, want within a sweep (%v)", behind, every)
	}
	elapsed := clk.Now().Sub(start)
	t.Logf("%d payments left: %d questions in %v (%.1f a sweep); the paid one settled %v after its creation",
		left, asked, elapsed, float64(asked)/float64(elapsed/every), settled)
}

// Payment returns a stuck payment.
func (b *sweepBook) Payment(_ context.Context, id int64) (payment.Payment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.stuck {
		if p.ID == id {
			return p, nil
		}
	}
	return payment.Payment{}, payment.ErrNotFound
}

// AskSoon moves a PAYING payment's next query up, as the ledger does.
func (b *sweepBook) AskSoon(_ context.Context, id int64, at time.Time, gap time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.stuck {
		p := &b.stuck[i]
		if p.ID != id {
			continue
		}
		if !p.AskedAt.IsZero() && p.AskedAt.Add(gap).After(at) {
			at = p.AskedAt.Add(gap)
		}
		if p.Status == payment.StatusPaying && p.QueryAt.After(at) {
			p.QueryAt = at
		}
	}
	return nil
}

// TestBuyerLookingHasThePaymentAskedAtTheNextSweep: a buyer back from
// the channel's page looks at a payment still PAYING because its
// callback was lost. The next sweep asks the channel and settles it,
// instead of the payment's next question (30 s after its creation here,
// minutes when it is older). However often the buyer (or a cashier page)
// looks, the channel is asked at most once a QueryAfter; a stranger's
// look (refused) and an operator's read (no user) ask nothing.
func TestBuyerLookingHasThePaymentAskedAtTheNextSweep(t *testing.T) {
	const buyer, stranger = 7, 8
	ctx := context.Background()
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(now)
	b := newSweepBook(clk.Now)
	for id := range int64(3) {
		p := stuckPayment(1+id, now)
		p.UserID, p.TradeNo = buyer, fmt.Sprint("T", 1+id)
		b.stuck = append(b.stuck, p)
	}
	const paid, waiting, unseen = 1, 2, 3
	b.paid[paid] = true
	svc := sweepService(b, clk)
	sweep := func(every time.Duration) {
		t.Helper()
		clk.Advance(every)
		if _, err := svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	look := func(id int64) {
		t.Helper()
		for range 100 {
			if _, err := svc.Payment(ctx, id, buyer); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweep(5 * time.Second)
	look(paid)
	look(waiting)
	if _, err := svc.Payment(ctx, unseen, stranger); !errors.Is(err, payment.ErrForbidden) {
		t.Fatalf("a stranger's look: %v, want ErrForbidden", err)
	}
	if _, err := svc.Payment(ctx, unseen, 0); err != nil {
		t.Fatal(err)
	}
	sweep(5 * time.Second)
	if b.outcome[paid] != payment.OutcomeAccepted {
		t.Errorf("the paid payment the buyer looked at: outcome %q after the next sweep, want ACCEPTED", b.outcome[paid])
	}
	if got := len(b.queried[waiting]); got != 1 {
		t.Errorf("asked %d times about the payment the buyer looked at before the sweep, want once", got)
	}
	look(waiting)
	sweep(5 * time.Second)
	look(waiting)
	sweep(5 * time.Second)
	if got := len(b.queried[waiting]); got != 1 {
		t.Errorf("asked %d times about the payment looked at 200 times in the 10 s after its question, want no more (QueryAfter, 30 s)", got)
	}
	look(waiting)
	sweep(20 * time.Second)
	if got := len(b.queried[waiting]); got != 2 {
		t.Errorf("asked %d times about the payment looked at 30 s after its question, want again", got)
	}
	if got := b.queried[unseen]; len(got) != 1 || got[0].Before(now.Add(30*time.Second)) {
		t.Errorf("asked about the payment only a stranger and an operator looked at %v, want once, at its own time (30 s)", got)
	}
}

// dueBook is a book of n payments through alipay created an hour before
// now, each due for a question at now.
func dueBook(now time.Time, n int64) *sweepBook {
	b := newSweepBook(func() time.Time { return now })
	for i := range n {
		p := stuckPayment(1+i, now.Add(-time.Hour))
		p.QueryAt = now
		b.stuck = append(b.stuck, p)
	}
	return b
}

// TestStoppedSweepHandsItsClaimsBack: a sweep whose process stops after
// it claimed its page (the claim set each payment's next question, up to
// an hour away) asks nothing more and makes the payments it did not ask
// about due at once, for the sweeper that takes over.
func TestStoppedSweepHandsItsClaimsBack(t *testing.T) {
	now := time.Date(2026, 11, 11, 1, 0, 0, 0, time.UTC)
	b := dueBook(now, 10)
	svc := sweepService(b, clock.NewManual(now))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Queried != 0 || len(b.queried) != 0 {
		t.Errorf("a stopped sweep asked %d questions, want none", rep.Queried)
	}
	for _, p := range b.stuck {
		if !p.QueryAt.Equal(now) {
			t.Errorf("payment %d claimed by the stopped sweep is next asked at %v, want at once (%v)", p.ID, p.QueryAt, now)
		}
	}
}

// TestSweepAsksNothingOfAChannelCutOff: a channel whose breaker is open
// (its payments fail: it is down) is asked nothing, so its stuck
// payments take no slot of a round from the other channels' questions;
// they wait for the next question their claim set.
func TestSweepAsksNothingOfAChannelCutOff(t *testing.T) {
	now := time.Date(2026, 11, 11, 1, 0, 0, 0, time.UTC)
	b := dueBook(now, 20)
	for i := range b.stuck {
		if i%2 == 0 {
			b.stuck[i].Channel = "wechat"
		}
	}
	router := MustRouter(t)
	for range 5 {
		_, _ = router.Call("alipay", func() (payment.Trade, error) { return payment.Trade{}, errors.New("down") })
	}
	svc := payment.NewService(payment.Config{Ledger: b, Orders: b, Router: router, Clock: clock.NewManual(now),
		Channels: map[string]payment.Channel{"alipay": bookChannel{b}, "wechat": bookChannel{b}}, NextID: func() int64 { return 1 }})
	rep, err := svc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Queried != 10 || rep.Skipped != 10 {
		t.Errorf("asked %d and skipped %d, want the 10 through wechat asked and the 10 through alipay (cut off) skipped",
			rep.Queried, rep.Skipped)
	}
	for _, p := range b.stuck {
		if asked := len(b.queried[p.ID]) > 0; asked != (p.Channel == "wechat") || !p.QueryAt.After(now) {
			t.Errorf("payment %d through %s: asked %v, next question at %v; want asked only through wechat, and each at a later time",
				p.ID, p.Channel, asked, p.QueryAt)
		}
	}
}

// TestSweepOfAChannelTakenOutOfTheConfiguration: a payment stuck on a
// channel no longer configured (taken out while it was PAYING) is a
// failed question each round, not a call on a nil channel that killed the
// process at every sweep; the other payments are asked as ever.
func TestSweepOfAChannelTakenOutOfTheConfiguration(t *testing.T) {
	now := time.Date(2026, 11, 11, 1, 0, 0, 0, time.UTC)
	b := dueBook(now, 4)
	b.stuck[1].Channel = "unionpay"
	svc := sweepService(b, clock.NewManual(now))
	rep, err := svc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Queried != 4 || rep.Failed != 1 {
		t.Errorf("queried %d, failed %d; want 4 asked, the one through unionpay failed", rep.Queried, rep.Failed)
	}
	for _, p := range b.stuck {
		if asked := len(b.queried[p.ID]) > 0; asked == (p.Channel == "unionpay") {
			t.Errorf("payment %d through %s: asked the channel %v", p.ID, p.Channel, asked)
		}
	}
}
