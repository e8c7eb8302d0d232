package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
)

// DueEntry is an order whose payment deadline passed, claimed from the
// inventory's expiry queue by one worker under a lease.
type DueEntry struct {
	ActivityID int64
	OrderID    int64
	// DueAt is when the entry fell due: the payment deadline, or the time
	// a requeue or a lapsed lease set.
	DueAt time.Time
	// LeaseUntil is when the claim lapses and another worker may take the
	// entry; it names the claim when the entry is settled.
	LeaseUntil time.Time
}

// DueQueue is the expiry queue (the inventory keeps it next to the stock,
// so that a reservation and its entry are written in one script).
type DueQueue interface {
	// Claim takes up to limit entries due at now from the queues of
	// activityIDs (every activity's when empty), for this worker alone
	// until the lease lapses.
	Claim(ctx context.Context, activityIDs []int64, now time.Time, limit int, lease time.Duration) ([]DueEntry, error)
	// Ack removes entries whose work is done.
	Ack(ctx context.Context, entries []DueEntry) error
	// Requeue puts entries back, due at at.
	Requeue(ctx context.Context, entries []DueEntry, at time.Time) error
}

// Transitions moves stored orders between states, each move one
// conditional UPDATE, so that of two racing moves exactly one wins.
type Transitions interface {
	// EndUnpaid moves those of ids that are PENDING_PAYMENT to to
	// (CANCELLED or EXPIRED) at at, with an event each, and returns the
	// ids it moved.
	EndUnpaid(ctx context.Context, ids []int64, to Status, at time.Time) ([]int64, error)
	// Statuses returns the status of every stored order among ids.
	Statuses(ctx context.Context, ids []int64) (map[int64]Status, error)
}

// Releaser gives back the stock of an order that ended unpaid.
type Releaser interface {
	// Release is idempotent; it fails with ErrConflict, releasing
	// nothing, when the reservation is confirmed (paid).
	Release(ctx context.Context, activityID, orderID int64) error
}

// ReservationStatus is where an order's reservation stands in the
// inventory.
type ReservationStatus string

// The reservation statuses.
const (
	ReservationReserved  ReservationStatus = "RESERVED"
	ReservationConfirmed ReservationStatus = "CONFIRMED"
	ReservationReleased  ReservationStatus = "RELEASED"
)

// ReservationState is what the expiry worker needs to know of a
// reservation whose order is not stored.
type ReservationState struct {
	Status    ReservationStatus
	ExpiresAt time.Time
	// Ordered: the order consumer marked it, so its order is stored or
	// about to be.
	Ordered bool
	// Unpublished: it was released as unpublished, so no order will ever
	// be stored for it.
	Unpublished bool
}

// ExpiryStock is what the expiry worker needs of the inventory.
type ExpiryStock interface {
	// ReleaseBatch gives back the stock of orders that ended unpaid, in
	// one call, and answers per order in the same order: nil when it was
	// released or nothing was held, ErrConflict when the reservation is
	// confirmed (paid), another error when it failed. The error is for
	// the call as a whole: then nothing was answered.
	ReleaseBatch(ctx context.Context, orders []DueEntry) ([]error, error)
	// ReleaseUnpublished is Inventory.ReleaseUnpublished.
	ReleaseUnpublished(ctx context.Context, activityID, orderID int64) error
	// Reservation fails with ErrNotFound when nothing was reserved.
	Reservation(ctx context.Context, activityID, orderID int64) (ReservationState, error)
}

// PublishedMarks reads the marks PlaceSeckillOrder writes once an order's
// event is in the log (Pending.Outcome).
type PublishedMarks interface {
	Outcome(ctx context.Context, orderID int64) (Outcome, error)
}

// ExpirerConfig holds an Expirer's dependencies and settings. Zero
// settings take the defaults below.
type ExpirerConfig struct {
	Queue  DueQueue
	Orders Transitions
	Stock  ExpiryStock
	// Marks tells whether an order's event was published (the pending
	// store): an order with the mark was accepted (202) and is in the
	// log, so it is never given up, however far the consumer lags.
	Marks PublishedMarks
	// Clock says what is due: a manual clock in tests moves deadlines
	// past without waiting.
	Clock clock.Clock
	// Activities limits the worker to these activities' queues; empty
	// means every preheated activity.
	Activities []int64
	// Batch is how many entries one claim takes (at most 1000).
	Batch int
	// Lease is how long a claim is the worker's alone: longer than a
	// batch takes, short enough that a crashed worker's entries are
	// retried soon.
	Lease time.Duration
	// Poll is how long the worker waits after a claim that was not full.
	Poll time.Duration
	// RequeueDelay is how long an entry whose order is not stored yet
	// waits before it is looked at again.
	RequeueDelay time.Duration
	// RetryDelay is how long an entry waits after a step of its
	// settling failed (a read, a release) before it is looked at again:
	// a transient failure costs its orders a few seconds, not the lease.
	// The lease still brings back the entries of a worker that died, or
	// whose requeue failed too.
	RetryDelay time.Duration
	// OrphanAfter is how long after its deadline a reservation whose
	// order never reached Postgres, and was never marked published, is
	// given up: its event was lost along with the compensating release,
	// or its pending record and mark could not be written after the
	// publish (its buyer was told UNAVAILABLE, never its id) and the
	// consumer has not stored it since (see Placing.PlaceSeckillOrder).
	// It is released as unpublished.
	OrphanAfter time.Duration
	// Parallel bounds the releases in flight within a batch.
	Parallel int
	// Regular, when set, has the worker expire regular orders too and
	// give back their product stock (Catalog) and coupons (Pricing); see
	// RunRegularOnce. Batch bounds those batches as well.
	Regular RegularEnds
	Catalog Catalog
	Pricing Pricing
	// HeldStock and UsedCoupons, when set with Regular, have the worker
	// also give back the regular stock and the coupons held for orders
	// that were never stored (RunStrayHoldsOnce), once a hold is
	// StrayAfter old: far longer than a checkout may run (MaxCheckout).
	// StrayLookback is how far before that a process's first sweep
	// starts.
	HeldStock, UsedCoupons    Holds
	StrayAfter, StrayLookback time.Duration
	// Observer hears of the orders the worker expires and of the books
	// disagreeing (nil: nobody).
	Observer Observer
	// Overdue, when set, has the worker also sweep the orders' store for
	// flash-sale orders still waiting for payment OverdueGrace after their
	// deadline, and expire them (RunBackstopOnce): the backstop for an
	// expiry entry that Redis lost.
	Overdue      OverdueOrders
	OverdueGrace time.Duration
	Logger       *slog.Logger
}

// OverdueOrders finds flash-sale orders past their deadline in the
// orders' store.
type OverdueOrders interface {
	// OverdueSeckill returns up to limit flash-sale orders still
	// PENDING_PAYMENT with a deadline at or before before and a key (the
	// deadline, then the order id) above after, in that order. A page
	// reads only the orders it returns: every order awaiting payment is a
	// candidate, and on a sale's day that is most of the table's newest
	// rows.
	OverdueSeckill(ctx context.Context, before time.Time, after sweep.TimeKey, limit int) ([]DueEntry, error)
	// ExpireOverdueSeckill ends those of ids still PENDING_PAYMENT as
	// EXPIRED (as Orders.EndUnpaid does) and, in the same statement,
	// marks each owed its stock; it returns the ids it moved.
	ExpireOverdueSeckill(ctx context.Context, ids []int64, at time.Time) ([]int64, error)
	// SeckillStockDue returns up to limit orders marked owed their stock,
	// with ids above after, by id; SeckillStockReleased clears the mark
	// of ids once their stock is back.
	SeckillStockDue(ctx context.Context, after int64, limit int) ([]DueEntry, error)
	SeckillStockReleased(ctx context.Context, ids []int64) error
}

// Defaults of the Expirer's settings.
const (
	DefaultExpiryBatch        = 500
	DefaultExpiryLease        = 30 * time.Second
	DefaultExpiryPoll         = time.Second
	DefaultExpiryRequeueDelay = time.Second
	DefaultExpiryRetryDelay   = 2 * time.Second
	DefaultExpiryOrphanAfter  = 10 * time.Minute
	DefaultExpiryParallel     = 16
	// DefaultOverdueGrace leaves the queue, which expires an order at its
	// deadline, the first go: the backstop takes only what it missed.
	DefaultOverdueGrace = time.Minute
	DefaultStrayAfter   = 10 * time.Minute
	// DefaultStrayLookback lets a worker that starts after an outage of
	// up to an hour find what came of age meanwhile.
	DefaultStrayLookback = time.Hour
)

// Expirer moves orders past their payment deadline from PENDING_PAYMENT to
// EXPIRED and gives their stock back. Any number of Expirers, in any
// number of processes, may run at once: a claim hands each due entry to
// one of them, and every step is idempotent, so an entry retried after a
// crash is finished, never done twice.
type Expirer struct {
	cfg ExpirerConfig
	// unreleased walks the ended regular orders whose give-back is due.
	unreleased sweep.Cursor[int64]
	// overdue walks the flash-sale orders past deadline and grace, and
	// stockDue those the backstop expired whose stock is not back yet.
	overdue  sweep.Cursor[sweep.TimeKey]
	stockDue sweep.Cursor[int64]
	// strayStock and strayCoupons walk the holds past StrayAfter, one
	// sweep of them at a time (strayBusy).
	strayStock, strayCoupons sweep.Mark
	strayBusy                sync.Mutex
}

// NewExpirer returns an Expirer over cfg.
func NewExpirer(cfg ExpirerConfig) *Expirer {
	defaults := []struct {
		v *time.Duration
		d time.Duration
	}{
		{&cfg.Lease, DefaultExpiryLease}, {&cfg.Poll, DefaultExpiryPoll},
		{&cfg.RequeueDelay, DefaultExpiryRequeueDelay}, {&cfg.RetryDelay, DefaultExpiryRetryDelay},
		{&cfg.OrphanAfter, DefaultExpiryOrphanAfter}, {&cfg.OverdueGrace, DefaultOverdueGrace},
		{&cfg.StrayAfter, DefaultStrayAfter}, {&cfg.StrayLookback, DefaultStrayLookback},
	}
	for _, d := range defaults {
		if *d.v <= 0 {
			*d.v = d.d
		}
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultExpiryBatch
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultExpiryParallel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	return &Expirer{cfg: cfg}
}

// Run expires due orders until ctx ends: each round a batch of the
// queue's (RunOnce), then one of regular orders (RunRegularOnce), then a
// page of the flash-sale backstop (RunBackstopOnce), then one of each
// kind of hold taken for a regular order never stored
// (RunStrayHoldsOnce). A full
// batch is followed by the next round at once, so a backlog drains at the
// speed of the work; otherwise the worker waits Poll. Failures are logged
// and retried: a batch's entries are requeued RetryDelay ahead (or their
// claims lapse and come back), and unreleased regular orders are swept
// again.
func (e *Expirer) Run(ctx context.Context) error {
	for {
		n, err := e.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			e.cfg.Logger.WarnContext(ctx, "expiry batch failed; its entries are retried", "err", err)
		}
		r, rerr := e.RunRegularOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if rerr != nil {
			e.cfg.Logger.WarnContext(ctx, "regular expiry failed; retried at the next sweep", "err", rerr)
		}
		b, berr := e.RunBackstopOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if berr != nil {
			e.cfg.Logger.WarnContext(ctx, "flash-sale expiry backstop failed; retried at the next sweep", "err", berr)
		}
		h, herr := e.RunStrayHoldsOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if herr != nil {
			e.cfg.Logger.WarnContext(ctx, "give-back of holds of orders never stored failed; retried at the next sweep", "err", herr)
		}
		if (n == e.cfg.Batch && err == nil) || (r == e.cfg.Batch && rerr == nil) || (b == e.cfg.Batch && berr == nil) || (h == e.cfg.Batch && herr == nil) {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.cfg.Poll):
		}
	}
}

// settlement is what becomes of a claimed entry.
type settlement int

const (
	// retry looks at the entry again after RetryDelay: a step of its
	// settling failed.
	retry settlement = iota
	ack
	// requeue looks at the entry again after RequeueDelay.
	requeue
	// park looks at it again after OrphanAfter: something is stuck that
	// a person should look at, and retrying every second would not help.
	park
	// release gives the order's stock back, with the batch's other
	// releases in one call, and then acknowledges it.
	release
)

// RunOnce claims one batch of due entries and settles it, returning how
// many entries it claimed. One conditional UPDATE expires the batch's
// orders that are still PENDING_PAYMENT; then each entry is settled by
// its order's state:
//
//   - expired now, or found EXPIRED or CANCELLED: release the stock, then
//     acknowledge. Releasing again is harmless, and it finishes the work
//     of a worker or a cancel that died between its UPDATE and its release.
//   - PAID or later: acknowledge; the payment confirmed the reservation.
//   - not stored: the order consumer is behind, so look again shortly,
//     never drop; unless the reservation says no order will come.
func (e *Expirer) RunOnce(ctx context.Context) (int, error) {
	now := e.cfg.Clock.Now()
	entries, err := e.cfg.Queue.Claim(ctx, e.cfg.Activities, now, e.cfg.Batch, e.cfg.Lease)
	if err != nil || len(entries) == 0 {
		return len(entries), err
	}
	ids := make([]int64, len(entries))
	for i, en := range entries {
		ids[i] = en.OrderID
	}
	expired, err := e.cfg.Orders.EndUnpaid(ctx, ids, StatusExpired, now)
	if err != nil {
		return len(entries), e.retryAll(ctx, entries, now, fmt.Errorf("expire %d orders: %w", len(ids), err))
	}
	e.cfg.Observer.Ended(ctx, KindSeckill, StatusExpired, len(expired))
	won := make(map[int64]bool, len(expired))
	for _, id := range expired {
		won[id] = true
	}
	var others []int64
	for _, id := range ids {
		if !won[id] {
			others = append(others, id)
		}
	}
	statuses := map[int64]Status{}
	if len(others) > 0 {
		if statuses, err = e.cfg.Orders.Statuses(ctx, others); err != nil {
			return len(entries), e.retryAll(ctx, entries, now, fmt.Errorf("expire: statuses of %d orders: %w", len(others), err))
		}
	}
	for _, id := range expired {
		statuses[id] = StatusExpired
	}

	outcomes := make([]settlement, len(entries))
	e.inParallel(len(entries), func(i int) {
		en := entries[i]
		st, stored := statuses[en.OrderID]
		outcomes[i] = e.settle(ctx, en, st, stored, now)
	})
	e.releaseAll(ctx, entries, outcomes)

	groups := map[settlement][]DueEntry{}
	for i, en := range entries {
		groups[outcomes[i]] = append(groups[outcomes[i]], en)
	}
	var errs []error
	if g := groups[retry]; len(g) > 0 {
		errs = append(errs, fmt.Errorf("%d entries failed, retried in %s", len(g), e.cfg.RetryDelay),
			e.cfg.Queue.Requeue(ctx, g, now.Add(e.cfg.RetryDelay)))
	}
	if g := groups[ack]; len(g) > 0 {
		errs = append(errs, e.cfg.Queue.Ack(ctx, g))
	}
	if g := groups[requeue]; len(g) > 0 {
		errs = append(errs, e.cfg.Queue.Requeue(ctx, g, now.Add(e.cfg.RequeueDelay)))
	}
	if g := groups[park]; len(g) > 0 {
		errs = append(errs, e.cfg.Queue.Requeue(ctx, g, now.Add(e.cfg.OrphanAfter)))
	}
	if err := errors.Join(errs...); err != nil {
		return len(entries), fmt.Errorf("expire: settle: %w", err)
	}
	return len(entries), nil
}

// retryAll requeues a batch whose settling failed as a whole (cause)
// RetryDelay ahead, and returns cause with the requeue's own failure, if
// any: the lease then brings the entries back.
func (e *Expirer) retryAll(ctx context.Context, entries []DueEntry, now time.Time, cause error) error {
	return errors.Join(cause, e.cfg.Queue.Requeue(ctx, entries, now.Add(e.cfg.RetryDelay)))
}

// settle decides one entry, given its order's stored status (stored false
// when there is no row).
func (e *Expirer) settle(ctx context.Context, en DueEntry, st Status, stored bool, now time.Time) settlement {
	switch {
	case !stored:
		return e.unstored(ctx, en, now)
	case st == StatusExpired || st == StatusCancelled:
		return release
	case st == StatusPendingPayment:
		// Stored between the UPDATE and the read of its status.
		return requeue
	default:
		return ack
	}
}

// releaseAll gives back, in one call, the stock of the entries whose
// outcome is release, and settles each by its answer.
func (e *Expirer) releaseAll(ctx context.Context, entries []DueEntry, outcomes []settlement) {
	var ended []DueEntry
	var at []int // at[j] is the index in entries of ended[j]
	for i, o := range outcomes {
		if o == release {
			ended, at = append(ended, entries[i]), append(at, i)
		}
	}
	if len(ended) == 0 {
		return
	}
	answers, err := e.cfg.Stock.ReleaseBatch(ctx, ended)
	if err != nil {
		e.cfg.Logger.WarnContext(ctx, "release of ended orders failed; retried",
			"orders", len(ended), "err", err)
		for _, i := range at {
			outcomes[i] = retry
		}
		return
	}
	for j, en := range ended {
		switch {
		case answers[j] == nil:
			outcomes[at[j]] = ack
		case errors.Is(answers[j], ErrConflict):
			// Paid and ended unpaid at once: the payment side confirmed a
			// reservation whose order it lost the race for. The stock
			// stays sold; the payment service refunds the money.
			e.cfg.Logger.ErrorContext(ctx, "order ended unpaid but its reservation is confirmed",
				"order_id", en.OrderID, "activity_id", en.ActivityID)
			e.cfg.Observer.Violated(ctx, InvariantEndedConfirmed)
			outcomes[at[j]] = ack
		default:
			e.cfg.Logger.WarnContext(ctx, "release of an ended order failed; retried",
				"order_id", en.OrderID, "activity_id", en.ActivityID, "err", answers[j])
			outcomes[at[j]] = retry
		}
	}
}

// unstored decides an entry whose order has no row (yet).
func (e *Expirer) unstored(ctx context.Context, en DueEntry, now time.Time) settlement {
	r, err := e.cfg.Stock.Reservation(ctx, en.ActivityID, en.OrderID)
	switch {
	case errors.Is(err, ErrNotFound):
		return ack // nothing was reserved, so nothing is held
	case err != nil:
		e.cfg.Logger.WarnContext(ctx, "reservation of an unstored due order unreadable; retried",
			"order_id", en.OrderID, "err", err)
		return retry
	case r.Unpublished:
		// The placing service could not publish the order and gave the
		// stock back; the consumer drops the event if it ever comes.
		return ack
	case now.Before(r.ExpiresAt.Add(e.cfg.OrphanAfter)):
		// The consumer is behind; it may even store the order after its
		// deadline, and the next look expires it then.
		return requeue
	case r.Status != ReservationReserved || r.Ordered:
		e.cfg.Logger.ErrorContext(ctx, "order still not stored long after its deadline",
			"order_id", en.OrderID, "activity_id", en.ActivityID, "reservation", r.Status, "ordered", r.Ordered)
		return park
	}
	out, err := e.cfg.Marks.Outcome(ctx, en.OrderID)
	switch {
	case err != nil:
		e.cfg.Logger.WarnContext(ctx, "published mark of an unstored due order unreadable; retried",
			"order_id", en.OrderID, "err", err)
		return retry
	case out == OutcomePublished:
		// Accepted (202) and in the log: the consumer stores it whatever
		// its age, and a later look expires it. Giving it up here would
		// drop an accepted order.
		e.cfg.Logger.WarnContext(ctx, "accepted order still not stored long after its deadline: the consumer is far behind",
			"order_id", en.OrderID, "activity_id", en.ActivityID)
		return park
	}
	// Not accepted: its publish failed and so did the release that should
	// have followed, or its mark was never written after the publish (its
	// buyer was told UNAVAILABLE). Either way the consumer has not taken
	// it long after its deadline. Releasing as unpublished decides
	// atomically against a late consumer's mark.
	err = e.cfg.Stock.ReleaseUnpublished(ctx, en.ActivityID, en.OrderID)
	switch {
	case err == nil:
		e.cfg.Logger.WarnContext(ctx, "released the stock of an order that never reached the store",
			"order_id", en.OrderID, "activity_id", en.ActivityID)
		return ack
	case errors.Is(err, ErrAlreadyOrdered):
		return requeue
	default:
		e.cfg.Logger.WarnContext(ctx, "unpublished release of an orphaned reservation failed", "order_id", en.OrderID, "err", err)
		return retry
	}
}

// RunBackstopOnce expires a page of flash-sale orders still
// PENDING_PAYMENT OverdueGrace past their deadline, and gives their stock
// back, returning the page's size. It does nothing without Overdue.
//
// Flash-sale orders expire through the inventory's queue, which lives in
// Redis; an entry Redis lost (a crash with AOF everysec loses the last
// second) would leave its order waiting for payment forever. The pages
// walk the candidates by deadline and id (sweep.TimeKey), so
// orders whose expiring keeps failing do not hold back the ones behind
// them, and a page reads only its own orders, however many wait for
// payment. Expiring is the
// same conditional UPDATE as the queue's, so a payment or a queue worker
// racing the backstop either wins or finds the order expired, and the
// release is the same idempotent one: a reservation that is gone
// releases nothing (and a rebuild of its fenced sale reads the order as
// expired, holding nothing).
//
// An order it expired is marked owed its stock in the same statement,
// and the mark is cleared only once the release succeeded: a release
// that failed, or a worker stopped in between, is retried at the next
// round from a page of the marked orders (which the page's size counts
// too), never left holding its unit.
func (e *Expirer) RunBackstopOnce(ctx context.Context) (int, error) {
	if e.cfg.Overdue == nil {
		return 0, nil
	}
	owed, err := e.cfg.Overdue.SeckillStockDue(ctx, e.stockDue.After(ctx), e.cfg.Batch)
	if err != nil {
		return 0, err // the store's error names the page
	}
	e.stockDue.Read(ctx, sweep.Keys(owed, func(d DueEntry) int64 { return d.OrderID }), e.cfg.Batch)
	errs := []error{e.giveStockBack(ctx, owed)}

	page, err := e.cfg.Overdue.OverdueSeckill(ctx, e.cfg.Clock.Now().Add(-e.cfg.OverdueGrace), e.overdue.After(ctx), e.cfg.Batch)
	if err != nil {
		return len(owed), errors.Join(append(errs, err)...)
	}
	e.overdue.Read(ctx, sweep.Keys(page, func(d DueEntry) sweep.TimeKey { return sweep.TimeKey{At: d.DueAt, ID: d.OrderID} }), e.cfg.Batch)
	n := max(len(owed), len(page))
	if len(page) == 0 {
		return n, errors.Join(errs...)
	}
	ids := sweep.Keys(page, func(d DueEntry) int64 { return d.OrderID })
	expired, err := e.cfg.Overdue.ExpireOverdueSeckill(ctx, ids, e.cfg.Clock.Now())
	if err != nil {
		return n, errors.Join(append(errs, fmt.Errorf("expire %d overdue flash-sale orders: %w", len(ids), err))...)
	}
	won := make(map[int64]bool, len(expired))
	for _, id := range expired {
		won[id] = true
	}
	var mine []DueEntry
	for _, d := range page {
		if won[d.OrderID] {
			mine = append(mine, d)
			e.cfg.Logger.WarnContext(ctx, "expired a flash-sale order its expiry queue missed",
				"order_id", d.OrderID, "activity_id", d.ActivityID, "deadline", d.DueAt)
		}
	}
	e.cfg.Observer.Ended(ctx, KindSeckill, StatusExpired, len(expired))
	return n, errors.Join(append(errs, e.giveStockBack(ctx, mine))...)
}

// giveStockBack releases the stock of the backstop's expired orders ds
// and clears the mark of those released; the rest stay marked for the
// next round.
func (e *Expirer) giveStockBack(ctx context.Context, ds []DueEntry) error {
	if len(ds) == 0 {
		return nil
	}
	outcomes := make([]settlement, len(ds))
	for i := range outcomes {
		outcomes[i] = release
	}
	e.releaseAll(ctx, ds, outcomes)
	var back []int64
	var errs []error
	for i, o := range outcomes {
		if o == retry {
			errs = append(errs, fmt.Errorf("release of expired order %d failed; retried at the next round", ds[i].OrderID))
		} else {
			back = append(back, ds[i].OrderID)
		}
	}
	if len(back) > 0 {
		if err := e.cfg.Overdue.SeckillStockReleased(ctx, back); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// inParallel calls f(0) … f(n-1), at most Parallel of them at once, and
// returns when all have returned.
func (e *Expirer) inParallel(n int, f func(i int)) {
	sem := make(chan struct{}, e.cfg.Parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
