package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
)

// Reservations holds the flash-sale stock as placing needs it (the
// inventory service).
type Reservations interface {
	// Reserve takes stock for r atomically: idempotency by key, the
	// per-user limit and the stock check. It fails with ErrSoldOut,
	// ErrLimitExceeded, ErrNotFound (activity not preheated) or
	// ErrUnavailable.
	Reserve(ctx context.Context, r Reservation) (Reserved, error)
	// ReleaseUnpublished gives back the reserved stock of an order whose
	// event was not published, or may not have been (a publish that
	// failed after the broker appended it). It fails with
	// ErrAlreadyOrdered, releasing nothing, when the order consumer has
	// already marked the reservation ordered; otherwise the inventory
	// records the release so that a late delivery of the event is dropped.
	// Releasing twice, or what was never reserved, is harmless.
	ReleaseUnpublished(ctx context.Context, activityID, orderID int64) error
}

// Activities finds flash-sale activities (the product service).
type Activities interface {
	// Activity fails with ErrNotFound for an unknown id.
	Activity(ctx context.Context, id int64) (Activity, error)
}

// Publisher puts OrderPlaced on the event log, durably (acks=all) before
// it returns.
type Publisher interface {
	Publish(ctx context.Context, p Placed) error
}

// Pending keeps the orders that are published but not yet stored, so that
// readers see them as PROCESSING in the meantime, and the mark of each
// placement: published, or released after it failed.
type Pending interface {
	// Put records p as in flight and marks its placement published, in
	// one round trip, once its event is on the log.
	Put(ctx context.Context, p Placed) error
	// Released marks the placement of orderID released: its publish
	// failed and its stock went back, so the order will never exist. Put
	// is never called for such a placement.
	Released(ctx context.Context, orderID int64) error
	// Outcome reads the mark of the placement of orderID.
	Outcome(ctx context.Context, orderID int64) (Outcome, error)
	// Get fails with ErrNotFound when there is no record for id.
	Get(ctx context.Context, id int64) (Placed, error)
	// UserPending returns the user's in-flight orders.
	UserPending(ctx context.Context, userID int64) ([]Placed, error)
	// Delete drops the records of ps; missing ones are ignored.
	Delete(ctx context.Context, ps ...Placed) error
}

// Outcome is what a placement's mark says of it.
type Outcome int

const (
	// OutcomeUnknown: no mark. The placement is still under way, or its
	// mark expired.
	OutcomeUnknown Outcome = iota
	// OutcomePublished: the order's event is on the log; it was accepted
	// and the consumer stores it, however long it lags.
	OutcomePublished
	// OutcomeReleased: the placement failed and gave its stock back.
	OutcomeReleased
)

// PlacingConfig holds what placing a flash-sale order needs.
type PlacingConfig struct {
	Reservations Reservations
	Activities   Activities
	Publisher    Publisher
	Pending      Pending
	// Orders is read by a replayed request, whose order may be stored
	// already.
	Orders StoredOrders
	Clock  clock.Clock
	// NextID hands out order and line ids (a snowflake generator's Next).
	NextID func() int64
	// PaymentWindow is how long a buyer has to pay (default 15m).
	PaymentWindow time.Duration
	// ActivityTTL is how long an activity stays cached (default 1s).
	ActivityTTL time.Duration
	// ReplayWait bounds how long a replayed request waits for the first
	// request's order to be on its way (default DefaultReplayWait).
	ReplayWait time.Duration
	// Observer hears of placed orders (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// DefaultPaymentWindow is how long a buyer has to pay by default.
const DefaultPaymentWindow = 15 * time.Minute

// placeTimeout bounds the publish once the stock is reserved. It runs
// detached from the caller's context, as do the writes after it, because a
// client that gives up (the gateway's call timeout) retries with the same
// key, and that retry is answered with this order: aborting its publish
// would lose it.
const placeTimeout = 10 * time.Second

// DefaultReplayWait is how long a replayed request waits by default for
// the first request's order to be published or stored. It matches the
// gateway's call timeout: waiting longer only answers a client that left.
const DefaultReplayWait = 2 * time.Second

// replayPoll is how often a waiting replay looks at the first order again.
const replayPoll = 15 * time.Millisecond

// Placing places flash-sale orders: reserve, publish, record in flight.
type Placing struct {
	cfg        PlacingConfig
	activities *cache.Loader[int64, Activity]
}

// NewPlacing returns the placing use case over cfg.
func NewPlacing(cfg PlacingConfig) *Placing {
	if cfg.PaymentWindow <= 0 {
		cfg.PaymentWindow = DefaultPaymentWindow
	}
	if cfg.ActivityTTL <= 0 {
		cfg.ActivityTTL = time.Second
	}
	if cfg.ReplayWait <= 0 {
		cfg.ReplayWait = DefaultReplayWait
	}
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	return &Placing{
		cfg: cfg,
		// Every request of a sale reads the same activity: a short-lived
		// in-process copy takes that load off the product service.
		// Activities never change once created, so while the product
		// service cannot answer, the copy read last (up to
		// cache.StaleMaxAge old) keeps the sale open.
		activities: cache.New(cfg.ActivityTTL, cfg.Clock, cfg.Activities.Activity).
			WithStale(cache.OnOutage(cache.StaleMaxAge)),
	}
}

// Caches names placing's caches, for their metrics (cache.Collector).
func (pl *Placing) Caches() map[string][]cache.StatsSource {
	return map[string][]cache.StatsSource{"activity": {pl.activities}}
}

// PlaceSeckillOrder reserves qty units of the activity for the user and
// publishes the order, which reaches Postgres asynchronously. It returns
// the order id; the same idemKey returns the first request's id once that
// order is published or stored (ErrUnavailable if it never is). Nothing
// stays reserved unless the order is on its way: when the publish fails
// the reservation is released as unpublished and the error is
// ErrUnavailable, unless the inventory answers that the consumer already
// took the order (the publish did land), which makes it a success.
func (pl *Placing) PlaceSeckillOrder(ctx context.Context, userID, activityID, qty int64, idemKey string) (int64, error) {
	const op = "place seckill order"
	switch {
	case userID <= 0 || activityID <= 0:
		return 0, fmt.Errorf("%s: %w: user and activity ids must be positive", op, ErrInvalid)
	case qty < 1 || qty > MaxQuantity:
		return 0, fmt.Errorf("%s: %w: quantity %d outside 1..%d", op, ErrInvalid, qty, MaxQuantity)
	}
	if err := checkKey(idemKey); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	act, err := pl.activities.Get(ctx, activityID)
	if err != nil {
		return 0, fmt.Errorf("%s: activity %d: %w", op, activityID, err)
	}
	now := pl.cfg.Clock.Now()
	if !act.ActiveAt(now) {
		// After the end, a retry of a buy placed before it (whose answer
		// the buyer never got) is answered with its order, as any retry
		// is; the reservation's own replay, which answers them in the
		// window, is not asked for a sale that has ended.
		if !now.Before(act.EndsAt) {
			id, found, err := pl.placedBefore(ctx, userID, activityID, idemKey)
			switch {
			case found:
				return id, nil
			case err != nil:
				return 0, fmt.Errorf("%s: a retry after the end: %v: %w", op, err, ErrUnavailable)
			case now.Before(act.EndsAt.Add(placeTimeout + releaseTimeout)):
				// A placement made just before the end may still be at
				// its publish (its record is written after it): not
				// found yet is not proof there is none.
				return 0, fmt.Errorf("%s: a retry after the end: its first request may still be placing the order: %w", op, ErrUnavailable)
			}
		}
		return 0, fmt.Errorf("%s: activity %d runs %s..%s: %w", op, activityID,
			act.StartsAt.Format(time.RFC3339), act.EndsAt.Format(time.RFC3339), ErrActivityNotActive)
	}
	if qty > act.PerUserLimit {
		return 0, fmt.Errorf("%s: quantity %d over the limit of %d: %w", op, qty, act.PerUserLimit, ErrLimitExceeded)
	}
	p := Placed{
		OrderID: pl.cfg.NextID(), LineID: pl.cfg.NextID(),
		UserID: userID, ActivityID: activityID, SKUID: act.SKUID,
		Quantity: qty, UnitPrice: act.Price, IdempotencyKey: idemKey,
		CreatedAt: now, ExpiresAt: now.Add(pl.cfg.PaymentWindow),
	}
	res, err := pl.cfg.Reservations.Reserve(ctx, Reservation{
		ActivityID: activityID, UserID: userID, Quantity: qty,
		OrderID: p.OrderID, IdempotencyKey: idemKey, ExpiresAt: p.ExpiresAt,
	})
	if err != nil {
		if !definite(err) {
			// The reservation may have been made before the answer was
			// lost. Releasing our own fresh id undoes it or does nothing;
			// nothing was published, so no consumer can have marked it.
			_ = pl.release(ctx, p, "reserve failed")
		}
		return 0, fmt.Errorf("%s: reserve: %w", op, err)
	}
	// A replay of this placement's own order id is its own reservation,
	// sent again below it after an answer was lost (go-redis retries a
	// command on a reset connection or a read timeout): publish it. Only
	// another order id is an earlier request's order to wait for.
	if res.Replayed && res.OrderID != p.OrderID {
		if err := pl.awaitReplayed(ctx, res.OrderID); err != nil {
			return 0, fmt.Errorf("%s: replay of order %d: %w", op, res.OrderID, err)
		}
		return res.OrderID, nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), placeTimeout)
	defer cancel()
	perr := pl.cfg.Publisher.Publish(pctx, p)
	if perr == nil {
		// The pending record lets the buyer read the order as PROCESSING
		// until it is stored; the published mark tells the expiry worker
		// that the order was accepted and must wait for the consumer
		// however long it lags. Both go in one round trip once the event
		// is on the log, and no published order is answered 202 without
		// them. The event is on the log, so the order is never released:
		// when they cannot be written, the buyer is told to retry, and its
		// retry (a replay) is answered once the consumer has stored it.
		if err := pl.record(ctx, p); err != nil {
			pl.cfg.Logger.WarnContext(ctx, "published order's pending record and mark not written: its buyer is told to retry",
				"order_id", p.OrderID, "err", err)
			return 0, fmt.Errorf("%s: pending record and published mark: %v: %w", op, err, ErrUnavailable)
		}
		pl.cfg.Observer.Placed(ctx, KindSeckill)
		return p.OrderID, nil
	}
	// The error may be ambiguous: a timeout after the broker appended the
	// event. The inventory decides atomically between this release and
	// the consumer's mark, so either the order stands (and keeps its
	// stock) or the stock goes back and a late delivery is dropped; never
	// both.
	rerr := pl.release(ctx, p, "publish failed")
	if errors.Is(rerr, ErrAlreadyOrdered) {
		pl.cfg.Logger.InfoContext(ctx, "publish reported an error but the order was consumed",
			"order_id", p.OrderID, "publish_err", perr)
		// Readable at once, as any accepted order. Answered 202 even when
		// the record and mark cannot be written: the inventory's ordered
		// flag keeps the expiry worker from giving it up, and it is
		// readable once stored.
		if err := pl.record(ctx, p); err != nil {
			pl.cfg.Logger.WarnContext(ctx, "consumed order's pending record not written", "order_id", p.OrderID, "err", err)
		}
		pl.cfg.Observer.Placed(ctx, KindSeckill)
		return p.OrderID, nil
	}
	if rerr == nil {
		// A replay waiting for this order learns from the mark that it
		// will never exist.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := pl.cfg.Pending.Released(rctx, p.OrderID); err != nil {
			pl.cfg.Logger.WarnContext(ctx, "released mark not written", "order_id", p.OrderID, "err", err)
		}
	}
	// When the release failed too, whether the order exists is unknown
	// until the event is consumed (then it is stored and keeps its stock)
	// or the reservation expires: the expiry worker releases it then.
	return 0, fmt.Errorf("%s: publish: %v: %w", op, perr, ErrUnavailable)
}

// placedBefore finds the order the user's earlier request with the key
// made in the activity: in flight (its pending record) or stored; err
// when either could not be read, so that absence is not proven.
func (pl *Placing) placedBefore(ctx context.Context, userID, activityID int64, key string) (id int64, found bool, err error) {
	inFlight, err := pl.cfg.Pending.UserPending(ctx, userID)
	if err != nil {
		return 0, false, fmt.Errorf("in-flight orders: %w", err)
	}
	for _, p := range inFlight {
		if p.ActivityID == activityID && p.IdempotencyKey == key {
			return p.OrderID, true, nil
		}
	}
	o, err := pl.cfg.Orders.SeckillByKey(ctx, userID, activityID, key)
	switch {
	case err == nil:
		return o.ID, true, nil
	case errors.Is(err, ErrNotFound):
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("stored orders: %w", err)
}

// recordTries and recordTimeout bound the writes of an order's pending
// record and published mark. Each try has a context of its own: the
// publish before it may have used most of placeTimeout.
const (
	recordTries   = 3
	recordTimeout = time.Second
)

// record writes p's pending record and published mark, trying again
// after a failure: the writes are idempotent, and the order they describe
// stands whether they land or not.
func (pl *Placing) record(ctx context.Context, p Placed) error {
	var err error
	for try := range recordTries {
		if try > 0 {
			time.Sleep(time.Duration(try) * 20 * time.Millisecond)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		err = pl.cfg.Pending.Put(rctx, p)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// errGone says that a replayed request's order was released: its
// placement failed, and it will never exist.
var errGone = errors.New("the first request's order was released")

// awaitReplayed returns once the order a replayed request is answered
// with is on its way: published (marked so) or stored. A replay can
// arrive while the first request is still publishing, and that publish
// may yet fail and release the order; answering its id before then could
// hand the buyer an order that never exists. It fails with ErrUnavailable
// (the client retries; after a release its key reserves afresh) when the
// order was released or is not on its way within ReplayWait.
func (pl *Placing) awaitReplayed(ctx context.Context, orderID int64) error {
	wctx, cancel := context.WithTimeout(ctx, pl.cfg.ReplayWait)
	defer cancel()
	tick := time.NewTicker(replayPoll)
	defer tick.Stop()
	for {
		done, err := pl.onItsWay(wctx, orderID)
		if err != nil {
			return fmt.Errorf("%v: %w", err, ErrUnavailable)
		}
		if done {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("not on its way after %s: %v: %w", pl.cfg.ReplayWait, wctx.Err(), ErrUnavailable)
		case <-tick.C:
		}
	}
}

// onItsWay reports whether orderID is published or stored, and fails with
// errGone once its placement is marked released. Published counts once
// its pending record is readable too: the first request writes both in one
// round trip, but on Redis Cluster they live on different primaries, and
// the buyer answered with the id must find the order. The consumer deletes
// the record only after storing the order, which the read of the store
// then finds.
func (pl *Placing) onItsWay(ctx context.Context, orderID int64) (bool, error) {
	out, rerr := pl.cfg.Pending.Outcome(ctx, orderID)
	if rerr == nil && out == OutcomeReleased {
		return false, errGone
	}
	if rerr == nil && out == OutcomePublished {
		if _, rerr = pl.cfg.Pending.Get(ctx, orderID); rerr == nil {
			return true, nil
		}
		if errors.Is(rerr, ErrNotFound) {
			rerr = nil
		}
	}
	// With order's Redis unreadable (rerr) the store still answers: an
	// order whose record and mark could not be written is answered once
	// the consumer has stored it.
	_, err := pl.cfg.Orders.Order(ctx, orderID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, rerr
	}
	return false, errors.Join(rerr, err)
}

// definite reports whether err is an answer of the inventory, after which
// nothing was reserved, rather than a failure that leaves it unknown.
func definite(err error) bool {
	for _, e := range []error{ErrSoldOut, ErrLimitExceeded, ErrNotFound, ErrActivityNotActive, ErrInvalid, ErrSaleFenced} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// release gives p's stock back after a failed placement, as unpublished:
// p's event was not published or may not have been. It runs detached from
// the caller's context, which may be what ended. A failure other than
// ErrAlreadyOrdered is logged loudly, for the reservation then stays taken
// until its payment deadline passes and the expiry worker releases it.
func (pl *Placing) release(ctx context.Context, p Placed, why string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	err := pl.cfg.Reservations.ReleaseUnpublished(rctx, p.ActivityID, p.OrderID)
	if err != nil && !errors.Is(err, ErrAlreadyOrdered) {
		pl.cfg.Logger.ErrorContext(ctx, "release after failed placement failed: stock held until the reservation expires",
			"why", why, "order_id", p.OrderID, "activity_id", p.ActivityID, "err", err)
	}
	return err
}
