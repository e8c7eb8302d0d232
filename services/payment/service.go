package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/budget"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/sweep"
	"golang.org/x/sync/errgroup"
)

// Config holds the Service's dependencies and settings.
type Config struct {
	Ledger   Ledger
	Orders   Orders
	Channels map[string]Channel
	Router   *Router
	// Stub, when set, takes pressure tests' payments in place of Channels
	// and Router (the 挡板 of docs/pressure-test.md): a stub of the
	// channels beside live ones. Its router is its own, so its failures
	// never open a live channel's breaker, and so are its notification
	// secrets, so it can settle only pressure-test payments.
	Stub *Stub
	// Live says Channels move real money: without a Stub, a pressure
	// test's call to a channel (a query, a refund, a statement) is then
	// refused ErrUnavailable before it leaves, as its pay is.
	Live  bool
	Clock clock.Clock
	// NextID hands out payment and refund ids (a snowflake generator's
	// Next).
	NextID func() int64
	// QueryAfter is how long a payment stays PAYING before the sweep asks
	// its channel (default 30s), and the shortest wait between two
	// questions (nextQuery); QueryFor is how long after its creation the
	// sweep keeps asking (default 24h).
	QueryAfter, QueryFor time.Duration
	// PayBudget bounds what one Pay may take, all channels tried
	// included (default DefaultPayBudget; a caller's earlier deadline
	// wins). Each channel gets an equal share of what is left, so a
	// channel that does not answer within its share is abandoned while
	// there is time for the next.
	PayBudget time.Duration
	// ReconcileWindow is how far back reconciliation holds the ledger's
	// paid payments against the statement (default 24h, a channel's
	// statement day).
	ReconcileWindow time.Duration
	Logger          *slog.Logger
	// Observer hears of settled payments, refunds and callbacks (nil:
	// nobody listens).
	Observer Observer
}

// Stub is where pressure tests pay when the channels are live: the same
// channel names, served by a stub that moves no money.
type Stub struct {
	Channels map[string]Channel
	Router   *Router
}

// DefaultPayBudget is the default of Config.PayBudget: within the
// gateway's 2 s per call, with room for the order lookup and the ledger.
const DefaultPayBudget = 1500 * time.Millisecond

// sweepBatch bounds the payments one sweep step handles, and
// sweepQueries the channel queries a sweep has in flight at once: a
// channel answering in 100 ms gets through a page in a few seconds, not
// 50.
const (
	sweepBatch   = 500
	sweepQueries = 16
)

// maxQueryWait is the longest wait between two questions about one
// payment (nextQuery). A sweep more than sweepsBehind rounds late on its
// queries is logged.
const (
	maxQueryWait = time.Hour
	sweepsBehind = 3
)

// Service takes payments and settles them.
type Service struct {
	cfg Config
	log *slog.Logger
	// unsettled is where the sweep's pass over settlements left midway
	// stands: payments that keep failing to settle must not hide the
	// ones behind them. (Stuck payments need no cursor: each carries the
	// time of its next query, which a sweep moves on as it claims it.)
	unsettled sweep.Cursor[int64]
	// claimed is when each traffic class's sweep last read its page of
	// due payments (real, marked).
	claimed [2]claimTime
	// refused stands for every channel to a pressure test when the
	// channels are live and there is no stub (channels).
	refused map[string]Channel
}

// NewService returns a Service over cfg.
func NewService(cfg Config) *Service {
	if cfg.QueryAfter <= 0 {
		cfg.QueryAfter = 30 * time.Second
	}
	if cfg.QueryFor <= 0 {
		cfg.QueryFor = 24 * time.Hour
	}
	if cfg.ReconcileWindow <= 0 {
		cfg.ReconcileWindow = 24 * time.Hour
	}
	if cfg.PayBudget <= 0 {
		cfg.PayBudget = DefaultPayBudget
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	s := &Service{cfg: cfg, log: cfg.Logger, refused: make(map[string]Channel, len(cfg.Channels))}
	for name := range cfg.Channels {
		s.refused[name] = refusedChannel{name}
	}
	for i := range s.claimed {
		s.claimed[i].set(cfg.Clock.Now())
	}
	return s
}

// Router is the service's router, for the admin endpoints.
func (s *Service) Router() *Router { return s.cfg.Router }

// channels and router are ctx's traffic class's: the stub's for a
// pressure test when there is one; with live channels and no stub, none
// that a pressure test may call (refused).
func (s *Service) channels(ctx context.Context) map[string]Channel {
	switch {
	case !shadow.Is(ctx):
		return s.cfg.Channels
	case s.cfg.Stub != nil:
		return s.cfg.Stub.Channels
	case s.cfg.Live:
		return s.refused
	}
	return s.cfg.Channels
}

// channel returns the channel name of ctx's traffic class (channels). A
// payment in the ledger may name a channel taken out of the configuration
// since: asking it is an error (UNAVAILABLE: configure it again to settle
// what it still holds), not a call on a nil channel.
func (s *Service) channel(ctx context.Context, name string) (Channel, error) {
	c, ok := s.channels(ctx)[name]
	if !ok {
		return nil, fmt.Errorf("channel %s is not configured: %w", name, ErrUnavailable)
	}
	return c, nil
}

// PressureTestsPay says a pressure test's payments go somewhere that
// keeps them apart: a stub, or channels that are not live (the
// simulator's shadow twins).
func (s *Service) PressureTestsPay() bool { return s.cfg.Stub != nil || !s.cfg.Live }

// refusedChannel is every channel to a pressure test when the channels
// are live and no stub stands beside them: nothing there keeps its
// trades apart.
type refusedChannel struct{ name string }

var errLiveChannel = fmt.Errorf("a pressure test cannot reach the live channels without a stub: %w", ErrUnavailable)

func (refusedChannel) Create(context.Context, Payment) (Trade, error) { return Trade{}, errLiveChannel }
func (refusedChannel) Query(context.Context, int64) (Trade, error)    { return Trade{}, errLiveChannel }
func (refusedChannel) Refund(context.Context, string, int64, int64) (string, error) {
	return "", errLiveChannel
}
func (refusedChannel) Statement(context.Context, time.Time, func([]Trade) error) error {
	return errLiveChannel
}
func (c refusedChannel) Notification([]byte, string) (Trade, error) {
	return Trade{}, fmt.Errorf("%s notification: %w", c.name, ErrUnauthenticated)
}

func (s *Service) router(ctx context.Context) *Router {
	if s.cfg.Stub != nil && shadow.Is(ctx) {
		return s.cfg.Stub.Router
	}
	return s.cfg.Router
}

// Pay starts paying the user's order through the preferred channel while
// it is healthy, else through the channel the router picks; a channel that
// fails to open the trade, or does not answer within its share of the
// PayBudget, hands over to the next candidate. A retry through
// the same channel answers the open payment again; paying an order that
// this user's payment already paid answers that payment. It fails with
// ErrConflict when the order is not payable and ErrUnavailable when no
// channel took the payment.
func (s *Service) Pay(ctx context.Context, orderID, userID int64, preferred string) (Payment, error) {
	const op = "pay"
	if orderID <= 0 || userID <= 0 {
		return Payment{}, fmt.Errorf("%s: %w: order and user ids must be positive", op, ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PayBudget)
	defer cancel()
	o, err := s.cfg.Orders.Order(ctx, orderID, userID)
	if err != nil {
		return Payment{}, fmt.Errorf("%s: order %d: %w", op, orderID, err)
	}
	if o.UserID != userID {
		return Payment{}, fmt.Errorf("%s: order %d: %w", op, orderID, ErrForbidden)
	}
	if o.Status == OrderPaid && o.PaymentID != 0 {
		if p, err := s.cfg.Ledger.Payment(ctx, o.PaymentID); err == nil {
			return p, nil
		}
	}
	if o.Status != OrderPendingPayment {
		return Payment{}, fmt.Errorf("%s: order %d is %s: %w", op, orderID, o.Status, ErrConflict)
	}
	candidates, err := s.router(ctx).Candidates(preferred)
	if err != nil {
		return Payment{}, fmt.Errorf("%s: %w", op, err)
	}
	var errs []error
	for i, ch := range candidates {
		p, err := s.payThrough(ctx, o, ch, len(candidates)-i)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return Payment{}, fmt.Errorf("%s: order %d: %w: %w", op, orderID, errors.Join(errs...), ErrUnavailable)
}

// payThrough pays o through channel ch, which gets 1/left of the time
// left to ctx's deadline (Pay's budget) to open the trade (left counts ch
// and the candidates after it).
func (s *Service) payThrough(ctx context.Context, o Order, ch string, left int) (Payment, error) {
	if p, err := s.cfg.Ledger.Open(ctx, o.ID, ch); err == nil {
		return p, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Payment{}, err
	}
	p := Payment{
		ID: s.cfg.NextID(), OrderID: o.ID, UserID: o.UserID, Channel: ch, Amount: o.Payable,
		Status: StatusPaying, CreatedAt: s.cfg.Clock.Now(),
	}
	p.QueryAt = s.nextQuery(p.CreatedAt, p.CreatedAt)
	if err := s.cfg.Ledger.Create(ctx, p); err != nil {
		return Payment{}, err
	}
	callCtx, cancel := budget.Share(ctx, 1, int64(left))
	asked := false
	t, err := s.router(ctx).Call(ch, func() (Trade, error) {
		c, err := s.channel(ctx, ch)
		if err != nil {
			return Trade{}, err
		}
		asked = true
		return c.Create(callCtx, p)
	})
	abandoned := err != nil && callCtx.Err() != nil && ctx.Err() == nil
	cancel()
	if err != nil {
		// Unless the channel answered no (a 4xx) or was never asked (its
		// breaker), the trade may exist at the channel all the same (an
		// answer lost on the way, or one the channel was still working
		// on when its share ran out and the payment moved on). The buyer
		// never saw its pay URL; should money arrive anyway, the sweep's
		// questions (which a FAILED payment of unknown outcome keeps),
		// its callback or reconciliation settle the payment, and the
		// order, paid by then or not payable, refuses it: the money goes
		// back.
		unknown := asked && errors.Is(err, ErrUnavailable)
		if abandoned {
			s.log.WarnContext(ctx, "channel abandoned: no answer within its share of the pay budget",
				"payment_id", p.ID, "order_id", o.ID, "channel", ch)
		}
		if ferr := s.cfg.Ledger.Fail(context.WithoutCancel(ctx), p.ID, unknown); ferr != nil {
			s.log.WarnContext(ctx, "failed payment left PAYING", "payment_id", p.ID, "err", ferr)
		} else {
			s.cfg.Observer.Settled(ctx, ch, StatusFailed)
		}
		return Payment{}, fmt.Errorf("%s: %w", ch, err)
	}
	if err := s.cfg.Ledger.Started(ctx, p.ID, t.TradeNo, t.PayURL); err != nil {
		return Payment{}, err
	}
	p.TradeNo, p.PayURL = t.TradeNo, t.PayURL
	return p, nil
}

// Payment returns a payment; userID, when not zero, must own it, and
// its look at a payment still PAYING has the next sweep ask its channel.
func (s *Service) Payment(ctx context.Context, id, userID int64) (Payment, error) {
	if id <= 0 || userID < 0 {
		return Payment{}, fmt.Errorf("get payment: %w: ids must be positive", ErrInvalid)
	}
	p, err := s.cfg.Ledger.Payment(ctx, id)
	if err != nil {
		return Payment{}, fmt.Errorf("get payment %d: %w", id, err)
	}
	if userID != 0 && p.UserID != userID {
		return Payment{}, fmt.Errorf("get payment %d: %w", id, ErrForbidden)
	}
	// Where a look puts the question: now, but no sooner than QueryAfter
	// after the last claim. A question already there needs no write, so a
	// client polling a young payment costs a read a poll, not a write too.
	soon := s.cfg.Clock.Now()
	if gap := p.AskedAt.Add(s.cfg.QueryAfter); gap.After(soon) {
		soon = gap
	}
	if userID != 0 && p.Status == StatusPaying && p.QueryAt.After(soon) {
		// The buyer looks at a payment still PAYING, most likely back
		// from the channel's page having paid (the seeds' "active
		// query"): the next sweep asks the channel, so a lost callback
		// costs the buyer a sweep, not the payment's next question, which
		// may come after the order expired. However often the buyer (or a
		// cashier page) looks, the channel is asked at most once a
		// QueryAfter: the look moves the question no sooner than that
		// after the last one.
		if err := s.cfg.Ledger.AskSoon(ctx, p.ID, soon, s.cfg.QueryAfter); err != nil {
			s.log.WarnContext(ctx, "looked-at payment not moved up", "payment_id", p.ID, "err", err)
		}
	}
	return p, nil
}

// HandleCallback settles a channel's signed notification. A repeat (or a
// replay of a captured one) finds the payment settled and changes nothing.
// It fails with ErrUnauthenticated when the signature does not verify.
func (s *Service) HandleCallback(ctx context.Context, channel string, body []byte, signature string) error {
	result, err := s.handleCallback(ctx, channel, body, signature)
	if result == CallbackUnknownChannel {
		channel = ""
	}
	s.cfg.Observer.Callback(ctx, channel, result)
	return err
}

// notification verifies a callback with channel's live secret and,
// failing that, with its stub's: what the stub signed must be a pressure
// test's trade, so a stub, which holds no live secret, never settles a
// real payment.
func (s *Service) notification(channel string, live Channel, body []byte, signature string) (Trade, error) {
	t, err := live.Notification(body, signature)
	if s.cfg.Stub == nil || !errors.Is(err, ErrUnauthenticated) {
		return t, err
	}
	stub, ok := s.cfg.Stub.Channels[channel]
	if !ok {
		return Trade{}, err
	}
	t, serr := stub.Notification(body, signature)
	switch {
	case serr != nil:
		return Trade{}, err
	case !t.PressureTest:
		return Trade{}, fmt.Errorf("the stub of %s signed a real trade's notification: %w", channel, ErrUnauthenticated)
	}
	return t, nil
}

func (s *Service) handleCallback(ctx context.Context, channel string, body []byte, signature string) (CallbackResult, error) {
	const op = "callback"
	ch, ok := s.cfg.Channels[channel]
	if !ok {
		return CallbackUnknownChannel, fmt.Errorf("%s: %w: unknown channel %q", op, ErrNotFound, channel)
	}
	t, err := s.notification(channel, ch, body, signature)
	if errors.Is(err, ErrUnauthenticated) {
		return CallbackBadSignature, fmt.Errorf("%s %s: %w", op, channel, err)
	}
	if err != nil {
		return CallbackMalformed, fmt.Errorf("%s %s: %w", op, channel, err)
	}
	if t.PressureTest {
		// The channel signed that the trade is pressure-test traffic's:
		// it settles in the shadow ledger (docs/pressure-test.md).
		ctx = shadow.With(ctx)
	}
	p, err := s.cfg.Ledger.Payment(ctx, t.PaymentID)
	if errors.Is(err, ErrNotFound) {
		// Signed by the channel, yet not ours: answering an error would
		// only make the channel retry. Reconciliation reports it.
		s.log.WarnContext(ctx, "callback for an unknown payment", "channel", channel, "payment_id", t.PaymentID, "trade_no", t.TradeNo)
		return CallbackUnknownPayment, nil
	}
	if err != nil {
		return CallbackFailed, fmt.Errorf("%s %s: %w", op, channel, err)
	}
	if err := ownTrade(p, channel, t); err != nil {
		return CallbackMismatch, fmt.Errorf("%s %s: %w", op, channel, err)
	}
	switch t.Status {
	case TradePaid:
	case TradeWaitPay:
		return CallbackWaiting, nil
	default:
		// A closed or refunded trade, or a status this code does not
		// know, pays nothing: only an explicit PAID settles.
		s.log.WarnContext(ctx, "callback with a trade that is not paid", "channel", channel, "payment_id", p.ID, "status", t.Status)
		return CallbackNotPaid, nil
	}
	succeeded, err := s.settle(ctx, p, t)
	switch {
	case err != nil:
		return CallbackFailed, err
	case succeeded:
		return CallbackAccepted, nil
	default:
		return CallbackDuplicate, nil
	}
}

// ownTrade checks that trade t, reported by channel, is p's own: the
// payment's channel and amount, and the trade number the channel gave
// when it opened the trade (once the ledger holds it; the answer to the
// opening call may have been lost). A signed notification or statement
// line that fails it names another trade and settles nothing.
func ownTrade(p Payment, channel string, t Trade) error {
	switch {
	case p.Channel != channel || p.Amount != t.Amount:
		return fmt.Errorf("%w: payment %d is %d cents through %s, the channel says %d through %s",
			ErrInvalid, p.ID, p.Amount, p.Channel, t.Amount, channel)
	case p.TradeNo != "" && t.TradeNo != p.TradeNo:
		return fmt.Errorf("%w: payment %d is trade %q at %s, the channel says trade %q",
			ErrInvalid, p.ID, p.TradeNo, channel, t.TradeNo)
	}
	return nil
}

// settle acts on the channel's word that p's money arrived (trade t, p's
// own trade with status PAID; anything else is refused with ErrInvalid):
// the ledger moves to SUCCEEDED, the order service is told, and when it
// refuses the order the money is refunded. Every step is conditional or
// idempotent, so callbacks, the sweep and reconciliation may settle one
// payment concurrently and any number of times; a failed step is taken up
// again by the next callback or sweep. It reports whether this call moved
// the payment to SUCCEEDED (of concurrent settlers, exactly one does).
func (s *Service) settle(ctx context.Context, p Payment, t Trade) (succeeded bool, err error) {
	const op = "settle"
	if err := ownTrade(p, p.Channel, t); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if t.Status != TradePaid {
		return false, fmt.Errorf("%s %d: %w: trade %q is %s, not PAID", op, p.ID, ErrInvalid, t.TradeNo, t.Status)
	}
	if t.PaidAt.IsZero() {
		// The channel's word that the money arrived, without its time:
		// the payment settles at ours (the order refuses a payment with
		// no time, and the money would stay unsettled), and
		// reconciliation reports the two times' disagreement.
		s.log.WarnContext(ctx, "paid trade without a payment time: settled at ours", "payment_id", p.ID, "trade_no", t.TradeNo)
		t.PaidAt = s.cfg.Clock.Now()
	}
	if p.Status == StatusPaying || p.Status == StatusFailed {
		id := p.ID
		if p, succeeded, err = s.cfg.Ledger.Succeed(ctx, id, t.TradeNo, t.PaidAt); err != nil {
			return false, fmt.Errorf("%s %d: %w", op, id, err)
		}
		if succeeded {
			s.cfg.Observer.Settled(ctx, p.Channel, StatusSucceeded)
		}
	}
	if p.Status != StatusSucceeded {
		return succeeded, nil
	}
	if p.Outcome == OutcomeNone {
		accepted, orderStatus, err := s.cfg.Orders.MarkPaid(ctx, p)
		if err != nil {
			return succeeded, fmt.Errorf("%s %d: mark order %d paid: %w", op, p.ID, p.OrderID, err)
		}
		outcome, reason := OutcomeAccepted, ""
		if !accepted {
			outcome, reason = OutcomeRefused, reasonOrderState+orderStatus
		}
		// A settler that read the payment before a concurrent one
		// recorded the order's answer asks the order again, possibly
		// after the buyer had the order refunded, and hears a refusal.
		// The answer on record is the one that stands: acting on a late
		// refusal would refund money the order kept. The reason is
		// recorded with it, so whoever makes the refund (this settler, a
		// concurrent one, the sweep after a crash) gives the same reason.
		if p.Outcome, p.RefusalReason, err = s.cfg.Ledger.SetOutcome(ctx, p.ID, outcome, reason); err != nil {
			return succeeded, fmt.Errorf("%s %d: %w", op, p.ID, err)
		}
	}
	if p.Outcome != OutcomeRefused {
		return succeeded, nil
	}
	reason := p.RefusalReason
	if reason == "" {
		// Refused before migration 003 kept the reason.
		reason = reasonNotPayable
	}
	return succeeded, s.refund(ctx, p, reason)
}

// refund gives p's money back through its channel and records it. The
// refund row is made once per payment and its id is the channel's refund
// reference, so a refund retried after any failure is made once.
func (s *Service) refund(ctx context.Context, p Payment, reason string) error {
	r, err := s.cfg.Ledger.AddRefund(ctx, Refund{
		ID: s.cfg.NextID(), PaymentID: p.ID, Amount: p.Amount, Reason: reason, CreatedAt: s.cfg.Clock.Now(),
	})
	if err != nil {
		return fmt.Errorf("refund %d: %w", p.ID, err)
	}
	_, err = s.returnMoney(ctx, p, r)
	return err
}

// RefundPayment returns amount of a paid payment through the channel that
// took it, as refund refundID of the order service. The refund is
// recorded before the channel is asked and its id is the channel's refund
// reference, so a call repeated after any failure refunds once; a refund
// done already is answered as it is. It fails with ErrConflict when the
// payment did not pay its order or has less than amount left to refund,
// and with ErrUnavailable when the channel did not answer: the caller
// repeats the call later.
func (s *Service) RefundPayment(ctx context.Context, paymentID, refundID, amount int64) (Refund, error) {
	const op = "refund payment"
	if paymentID <= 0 || refundID <= 0 || amount <= 0 {
		return Refund{}, fmt.Errorf("%s: %w: payment and refund ids and the amount must be positive", op, ErrInvalid)
	}
	p, err := s.cfg.Ledger.Payment(ctx, paymentID)
	if err != nil {
		return Refund{}, fmt.Errorf("%s %d: %w", op, paymentID, err)
	}
	r, err := s.cfg.Ledger.AddOrderRefund(ctx, Refund{
		ID: refundID, PaymentID: paymentID, Amount: amount, Reason: reasonOrderRefund, CreatedAt: s.cfg.Clock.Now(),
	})
	if err != nil {
		return Refund{}, fmt.Errorf("%s %d: %w", op, paymentID, err)
	}
	return s.returnMoney(ctx, p, r)
}

// returnMoney asks p's channel to pay refund r back, unless it is done,
// and records the channel's answer.
func (s *Service) returnMoney(ctx context.Context, p Payment, r Refund) (Refund, error) {
	if r.Done {
		return r, nil
	}
	c, err := s.channel(ctx, p.Channel)
	if err != nil {
		return Refund{}, fmt.Errorf("refund %d of payment %d: %w", r.ID, p.ID, err)
	}
	no, err := c.Refund(ctx, p.TradeNo, r.ID, r.Amount)
	if err != nil {
		return Refund{}, fmt.Errorf("refund %d of payment %d through %s: %w", r.ID, p.ID, p.Channel, err)
	}
	done, err := s.cfg.Ledger.RefundDone(ctx, r, no)
	if err != nil {
		return Refund{}, fmt.Errorf("refund %d of payment %d: %w", r.ID, p.ID, err)
	}
	if done {
		s.cfg.Observer.Refunded(ctx, p.Channel, refundKind(r.Reason))
	}
	s.log.InfoContext(ctx, "payment refunded", "payment_id", p.ID, "order_id", p.OrderID, "channel", p.Channel,
		"refund_id", r.ID, "amount", r.Amount, "reason", r.Reason)
	r.RefundNo, r.Done = no, true
	return r, nil
}

// SweepReport counts what a sweep did.
type SweepReport struct {
	// Queried payments were PAYING and due for a question to their
	// channel (nextQuery); Settled of them had been paid at the channel
	// (their callback is late or lost).
	Queried, Settled int
	// Resumed payments had succeeded without their order's answer or
	// their refund (a crash or failure midway) and were settled again.
	Resumed int
	// Failed steps: a question that failed waits for the payment's next
	// one, a settlement for the next sweep.
	Failed int
	// Skipped payments were due, but their channel's breaker was open:
	// they wait for their next question without one now.
	Skipped int
	// Behind is how long past its time the most overdue question of the
	// sweep was, or, when the sweep could not read its page, how long no
	// page was read: more than a few sweeps' worth means the questions do
	// not keep up with the payments that wait for them.
	Behind time.Duration
}

// Sweep asks the channels about payments stuck in PAYING whose next query
// is due, settling those that were paid, and finishes settlements left
// midway. A stuck payment is asked often while its buyer may still be
// paying and seldom once it has been left for hours (nextQuery), so the
// thousands of payments a flash sale opens and nobody pays never delay
// the question about one paid a minute ago; the settlements are read a
// page at a time (platform/sweep), so those that keep failing never hide
// the ones behind them. A question that fails waits for the payment's
// next one, like an unpaid answer: asking again sooner would, in a
// channel's outage, fill every page with that channel's payments and
// leave the others' questions waiting; a buyer who paid meanwhile has
// the look (Payment) and reconciliation.
func (s *Service) Sweep(ctx context.Context) (rep SweepReport, err error) {
	now := s.cfg.Clock.Now()
	defer func() { s.cfg.Observer.Swept(ctx, rep) }()
	claimed := shadow.Pick(ctx, &s.claimed[0], &s.claimed[1])
	due, err := s.cfg.Ledger.Due(ctx, now, sweepBatch, func(p Payment) time.Time { return s.nextQuery(p.CreatedAt, now) })
	if err != nil {
		rep.Behind = claimed.since(now)
		return rep, fmt.Errorf("sweep: %w", err)
	}
	claimed.set(now)
	if len(due) > 0 {
		rep.Behind = now.Sub(due[0].QueryAt)
	}
	var (
		mu      sync.Mutex
		queries errgroup.Group
	)
	queries.SetLimit(sweepQueries)
	cutOff := s.cutOff(ctx)
	for _, p := range due {
		if cutOff[p.Channel] {
			rep.Skipped++
			continue
		}
		queries.Go(func() error {
			if ctx.Err() != nil {
				s.handBack(ctx, p, now)
				return nil
			}
			settled, err := s.queryStuck(ctx, p)
			if err != nil && ctx.Err() != nil {
				s.handBack(ctx, p, now) // cut short by the stop
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Queried++
			switch {
			case err != nil:
				rep.Failed++
			case settled:
				rep.Settled++
			}
			return nil
		})
	}
	_ = queries.Wait() // the queries report through rep
	unsettled, err := s.cfg.Ledger.Unsettled(ctx, s.unsettled.After(ctx), sweepBatch)
	if err != nil {
		return rep, fmt.Errorf("sweep: %w", err)
	}
	s.unsettled.Read(ctx, sweep.Keys(unsettled, func(p Payment) int64 { return p.ID }), sweepBatch)
	for _, p := range unsettled {
		if _, err := s.settle(ctx, p, Trade{TradeNo: p.TradeNo, PaymentID: p.ID, Amount: p.Amount, Status: TradePaid, PaidAt: p.PaidAt}); err != nil {
			rep.Failed++
			s.log.WarnContext(ctx, "resumed settlement failed", "payment_id", p.ID, "err", err)
			continue
		}
		rep.Resumed++
	}
	return rep, nil
}

// cutOff returns the channels whose breaker is open: the router sends
// them no payment, and the sweep asks them nothing, so a channel that is
// down takes no slot of a round from the others; its payments wait for
// the next question their claim set.
func (s *Service) cutOff(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	router := s.router(ctx)
	if router == nil {
		return out
	}
	for _, st := range router.States() {
		if st.Breaker == BreakerOpen {
			out[st.Name] = true
		}
	}
	return out
}

// handBackTimeout bounds handing a claimed payment back on the way out.
const handBackTimeout = 2 * time.Second

// handBack makes a payment this sweep claimed at now but did not ask
// about (the process is stopping) due again at once, for the next
// sweeper, instead of at the next question the claim set (up to an hour
// later).
func (s *Service) handBack(ctx context.Context, p Payment, now time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handBackTimeout)
	defer cancel()
	if err := s.cfg.Ledger.AskSoon(ctx, p.ID, now, 0); err != nil {
		s.log.WarnContext(ctx, "claimed payment not handed back; asked at its next question", "payment_id", p.ID, "err", err)
	}
}

// claimTime is when a traffic class's sweep last read its page of due
// payments.
type claimTime struct {
	mu sync.Mutex
	at time.Time
}

func (c *claimTime) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = at
}

func (c *claimTime) since(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Sub(c.at)
}

// queryStuck asks p's channel about its trade and settles it when it was
// paid, reporting whether it did. A trade the channel does not know or
// that waits for its buyer is no error: the next query is already set.
func (s *Service) queryStuck(ctx context.Context, p Payment) (bool, error) {
	c, err := s.channel(ctx, p.Channel)
	if err != nil {
		s.log.WarnContext(ctx, "query failed", "payment_id", p.ID, "channel", p.Channel, "err", err)
		return false, err
	}
	t, err := c.Query(ctx, p.ID)
	switch {
	case errors.Is(err, ErrNotFound), err == nil && t.Status != TradePaid:
		return false, nil
	case err != nil:
		s.log.WarnContext(ctx, "query failed", "payment_id", p.ID, "channel", p.Channel, "err", err)
		return false, err
	}
	if _, err := s.settle(ctx, p, t); err != nil {
		s.log.WarnContext(ctx, "settle after query failed", "payment_id", p.ID, "err", err)
		return false, err
	}
	return true, nil
}

// nextQuery is when the sweep asks again about a payment created at
// created that it asks about at now: after a quarter of the payment's
// age, but at least QueryAfter and at most maxQueryWait later. So a
// payment is asked every QueryAfter in its first minutes, while its buyer
// is most likely paying and a lost callback costs the most (the order
// expires), and about 45 times in a day in all, where a sweep that asked
// every stuck payment in turn asked each one every pass: a day of
// abandoned payments, 100,000 on a sale's day, made a pass of a quarter
// of an hour for every one of them. The zero time, once the next
// question would fall QueryFor after the creation: reconciliation
// against the statement is the net after that.
func (s *Service) nextQuery(created, now time.Time) time.Time {
	next := now.Add(max(s.cfg.QueryAfter, min(now.Sub(created)/4, maxQueryWait)))
	if next.After(created.Add(s.cfg.QueryFor)) {
		return time.Time{}
	}
	return next
}

// ReconcileReport is what reconciliation found on one channel's statement.
type ReconcileReport struct {
	Channel string
	// Checked is the number of trades on the statement.
	Checked int
	// Repaired payments were paid at the channel while the ledger still
	// had them PAYING or FAILED ("paid but not opened"): now settled.
	Repaired []int64
	// Unknown trades name no payment of the ledger.
	Unknown []int64
	// Mismatched payments disagree with the channel in amount or trade
	// number, the channel refunded what the ledger does not hold
	// refunded, or the channel refunded a trade the ledger never saw
	// paid; they need a human.
	Mismatched []int64
	// Unpaid payments are SUCCEEDED or REFUNDED in the ledger, yet the
	// statement does not show their trade paid: the ledger holds money
	// the channel never took ("opened but not paid"); they need a human.
	Unpaid []int64
	// Found counts the differences of each kind; each list above holds
	// the first maxListed of its kind.
	Found map[Difference]int
}

// maxListed bounds each list of a ReconcileReport, and maxLogged the ids
// of each kind the log line names: a channel whose statement disagrees
// with the ledger wholesale (another merchant's bill, a day the ledger
// lost) is one alert with its counts, not a report or a log line the size
// of the day.
const (
	maxListed = 1000
	maxLogged = 20
)

// note adds a difference of kind about payment id.
func (r *ReconcileReport) note(kind Difference, id int64) {
	if r.Found == nil {
		r.Found = make(map[Difference]int, len(Differences))
	}
	r.Found[kind]++
	list := r.list(kind)
	if len(*list) < maxListed {
		*list = append(*list, id)
	}
}

// list is kind's list.
func (r *ReconcileReport) list(kind Difference) *[]int64 {
	switch kind {
	case DiffRepaired:
		return &r.Repaired
	case DiffUnknown:
		return &r.Unknown
	case DiffMismatched:
		return &r.Mismatched
	default:
		return &r.Unpaid
	}
}

// Difference is a kind of disagreement between a channel's statement and
// the ledger; the Observer counts each one reconciliation finds.
type Difference string

// The differences, one per list of ReconcileReport.
const (
	DiffRepaired   Difference = "repaired"
	DiffUnknown    Difference = "unknown_trade"
	DiffMismatched Difference = "mismatched"
	DiffUnpaid     Difference = "unpaid_at_channel"
)

// Differences lists every Difference, for metrics that start at zero.
var Differences = []Difference{DiffRepaired, DiffUnknown, DiffMismatched, DiffUnpaid}

// Reconcile compares every channel's statement with the ledger both ways
// and settles what the channel took but the ledger missed: statement →
// ledger finds trades the ledger does not know, disagrees with or missed;
// ledger → statement finds payments the ledger holds paid that the
// channel never saw paid. One channel whose statement cannot be read (or
// one payment that cannot be settled) does not hold back the others: every
// channel is reconciled, and the errors come back together with the
// reports of the channels that were.
func (s *Service) Reconcile(ctx context.Context) ([]ReconcileReport, error) {
	var (
		out  []ReconcileReport
		errs []error
	)
	for _, st := range s.router(ctx).States() {
		rep, err := s.reconcile(ctx, st.Name)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if len(rep.Found) > 0 {
			attrs := []any{"channel", rep.Channel, "checked", rep.Checked}
			for _, kind := range Differences {
				if n := rep.Found[kind]; n > 0 {
					s.cfg.Observer.Reconciled(ctx, rep.Channel, kind, n)
					ids := *rep.list(kind)
					attrs = append(attrs, string(kind), n, string(kind)+"_ids", ids[:min(len(ids), maxLogged)])
				}
			}
			s.log.WarnContext(ctx, "reconciliation found differences", attrs...)
		}
		out = append(out, rep)
	}
	return out, errors.Join(errs...)
}

// reconcilePage is how many of the ledger's paid payments reconciliation
// reads at a time.
const reconcilePage = 1000

// paidAtSlack is how far the payment time the ledger recorded may stand
// from the channel's own: Postgres keeps microseconds, a channel may say
// nanoseconds.
const paidAtSlack = time.Millisecond

func (s *Service) reconcile(ctx context.Context, channel string) (ReconcileReport, error) {
	rep := ReconcileReport{Channel: channel}
	// The ledger's snapshot is taken before the statement is read: a
	// payment the ledger holds paid was paid at the channel before, so
	// a statement read after it shows the trade. The statement starts
	// statementSlack earlier than the ledger's window, so a channel clock
	// behind ours still lists every trade of a payment in the window.
	since := s.cfg.Clock.Now().Add(-s.cfg.ReconcileWindow)
	paid, err := s.cfg.Ledger.PaidSince(ctx, channel, since)
	if err != nil {
		return rep, fmt.Errorf("reconcile %s: %w", channel, err)
	}
	defer paid.Close(ctx)
	m := paidMatch{paid: paid, shown: map[int64]time.Time{}, unpaid: func(id int64) { rep.note(DiffUnpaid, id) }}
	var unsettled []error
	c, err := s.channel(ctx, channel)
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}
	err = c.Statement(ctx, since.Add(-statementSlack), func(trades []Trade) error {
		ids := make([]int64, len(trades))
		for i, t := range trades {
			ids[i] = t.PaymentID
		}
		held, err := s.cfg.Ledger.Payments(ctx, ids)
		if err != nil {
			return err
		}
		for _, t := range trades {
			rep.Checked++
			if t.Status == TradePaid || t.Status == TradeRefunded {
				m.shown[t.PaymentID] = t.PaidAt
			}
			p, ok := held[t.PaymentID]
			if !ok {
				rep.note(DiffUnknown, t.PaymentID)
				continue
			}
			if err := s.compare(ctx, &rep, p, channel, t); err != nil {
				// Settled by the next reconciliation (or the sweep); the
				// rest of the statement is read now.
				unsettled = append(unsettled, err)
			}
		}
		if len(trades) == 0 {
			return nil
		}
		return m.upTo(ctx, trades[len(trades)-1].PaidAt.Add(-paidAtSlack))
	})
	if err == nil {
		err = m.upTo(ctx, time.Time{})
	}
	if err = errors.Join(append([]error{err}, unsettled...)...); err != nil {
		return rep, fmt.Errorf("reconcile %s: %w", channel, err)
	}
	return rep, nil
}

// statementSlack is how much earlier than the ledger's window the
// channel's statement is read: more than any clock difference between us
// and a channel.
const statementSlack = time.Hour

// paidMatch holds the ledger's paid payments against the statement's
// paid trades as a merge of two lists in the same order, payment time:
// after each page of the statement, the ledger's payments paid before
// that page's last trade are read and each one whose trade the statement
// has not shown paid is unpaid. A trade shown paid is held only until
// the ledger's reading passes its time, so reconciliation holds a page of
// each side, not the day of either. A payment whose recorded time stands
// more than paidAtSlack from its trade's is unpaid too: the ledger
// records the channel's time, so the two disagree.
type paidMatch struct {
	paid   PaidReader
	shown  map[int64]time.Time // paid trades on the statement by payment, with their time
	unpaid func(id int64)
}

// upTo matches the ledger's payments paid before before, all of the rest
// when before is zero, and forgets the trades no later payment can match.
func (m *paidMatch) upTo(ctx context.Context, before time.Time) error {
	for {
		refs, err := m.paid.Next(ctx, before, reconcilePage)
		if err != nil {
			return err
		}
		for _, p := range refs {
			if _, ok := m.shown[p.ID]; !ok {
				m.unpaid(p.ID)
			}
			delete(m.shown, p.ID)
		}
		if len(refs) < reconcilePage {
			break
		}
	}
	if !before.IsZero() {
		maps.DeleteFunc(m.shown, func(_ int64, at time.Time) bool { return at.Before(before.Add(-paidAtSlack)) })
	}
	return nil
}

// compare holds one trade of channel's statement against its payment p,
// settling a payment the channel paid that the ledger still has unpaid
// and adding what it cannot repair to rep.
func (s *Service) compare(ctx context.Context, rep *ReconcileReport, p Payment, channel string, t Trade) error {
	unpaidInLedger := p.Status == StatusPaying || p.Status == StatusFailed
	switch {
	case ownTrade(p, channel, t) != nil:
		rep.note(DiffMismatched, p.ID)
	case unpaidInLedger && t.Status == TradePaid:
		if _, err := s.settle(ctx, p, t); err != nil {
			return err
		}
		rep.note(DiffRepaired, p.ID)
	case unpaidInLedger && t.Status == TradeRefunded,
		t.Status == TradeRefunded && p.Status != StatusRefunded, t.Refunded > p.Refunded:
		// The ledger records a refund before the channel is asked, so
		// the channel never holds more refunded than the ledger does.
		rep.note(DiffMismatched, p.ID)
	}
	return nil
}

// Run sweeps every sweepEvery and reconciles every reconcileEvery until
// ctx ends. Failures are logged; the next round retries.
func (s *Service) Run(ctx context.Context, sweepEvery, reconcileEvery time.Duration) error {
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	reconcile := time.NewTicker(reconcileEvery)
	defer reconcile.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			if rep, err := s.Sweep(ctx); err != nil {
				s.log.WarnContext(ctx, "sweep failed", "err", err)
			} else if rep.Settled+rep.Resumed+rep.Failed+rep.Skipped > 0 || rep.Behind > sweepEvery*sweepsBehind {
				s.log.InfoContext(ctx, "sweep", "queried", rep.Queried, "settled", rep.Settled, "resumed", rep.Resumed,
					"failed", rep.Failed, "skipped", rep.Skipped, "behind", rep.Behind)
			}
		case <-reconcile.C:
			if _, err := s.Reconcile(ctx); err != nil {
				s.log.WarnContext(ctx, "reconciliation failed", "err", err)
			}
		}
	}
}
