package inventory

import (
	"context"
	"fmt"
	"time"
)

// Service validates requests and hands them to the store.
type Service struct {
	store Store
}

// NewService returns a Service over store.
func NewService(store Store) *Service { return &Service{store: store} }

// Preheat loads an activity's stock and per-user limit, its stock split
// into buckets on different Redis slots (0 or 1: one slot). Repeating it
// never resets stock that has already been sold.
func (s *Service) Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) (int64, error) {
	if err := validateIDs(namedID{"activity", activityID}); err != nil {
		return 0, fmt.Errorf("preheat: %w", err)
	}
	if stock < 0 || stock > MaxStock {
		return 0, fmt.Errorf("preheat: %w: stock %d is outside 0..%d", ErrInvalid, stock, MaxStock)
	}
	if perUserLimit < 1 {
		return 0, fmt.Errorf("preheat: %w: per-user limit %d must be positive", ErrInvalid, perUserLimit)
	}
	if buckets == 0 {
		buckets = 1
	}
	if buckets < 1 || buckets > MaxBuckets {
		return 0, fmt.Errorf("preheat: %w: buckets %d is outside 1..%d", ErrInvalid, buckets, MaxBuckets)
	}
	return s.store.Preheat(ctx, activityID, stock, perUserLimit, buckets)
}

// Reserve takes stock for one order, or answers a replay with the first
// order's id.
func (s *Service) Reserve(ctx context.Context, r ReserveRequest) (ReserveResult, error) {
	if err := r.Validate(); err != nil {
		return ReserveResult{}, fmt.Errorf("reserve: %w", err)
	}
	return s.store.Reserve(ctx, r)
}

// ReserveBatch decides each request as Reserve does and answers in the
// same order; a request that is invalid is refused on its own, the others
// still reserve. It fails as a whole only when rs is empty or too long, or
// the store cannot be reached.
func (s *Service) ReserveBatch(ctx context.Context, rs []ReserveRequest) ([]ReserveAnswer, error) {
	return batch(ctx, "reserve", rs, MaxReserveBatch, ReserveRequest.Validate, s.store.ReserveBatch,
		func(err error) ReserveAnswer { return ReserveAnswer{Err: err} })
}

// batch validates each of items on its own, hands the valid ones to run
// in one call and answers in the order of items, an invalid item with
// refuse's answer for its error. It fails as a whole only when items is
// empty or longer than most, or run fails.
func batch[T, A any](ctx context.Context, op string, items []T, most int, validate func(T) error,
	run func(context.Context, []T) ([]A, error), refuse func(error) A) ([]A, error) {
	if len(items) == 0 || len(items) > most {
		return nil, fmt.Errorf("%s batch: %w: %d items, want 1..%d", op, ErrInvalid, len(items), most)
	}
	answers := make([]A, len(items))
	valid := make([]T, 0, len(items))
	at := make([]int, 0, len(items)) // at[j] is the index in items of valid[j]
	for i, it := range items {
		if err := validate(it); err != nil {
			answers[i] = refuse(fmt.Errorf("%s: %w", op, err))
			continue
		}
		valid = append(valid, it)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return answers, nil
	}
	got, err := run(ctx, valid)
	if err != nil {
		return nil, err
	}
	for j, a := range got {
		answers[at[j]] = a
	}
	return answers, nil
}

// Release gives a reservation's stock and the buyer's limit back. It
// reports false when the reservation was already released.
func (s *Service) Release(ctx context.Context, activityID, orderID int64) (bool, error) {
	if err := validateIDs(namedID{"activity", activityID}, namedID{"order", orderID}); err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return s.store.Release(ctx, activityID, orderID)
}

// ReleaseBatch releases each order as Release would, in one call, and
// answers in the order of refs; an invalid reference fails alone.
func (s *Service) ReleaseBatch(ctx context.Context, refs []OrderRef) ([]ReleaseAnswer, error) {
	return batch(ctx, "release", refs, MaxReleaseBatch, OrderRef.validate, s.store.ReleaseBatch,
		func(err error) ReleaseAnswer { return ReleaseAnswer{Err: err} })
}

// validate checks both ids of the reference.
func (r OrderRef) validate() error {
	return validateIDs(namedID{"activity", r.ActivityID}, namedID{"order", r.OrderID})
}

// ReleaseUnpublished is the release of a caller that could not publish the
// order's event, and cannot know whether the event reached the log anyway
// (a timeout after the broker appended it). It fails with
// ErrAlreadyOrdered, changing nothing, when the order consumer has already
// marked the reservation ordered. Otherwise it releases as Release does and
// records the release as unpublished, so that MarkOrdered tells the
// consumer to drop a late delivery of the event.
func (s *Service) ReleaseUnpublished(ctx context.Context, activityID, orderID int64) (bool, error) {
	if err := validateIDs(namedID{"activity", activityID}, namedID{"order", orderID}); err != nil {
		return false, fmt.Errorf("release unpublished: %w", err)
	}
	return s.store.ReleaseUnpublished(ctx, activityID, orderID)
}

// MarkOrdered marks the reservations of orders the order consumer is about
// to store and answers, in the same order, whether each may be stored.
// Marking is idempotent, so a redelivered batch gets the same answers.
func (s *Service) MarkOrdered(ctx context.Context, refs []OrderRef) ([]MarkOutcome, error) {
	if len(refs) > MaxMarkOrdered {
		return nil, fmt.Errorf("mark ordered: %w: %d orders, at most %d per call", ErrInvalid, len(refs), MaxMarkOrdered)
	}
	for i, r := range refs {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("mark ordered: order #%d: %w", i, err)
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return s.store.MarkOrdered(ctx, refs)
}

// Confirm marks a reservation as paid, so it can never be released.
func (s *Service) Confirm(ctx context.Context, activityID, orderID int64) error {
	if err := validateIDs(namedID{"activity", activityID}, namedID{"order", orderID}); err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	return s.store.Confirm(ctx, activityID, orderID)
}

// Stock returns an activity's remaining and total stock.
func (s *Service) Stock(ctx context.Context, activityID int64) (Stock, error) {
	if err := validateIDs(namedID{"activity", activityID}); err != nil {
		return Stock{}, fmt.Errorf("stock: %w", err)
	}
	return s.store.Stock(ctx, activityID)
}

// Reservation returns the reservation of an order.
func (s *Service) Reservation(ctx context.Context, activityID, orderID int64) (Reservation, error) {
	if err := validateIDs(namedID{"activity", activityID}, namedID{"order", orderID}); err != nil {
		return Reservation{}, fmt.Errorf("reservation: %w", err)
	}
	return s.store.Reservation(ctx, activityID, orderID)
}

// RestoreLimit gives quantity units of a refunded order back to its
// buyer's per-user limit, so that after a full refund the buyer may buy
// again. It is idempotent by refundID and reports false on a repeat.
func (s *Service) RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) (bool, error) {
	if err := validateIDs(namedID{"activity", activityID}, namedID{"order", orderID}, namedID{"refund", refundID}); err != nil {
		return false, fmt.Errorf("restore limit: %w", err)
	}
	if quantity < 1 || quantity > MaxQuantity {
		return false, fmt.Errorf("restore limit: %w: quantity %d is outside 1..%d", ErrInvalid, quantity, MaxQuantity)
	}
	return s.store.RestoreLimit(ctx, activityID, orderID, refundID, quantity)
}

// ClaimDue takes up to limit entries due at now off the expiry queues of
// activityIDs (of every preheated activity when empty) for one worker,
// under a lease of the given length. No other claim gets an entry while
// its lease holds; when the lease lapses unsettled (the worker died), a
// later claim takes the entry again. now comes from the caller's clock.
func (s *Service) ClaimDue(ctx context.Context, activityIDs []int64, now time.Time, limit int, lease time.Duration) ([]DueEntry, error) {
	for _, id := range activityIDs {
		if err := validateIDs(namedID{"activity", id}); err != nil {
			return nil, fmt.Errorf("claim due: %w", err)
		}
	}
	switch {
	case now.UnixMilli() <= 0:
		return nil, fmt.Errorf("claim due: %w: now is required", ErrInvalid)
	case limit < 1 || limit > MaxDueEntries:
		return nil, fmt.Errorf("claim due: %w: limit %d is outside 1..%d", ErrInvalid, limit, MaxDueEntries)
	case lease < time.Millisecond:
		return nil, fmt.Errorf("claim due: %w: lease %s must be at least 1ms", ErrInvalid, lease)
	}
	return s.store.ClaimDue(ctx, activityIDs, now, limit, now.Add(lease))
}

// AckDue removes claimed entries whose work is done and reports, per
// entry, whether the claim was still the caller's.
func (s *Service) AckDue(ctx context.Context, entries []DueEntry) ([]bool, error) {
	if err := validateDue(entries); err != nil {
		return nil, fmt.Errorf("ack due: %w", err)
	}
	return s.store.SettleDue(ctx, entries, time.Time{})
}

// RequeueDue puts claimed entries back in their queues, due at dueAt, and
// reports, per entry, whether the claim was still the caller's.
func (s *Service) RequeueDue(ctx context.Context, entries []DueEntry, dueAt time.Time) ([]bool, error) {
	if err := validateDue(entries); err != nil {
		return nil, fmt.Errorf("requeue due: %w", err)
	}
	if dueAt.UnixMilli() <= 0 {
		return nil, fmt.Errorf("requeue due: %w: due_at is required", ErrInvalid)
	}
	return s.store.SettleDue(ctx, entries, dueAt)
}

// Fenced returns the activities that are fenced: Redis restarted or
// failed over since their state was loaded or rebuilt, so they sell
// nothing until RebuildStock rebuilds them.
func (s *Service) Fenced(ctx context.Context) ([]int64, error) {
	return s.store.Fenced(ctx)
}

// RebuildStock rewrites a fenced activity's stock, per-user counts,
// reservations and expiry queue from its stored orders, atomically, and
// unfences it. A live activity is left alone (Rebuilt false).
func (s *Service) RebuildStock(ctx context.Context, r Rebuild) (RebuildResult, error) {
	if err := r.validate(); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild stock: %w", err)
	}
	return s.store.RebuildStock(ctx, r)
}

func (r Rebuild) validate() error {
	if err := validateIDs(namedID{"activity", r.ActivityID}); err != nil {
		return err
	}
	switch {
	case r.Total < 0 || r.Total > MaxStock:
		return fmt.Errorf("%w: total %d is outside 0..%d", ErrInvalid, r.Total, MaxStock)
	case r.PerUserLimit < 1:
		return fmt.Errorf("%w: per-user limit %d must be positive", ErrInvalid, r.PerUserLimit)
	case len(r.Orders) > MaxRebuildOrders:
		return fmt.Errorf("%w: %d orders, at most %d per rebuild", ErrInvalid, len(r.Orders), MaxRebuildOrders)
	}
	seen := make(map[int64]bool, len(r.Orders))
	for i, o := range r.Orders {
		if err := validateIDs(namedID{"order", o.OrderID}, namedID{"user", o.UserID}); err != nil {
			return fmt.Errorf("order #%d: %w", i, err)
		}
		if seen[o.OrderID] {
			return fmt.Errorf("%w: order %d appears twice", ErrInvalid, o.OrderID)
		}
		seen[o.OrderID] = true
		if err := validateIdempotencyKey(o.IdempotencyKey); err != nil {
			return fmt.Errorf("order %d: %w", o.OrderID, err)
		}
		switch {
		case o.Quantity < 1 || o.Quantity > MaxQuantity:
			return fmt.Errorf("%w: order %d: quantity %d is outside 1..%d", ErrInvalid, o.OrderID, o.Quantity, MaxQuantity)
		case o.Status != StatusReserved && o.Status != StatusConfirmed && o.Status != StatusReleased:
			return fmt.Errorf("%w: order %d: status %q", ErrInvalid, o.OrderID, o.Status)
		case o.Restored < 0 || o.Restored > o.Quantity:
			return fmt.Errorf("%w: order %d: %d units restored of %d", ErrInvalid, o.OrderID, o.Restored, o.Quantity)
		case o.ExpiresAt.UnixMilli() <= 0:
			return fmt.Errorf("%w: order %d: expires_at is required", ErrInvalid, o.OrderID)
		}
	}
	return nil
}

// validateDue checks entries handed back to be settled.
func validateDue(entries []DueEntry) error {
	if len(entries) > MaxDueEntries {
		return fmt.Errorf("%w: %d entries, at most %d per call", ErrInvalid, len(entries), MaxDueEntries)
	}
	for i, e := range entries {
		if err := validateIDs(namedID{"activity", e.ActivityID}, namedID{"order", e.OrderID}); err != nil {
			return fmt.Errorf("entry #%d: %w", i, err)
		}
		if e.LeaseUntil.UnixMilli() <= 0 {
			return fmt.Errorf("%w: entry #%d: lease_until is required", ErrInvalid, i)
		}
	}
	return nil
}
