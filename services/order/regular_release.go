package order

import (
	"context"
	"errors"
	"fmt"
	"time"
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
