package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/platform/sweep"
)

// RegularHold is what an ended regular order holds until it is given
// back: its product stock, and its coupon unless CouponID is zero.
type RegularHold struct {
	OrderID  int64
	CouponID int64
}

// RegularReleases records that ended regular orders gave back what they
// held.
type RegularReleases interface {
	// MarkRegularReleased marks those of ids that are ended (EXPIRED or
	// CANCELLED) regular orders as having given back their stock and
	// coupon; marking twice is harmless.
	MarkRegularReleased(ctx context.Context, ids []int64) error
}

// RegularEnds finds the regular orders the expiry worker must end or give
// back (Postgres). Regular orders have no entry in the inventory's queue:
// their stock is the product service's.
type RegularEnds interface {
	RegularReleases
	// ExpireRegular moves up to limit regular orders that are
	// PENDING_PAYMENT with a deadline at or before now to EXPIRED, in one
	// conditional UPDATE, and returns the ids it moved.
	ExpireRegular(ctx context.Context, now time.Time, limit int) ([]int64, error)
	// UnreleasedRegular returns up to limit ended regular orders not yet
	// marked released with ids above after, by id.
	UnreleasedRegular(ctx context.Context, after int64, limit int) ([]RegularHold, error)
	// Stored returns those of ids that are stored orders, of any kind.
	Stored(ctx context.Context, ids []int64) ([]int64, error)
}

// Holds lists the orders that hold something a regular checkout takes
// before it stores its order: product stock (the product service's
// ListHeldStock) or a coupon (marketing's ListUsedCoupons).
type Holds interface {
	// Holding returns the page of holding orders q asks for, by the time
	// the hold was taken and then by order id (sweep.TimeKey: At that
	// time, ID the order); the ages are on the clock that stamped them.
	Holding(ctx context.Context, q sweep.AgedQuery) ([]sweep.TimeKey, error)
}

// giveBackRegular releases the product stock and the coupon of an ended
// regular order. Both releases are keyed by the order id and idempotent,
// so whoever finishes first (a cancel, any expiry worker) wins and the
// others give back nothing more.
func giveBackRegular(ctx context.Context, catalog Catalog, pricing Pricing, h RegularHold) error {
	if err := catalog.ReleaseStock(ctx, h.OrderID); err != nil {
		return fmt.Errorf("release stock of order %d: %w", h.OrderID, err)
	}
	if h.CouponID == 0 {
		return nil
	}
	if err := pricing.ReleaseCoupon(ctx, h.OrderID); err != nil {
		return fmt.Errorf("release coupon %d of order %d: %w", h.CouponID, h.OrderID, err)
	}
	return nil
}

// RunRegularOnce expires regular orders and gives back what ended ones
// hold, returning the larger of the two batches' sizes. It does nothing
// when the Expirer has no Regular store.
//
// One conditional UPDATE moves up to Batch regular orders past their
// deadline from PENDING_PAYMENT to EXPIRED; a racing cancel or payment
// either moved the row first or finds it changed, so exactly one
// transition wins. Then up to Batch ended (EXPIRED or CANCELLED) regular
// orders that are not marked released have their stock and coupon
// released and are marked. Marking comes after the releases, so a worker
// that dies in between (or a release that fails, or a cancel whose
// release failed) leaves the order unmarked and the next sweep, of any
// worker, finishes it; releasing again is harmless.
func (e *Expirer) RunRegularOnce(ctx context.Context) (int, error) {
	if e.cfg.Regular == nil {
		return 0, nil
	}
	expired, err := e.cfg.Regular.ExpireRegular(ctx, e.cfg.Clock.Now(), e.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("expire regular orders: %w", err)
	}
	e.cfg.Observer.Ended(ctx, KindRegular, StatusExpired, len(expired))
	// The next page of them (platform/sweep): orders whose give-back
	// keeps failing do not hold back the ones behind them.
	ended, err := e.cfg.Regular.UnreleasedRegular(ctx, e.unreleased.After(ctx), e.cfg.Batch)
	if err != nil {
		return len(expired), fmt.Errorf("regular orders to give back: %w", err)
	}
	ids := make([]int64, len(ended))
	for i, h := range ended {
		ids[i] = h.OrderID
	}
	e.unreleased.Read(ctx, ids, e.cfg.Batch)
	done := make([]bool, len(ended))
	e.inParallel(len(ended), func(i int) {
		if err := giveBackRegular(ctx, e.cfg.Catalog, e.cfg.Pricing, ended[i]); err != nil {
			e.cfg.Logger.WarnContext(ctx, "give back of an ended regular order failed; retried at the next sweep",
				"order_id", ended[i].OrderID, "err", err)
			return
		}
		done[i] = true
	})
	var released []int64
	for i, h := range ended {
		if done[i] {
			released = append(released, h.OrderID)
		}
	}
	var errs []error
	if len(released) > 0 {
		if err := e.cfg.Regular.MarkRegularReleased(ctx, released); err != nil {
			errs = append(errs, fmt.Errorf("mark %d regular orders released: %w", len(released), err))
		}
	}
	if n := len(ended) - len(released); n > 0 {
		errs = append(errs, fmt.Errorf("%d ended regular orders not given back, retried at the next sweep", n))
	}
	return max(len(expired), len(ended)), errors.Join(errs...)
}

// RunStrayHoldsOnce gives back a page of the regular stock, and one of
// the coupons, held for orders that were never stored, returning the
// larger page's size. It does nothing without Regular, and a kind of hold
// whose lister (HeldStock, UsedCoupons) is not set is not swept.
//
// A checkout takes its stock and its coupon (at once) before it stores
// its order, and gives them back when a step fails. A checkout that dies
// in between (its process killed), or whose give-back fails, or that
// cannot tell whether its order was stored, leaves them held for an order
// that no expiry will ever end. A hold older than StrayAfter whose order
// is not stored now never will be (a checkout stores its order within
// its call budget, seconds), so it is released, by the order id and
// idempotently. Stored orders keep theirs: they end through
// RunRegularOnce, and a paid one keeps its stock and coupon for good.
//
// Each hold is looked at once, as it comes of age: the pages walk the
// holds by the time they were taken (sweep.Mark, one per kind), and a
// mark moves past a page up to its first failure, which the next round
// retries. A process's first page starts StrayLookback back, so what
// came of age while no worker ran is found, but a day of paid orders is
// not read again at every start; after it, the mark alone says where a
// page starts, so a hold behind a failure that lasts is still found.
func (e *Expirer) RunStrayHoldsOnce(ctx context.Context) (int, error) {
	if e.cfg.Regular == nil {
		return 0, nil
	}
	// One sweep at a time per Expirer: its Run goroutines would read the
	// same pages and release each hold twice.
	if !e.strayBusy.TryLock() {
		return 0, nil
	}
	defer e.strayBusy.Unlock()
	type kind struct {
		holds   Holds
		mark    *sweep.Mark
		hold    string
		release func(context.Context, int64) error
	}
	var kinds []kind
	if e.cfg.HeldStock != nil && e.cfg.Catalog != nil {
		kinds = append(kinds, kind{e.cfg.HeldStock, &e.strayStock, HoldStock, e.cfg.Catalog.ReleaseStock})
	}
	if e.cfg.UsedCoupons != nil && e.cfg.Pricing != nil {
		kinds = append(kinds, kind{e.cfg.UsedCoupons, &e.strayCoupons, HoldCoupon, e.cfg.Pricing.ReleaseCoupon})
	}
	most := 0
	var errs []error
	for _, k := range kinds {
		n, err := e.giveBackStray(ctx, k.holds, k.mark, k.hold, k.release)
		most = max(most, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s held for orders never stored: %w", k.hold, err))
		}
	}
	return most, errors.Join(errs...)
}

// giveBackStray reads the next page of holds of kind hold after mark,
// releases those whose order is not stored, and moves mark past the page
// up to its first failure, returning the page's size.
func (e *Expirer) giveBackStray(ctx context.Context, holds Holds, mark *sweep.Mark, hold string,
	release func(context.Context, int64) error) (int, error) {
	q := sweep.AgedQuery{OlderThan: e.cfg.StrayAfter, After: mark.After(ctx), Limit: e.cfg.Batch}
	if q.After == (sweep.TimeKey{}) {
		// A process's first page starts StrayLookback back; from then on
		// the mark alone says where, however long a failure holds it.
		q.YoungerThan = e.cfg.StrayAfter + e.cfg.StrayLookback
	}
	page, err := holds.Holding(ctx, q)
	if err != nil || len(page) == 0 {
		return 0, err
	}
	stored, err := e.cfg.Regular.Stored(ctx, sweep.Keys(page, func(k sweep.TimeKey) int64 { return k.ID }))
	if err != nil {
		return len(page), fmt.Errorf("which of %d holding orders are stored: %w", len(page), err)
	}
	isStored := make(map[int64]bool, len(stored))
	for _, id := range stored {
		isStored[id] = true
	}
	failed := make([]error, len(page))
	e.inParallel(len(page), func(i int) {
		id := page[i].ID
		if isStored[id] {
			return
		}
		if err := release(ctx, id); err != nil {
			failed[i] = fmt.Errorf("order %d: %w", id, err)
			return
		}
		e.cfg.Observer.StrayReleased(ctx, hold)
		e.cfg.Logger.WarnContext(ctx, "gave back a hold of an order that was never stored",
			"hold", hold, "order_id", id, "held_since", page[i].At)
	})
	for i, k := range page {
		if failed[i] != nil {
			break
		}
		mark.Done(ctx, k)
	}
	return len(page), errors.Join(failed...)
}
