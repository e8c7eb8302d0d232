package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
)

// Inventory holds the flash-sale stock (the inventory service).
type Inventory interface {
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
	// Confirm marks the order's reservation paid, so that it is never
	// released. Confirming twice is harmless; it fails with
	// ErrStockReleased when the stock was already given back.
	Confirm(ctx context.Context, activityID, orderID int64) error
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

// Store reads persisted orders.
type Store interface {
	// Order fails with ErrNotFound when the order is not stored (yet).
	Order(ctx context.Context, id int64) (Order, error)
	// UserOrders returns up to limit of the user's orders, newest first.
	UserOrders(ctx context.Context, userID int64, limit int) ([]Order, error)
	// MarkPaid moves the order from PENDING_PAYMENT to PAID by p, with one
	// conditional update, when its payable amount is p.Amount. It returns
	// the order as it stands afterwards, whoever changed it, and whether
	// this call's update moved it.
	MarkPaid(ctx context.Context, p Paid) (o Order, moved bool, err error)
}

// Pending keeps the orders that are published but not yet stored, so that
// readers see them as PROCESSING in the meantime.
type Pending interface {
	Put(ctx context.Context, p Placed) error
	// MarkPublished records that the order's event is on the event log,
	// for as long as its pending record lives.
	MarkPublished(ctx context.Context, orderID int64) error
	// Published reports whether MarkPublished recorded the order.
	Published(ctx context.Context, orderID int64) (bool, error)
	// Get fails with ErrNotFound when there is no record for id.
	Get(ctx context.Context, id int64) (Placed, error)
	// UserPending returns the user's in-flight orders.
	UserPending(ctx context.Context, userID int64) ([]Placed, error)
	// Delete drops the records of ps; missing ones are ignored.
	Delete(ctx context.Context, ps ...Placed) error
}

// Config holds the Service's dependencies and settings.
type Config struct {
	Inventory  Inventory
	Activities Activities
	Publisher  Publisher
	Store      Store
	Pending    Pending
	// Transitions and Releaser end unpaid orders (CancelOrder).
	Transitions Transitions
	Releaser    Releaser
	// Catalog, Pricing and Regular serve regular orders (regular.go).
	Catalog Catalog
	Pricing Pricing
	Regular RegularStore
	// Refunds, Payments and Limits serve refunds (refund.go).
	Refunds  RefundStore
	Payments Payments
	Limits   LimitRestorer
	// RefundRetryAfter is how long a refund stays PENDING before the
	// refund sweep takes it up (default 10s).
	RefundRetryAfter time.Duration
	Clock            clock.Clock
	// Observer hears of placed, paid, cancelled and refunded orders
	// (nil: nobody).
	Observer Observer
	// NextID hands out order and line ids (a snowflake generator's Next).
	NextID func() int64
	// PaymentWindow is how long a buyer has to pay (default 15m).
	PaymentWindow time.Duration
	// ActivityTTL is how long an activity stays cached (default 1s).
	ActivityTTL time.Duration
	// ReplayWait bounds how long a replayed request waits for the first
	// request's order to be on its way (default DefaultReplayWait).
	ReplayWait time.Duration
	Logger     *slog.Logger
}

// DefaultRefundRetryAfter is how long a refund stays PENDING before the
// refund sweep retries it: long enough that the sweep rarely races the
// request that recorded it (which is harmless, every step being
// idempotent), short enough that a buyer waits seconds, not hours.
const DefaultRefundRetryAfter = 10 * time.Second

// ListLimit bounds how many stored orders ListOrders returns.
const ListLimit = 100

// releaseTimeout bounds a compensating release, which must run even when
// the caller has gone.
const releaseTimeout = 5 * time.Second

// placeTimeout bounds the rest of a placement once the stock is reserved:
// the pending record, the publish and the published mark. They run
// detached from the caller's context, because a client that gives up (the
// gateway's call timeout) retries with the same key, and that retry is
// answered with this order: aborting its publish would lose it.
const placeTimeout = 10 * time.Second

// DefaultReplayWait is how long a replayed request waits by default for
// the first request's order to be published or stored. It matches the
// gateway's call timeout: waiting longer only answers a client that left.
const DefaultReplayWait = 2 * time.Second

// replayPoll is how often a waiting replay looks at the first order again.
const replayPoll = 15 * time.Millisecond

// Service places flash-sale orders and serves their state.
type Service struct {
	cfg         Config
	activities  *cache.Loader[int64, Activity]
	refundSweep sweep.Cursor
}

// NewService returns a Service over cfg.
func NewService(cfg Config) *Service {
	if cfg.PaymentWindow <= 0 {
		cfg.PaymentWindow = 15 * time.Minute
	}
	if cfg.ActivityTTL <= 0 {
		cfg.ActivityTTL = time.Second
	}
	if cfg.ReplayWait <= 0 {
		cfg.ReplayWait = DefaultReplayWait
	}
	if cfg.RefundRetryAfter <= 0 {
		cfg.RefundRetryAfter = DefaultRefundRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	return &Service{
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

// Caches names the service's caches, for their metrics (cache.Collector).
func (s *Service) Caches() map[string][]cache.StatsSource {
	return map[string][]cache.StatsSource{"activity": {s.activities}}
}

// PlaceSeckillOrder reserves qty units of the activity for the user and
// publishes the order, which reaches Postgres asynchronously. It returns
// the order id; the same idemKey returns the first request's id once that
// order is published or stored (ErrUnavailable if it never is). Nothing
// stays reserved unless the order is on its way: when the publish fails
// the reservation is released as unpublished and the error is
// ErrUnavailable, unless the inventory answers that the consumer already
// took the order (the publish did land), which makes it a success.
func (s *Service) PlaceSeckillOrder(ctx context.Context, userID, activityID, qty int64, idemKey string) (int64, error) {
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
	act, err := s.activities.Get(ctx, activityID)
	if err != nil {
		return 0, fmt.Errorf("%s: activity %d: %w", op, activityID, err)
	}
	now := s.cfg.Clock.Now()
	if !act.ActiveAt(now) {
		return 0, fmt.Errorf("%s: activity %d runs %s..%s: %w", op, activityID,
			act.StartsAt.Format(time.RFC3339), act.EndsAt.Format(time.RFC3339), ErrActivityNotActive)
	}
	if qty > act.PerUserLimit {
		return 0, fmt.Errorf("%s: quantity %d over the limit of %d: %w", op, qty, act.PerUserLimit, ErrLimitExceeded)
	}
	p := Placed{
		OrderID: s.cfg.NextID(), LineID: s.cfg.NextID(),
		UserID: userID, ActivityID: activityID, SKUID: act.SKUID,
		Quantity: qty, UnitPrice: act.Price, IdempotencyKey: idemKey,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.PaymentWindow),
	}
	res, err := s.cfg.Inventory.Reserve(ctx, Reservation{
		ActivityID: activityID, UserID: userID, Quantity: qty,
		OrderID: p.OrderID, IdempotencyKey: idemKey, ExpiresAt: p.ExpiresAt,
	})
	if err != nil {
		if !definite(err) {
			// The reservation may have been made before the answer was
			// lost. Releasing our own fresh id undoes it or does nothing;
			// nothing was published, so no consumer can have marked it.
			_ = s.release(ctx, p, "reserve failed")
		}
		return 0, fmt.Errorf("%s: reserve: %w", op, err)
	}
	if res.Replayed {
		if err := s.awaitReplayed(ctx, res.OrderID); err != nil {
			return 0, fmt.Errorf("%s: replay of order %d: %w", op, res.OrderID, err)
		}
		return res.OrderID, nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), placeTimeout)
	defer cancel()
	if err := s.cfg.Pending.Put(pctx, p); err != nil {
		_ = s.release(ctx, p, "pending record failed")
		return 0, fmt.Errorf("%s: pending record: %v: %w", op, err, ErrUnavailable)
	}
	perr := s.cfg.Publisher.Publish(pctx, p)
	if perr == nil {
		// The mark is what tells the expiry worker that the order was
		// accepted and must wait for the consumer however long it lags;
		// no order is answered 202 without it. A failed mark is handled
		// like a failed publish: the release decides against the
		// consumer whether the order stands.
		if merr := s.cfg.Pending.MarkPublished(pctx, p.OrderID); merr != nil {
			perr = fmt.Errorf("published mark: %w", merr)
		}
	}
	if perr != nil {
		// The error may be ambiguous: a timeout after the broker appended
		// the event. The inventory decides atomically between this
		// release and the consumer's mark, so either the order stands
		// (and keeps its stock) or the stock goes back and a late
		// delivery is dropped; never both.
		rerr := s.release(ctx, p, "publish failed")
		if errors.Is(rerr, ErrAlreadyOrdered) {
			s.cfg.Logger.InfoContext(ctx, "publish reported an error but the order was consumed",
				"order_id", p.OrderID, "publish_err", perr)
			s.cfg.Observer.Placed(KindSeckill)
			return p.OrderID, nil
		}
		if rerr == nil {
			if derr := s.cfg.Pending.Delete(pctx, p); derr != nil {
				s.cfg.Logger.WarnContext(ctx, "pending record left behind", "order_id", p.OrderID, "err", derr)
			}
		}
		// When the release failed too, whether the order exists is
		// unknown until the event is consumed (then it is stored and
		// keeps its stock) or the reservation expires: the expiry worker
		// releases it then. The pending record stays meanwhile, so a
		// stored order shows as PROCESSING rather than missing.
		return 0, fmt.Errorf("%s: publish: %v: %w", op, perr, ErrUnavailable)
	}
	s.cfg.Observer.Placed(KindSeckill)
	return p.OrderID, nil
}

// errGone says that a replayed request's order is neither published nor
// stored and its pending record is gone: the first request failed and
// released it.
var errGone = errors.New("the first request's order was released")

// awaitReplayed returns once the order a replayed request is answered
// with is on its way: published (marked so) or stored. A replay can
// arrive while the first request is still publishing, and that publish
// may yet fail and release the order; answering its id before then could
// hand the buyer an order that never exists. It fails with ErrUnavailable
// (the client retries; after a release its key reserves afresh) when the
// order was released or is not on its way within ReplayWait.
func (s *Service) awaitReplayed(ctx context.Context, orderID int64) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ReplayWait)
	defer cancel()
	tick := time.NewTicker(replayPoll)
	defer tick.Stop()
	seen := false // whether the first request's pending record was seen
	for {
		done, err := s.onItsWay(wctx, orderID, &seen)
		if err != nil {
			return fmt.Errorf("%v: %w", err, ErrUnavailable)
		}
		if done {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("not on its way after %s: %v: %w", s.cfg.ReplayWait, wctx.Err(), ErrUnavailable)
		case <-tick.C:
		}
	}
}

// onItsWay reports whether orderID is published or stored, and sets *seen
// once its pending record was there. The first request writes that record
// right after its reservation and deletes it only after a release (the
// consumer deletes it after storing the order, which the read of the store
// that follows then finds), so a record seen and gone while nothing is
// stored fails with errGone. A record not seen yet may not be written yet.
func (s *Service) onItsWay(ctx context.Context, orderID int64, seen *bool) (bool, error) {
	published, err := s.cfg.Pending.Published(ctx, orderID)
	if err != nil || published {
		return published, err
	}
	_, err = s.cfg.Pending.Get(ctx, orderID)
	switch {
	case err == nil:
		*seen = true
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	gone := err != nil
	_, err = s.cfg.Store.Order(ctx, orderID)
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, ErrNotFound):
		return false, err
	case gone && *seen:
		return false, errGone
	}
	return false, nil
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
func (s *Service) release(ctx context.Context, p Placed, why string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	err := s.cfg.Inventory.ReleaseUnpublished(rctx, p.ActivityID, p.OrderID)
	if err != nil && !errors.Is(err, ErrAlreadyOrdered) {
		s.cfg.Logger.ErrorContext(ctx, "release after failed placement failed: stock held until the reservation expires",
			"why", why, "order_id", p.OrderID, "activity_id", p.ActivityID, "err", err)
	}
	return err
}

// GetOrder returns the order: the stored one, or, while it is in flight,
// the PROCESSING order its event describes. userID, when not zero, must
// own it (ErrForbidden otherwise).
func (s *Service) GetOrder(ctx context.Context, orderID, userID int64) (Order, error) {
	const op = "get order"
	if orderID <= 0 || userID < 0 {
		return Order{}, fmt.Errorf("%s: %w: ids must be positive", op, ErrInvalid)
	}
	o, err := s.find(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, err)
	}
	if userID != 0 && o.UserID != userID {
		return Order{}, fmt.Errorf("%s %d: %w", op, orderID, ErrForbidden)
	}
	return o, nil
}

func (s *Service) find(ctx context.Context, orderID int64) (Order, error) {
	o, err := s.cfg.Store.Order(ctx, orderID)
	if !errors.Is(err, ErrNotFound) {
		return o, err
	}
	p, err := s.cfg.Pending.Get(ctx, orderID)
	if err == nil {
		return p.Order(StatusProcessing), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Order{}, err
	}
	// The consumer stores an order before it drops the pending record, so
	// an order that left Redis between the two reads is in Postgres now.
	return s.cfg.Store.Order(ctx, orderID)
}

// ListOrders returns the user's orders newest first: the in-flight ones
// and up to ListLimit stored ones.
func (s *Service) ListOrders(ctx context.Context, userID int64) ([]Order, error) {
	const op = "list orders"
	if userID <= 0 {
		return nil, fmt.Errorf("%s: %w: user id must be positive", op, ErrInvalid)
	}
	// Pending first: an order stored in between then shows up in the
	// stored list rather than in neither.
	pending, err := s.cfg.Pending.UserPending(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	stored, err := s.cfg.Store.UserOrders(ctx, userID, ListLimit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	seen := make(map[int64]bool, len(stored))
	for _, o := range stored {
		seen[o.ID] = true
	}
	out := stored
	for _, p := range pending {
		if !seen[p.OrderID] {
			out = append(out, p.Order(StatusProcessing))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}
