package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/proto/limits"
)

// CartLine is a line of a regular cart: a SKU and how many units.
type CartLine struct {
	SKUID    int64
	Quantity int64
}

// MaxCartLines bounds the lines of a regular order: a cart's bound, the
// one marketing and product hold their lines to.
const MaxCartLines = limits.MaxLines

// Catalog is what regular orders need of the product service.
type Catalog interface {
	// Price returns the SKU's regular unit price (ErrNotFound).
	Price(ctx context.Context, skuID int64) (int64, error)
	// ReserveStock takes the lines' regular stock for the order, all or
	// nothing (ErrSoldOut, ErrNotFound); repeating it for the same order
	// takes nothing more.
	ReserveStock(ctx context.Context, orderID int64, lines []CartLine) error
	// ReleaseStock gives back what the order reserved; repeating it is
	// harmless.
	ReleaseStock(ctx context.Context, orderID int64) error
}

// Pricing is the marketing service.
type Pricing interface {
	// Quote prices lines (SKU, quantity, unit price) for the user with the
	// active promotions and the coupon (0: none), each discount
	// apportioned to the lines. It answers an order whose Lines,
	// Promotions, CouponID and sums are set. orderID, when set, lets a
	// coupon that order already consumed count. A coupon that does not
	// apply fails with ErrConflict.
	Quote(ctx context.Context, userID int64, lines []Line, couponID, orderID int64) (Order, error)
	// ConsumeCoupon marks the user's coupon used by the order; repeating
	// it for the same order is harmless.
	ConsumeCoupon(ctx context.Context, userID, couponID, orderID int64) error
	// ReleaseCoupon makes the coupon the order consumed available again;
	// repeating it is harmless.
	ReleaseCoupon(ctx context.Context, orderID int64) error
}

// RegularStore stores regular orders (Postgres).
type RegularStore interface {
	// InsertRegular stores o with its lines and promotions. When the
	// user's idempotency key already has an order, it stores nothing and
	// answers that order with created = false.
	InsertRegular(ctx context.Context, o Order) (stored Order, created bool, err error)
	// RegularByKey returns the user's regular order with the key, or
	// ErrNotFound.
	RegularByKey(ctx context.Context, userID int64, key string) (Order, error)
	// RegularReleases marks a cancelled order's stock and coupon given
	// back, so the expiry worker's sweep leaves it alone.
	RegularReleases
}

// CheckoutConfig holds what the regular checkout needs.
type CheckoutConfig struct {
	Catalog Catalog
	Pricing Pricing
	Regular RegularStore
	Clock   clock.Clock
	// NextID hands out order and line ids (a snowflake generator's Next).
	NextID func() int64
	// PaymentWindow is how long a buyer has to pay (default 15m).
	PaymentWindow time.Duration
	// Observer hears of placed and stored regular orders (nil: nobody).
	Observer Observer
	Logger   *slog.Logger
}

// Checkout prices regular carts and turns them into regular orders.
type Checkout struct{ cfg CheckoutConfig }

// NewCheckout returns the checkout use case over cfg.
func NewCheckout(cfg CheckoutConfig) *Checkout {
	if cfg.PaymentWindow <= 0 {
		cfg.PaymentWindow = DefaultPaymentWindow
	}
	cfg.Logger, cfg.Observer = orDiscard(cfg.Logger), orNop(cfg.Observer)
	return &Checkout{cfg: cfg}
}

// QuoteRegularOrder prices the cart as CreateRegularOrder would, without
// reserving or storing anything.
func (c *Checkout) QuoteRegularOrder(ctx context.Context, userID int64, lines []CartLine, couponID int64) (Order, error) {
	const op = "quote regular order"
	if err := validateCart(userID, lines, couponID); err != nil {
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	o, err := c.price(ctx, userID, lines, couponID, 0)
	if err != nil {
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	return o, nil
}

// MaxCheckout bounds a regular checkout, its insert included, whatever
// its caller's deadline: the expiry worker gives back the holds of an
// order that is not stored StrayAfter (at least a minute) after they were
// taken (Expirer.RunStrayHoldsOnce).
const MaxCheckout = 30 * time.Second

// CreateRegularOrder prices the cart, reserves its regular stock,
// consumes the coupon and stores a REGULAR order PENDING_PAYMENT; it
// expires after the payment window like any order (Expirer.RunRegularOnce),
// which gives its stock and coupon back. The same user, key and cart
// answer the first order; the key with another cart fails with
// ErrKeyReused. A step that fails undoes the earlier ones, so a failed
// checkout holds neither stock nor coupon.
func (c *Checkout) CreateRegularOrder(ctx context.Context, userID int64, lines []CartLine, couponID int64, idemKey string) (Order, error) {
	const op = "create regular order"
	if err := validateCart(userID, lines, couponID); err != nil {
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkKey(idemKey); err != nil {
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	if c.cfg.Catalog == nil || c.cfg.Pricing == nil || c.cfg.Regular == nil {
		return Order{}, fmt.Errorf("%s: regular orders are not configured: %w", op, ErrUnavailable)
	}
	// The expiry worker gives back what a checkout took for an order that
	// is not stored StrayAfter later; no checkout may still be running
	// then, whoever its caller and whatever deadline it set.
	ctx, cancel := context.WithTimeout(ctx, MaxCheckout)
	defer cancel()
	// A checkout is a chain of calls, and on a busy machine each link
	// waits its turn for a core (docs/benchmarks.md, "Half a machine"):
	// what needs nothing of each other runs at once. The key's look-up
	// beside the lines' prices (a repeat wastes the prices' look-ups);
	// then the quote; then the stock and the coupon together.
	orderID := c.cfg.NextID()
	var (
		prev   Order
		keyErr error
		keyed  errgroup.Group
	)
	keyed.Go(func() error {
		prev, keyErr = c.cfg.Regular.RegularByKey(ctx, userID, idemKey)
		return nil
	})
	priced, priceErr := c.unitPrices(ctx, lines)
	_ = keyed.Wait() // its error is keyErr
	switch {
	case keyErr == nil:
		return repeatCheckout(op, prev, lines, couponID)
	case !errors.Is(keyErr, ErrNotFound):
		return Order{}, fmt.Errorf("%s: %w", op, keyErr)
	case priceErr != nil:
		return Order{}, fmt.Errorf("%s: %w", op, priceErr)
	}
	o, err := c.quote(ctx, userID, priced, couponID, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := c.take(ctx, userID, orderID, lines, couponID); err != nil {
		// A first attempt with the key still under way (the buyer's
		// retry raced it) may hold the last units or the coupon: the
		// key then answers its order, not this attempt's refusal.
		if first, found, _ := c.lookByKey(ctx, userID, idemKey); found {
			return repeatCheckout(op, first, lines, couponID)
		}
		return Order{}, fmt.Errorf("%s: %w", op, err)
	}
	// Postgres keeps microseconds: the answer equals every later read.
	now := c.cfg.Clock.Now().Truncate(time.Microsecond)
	o.ID, o.UserID, o.Kind, o.Status = orderID, userID, KindRegular, StatusPendingPayment
	o.IdempotencyKey, o.CreatedAt, o.ExpiresAt = idemKey, now, now.Add(c.cfg.PaymentWindow)
	for i := range o.Lines {
		o.Lines[i].ID = c.cfg.NextID()
	}
	stored, created, err := c.cfg.Regular.InsertRegular(ctx, o)
	if err != nil {
		// The error may hide a commit that landed (the deadline ran out,
		// or the answer was lost, during COMMIT): the order then stands,
		// payable, with its stock and coupon, and giving them back would
		// sell the units twice and free the coupon. They go back only
		// once a look finds no order of this attempt, and never on a
		// COMMIT that got no answer (ErrCommitUnknown): that transaction
		// may still commit after the look, so its holds wait for the
		// expiry worker, which gives them back once no order has come
		// (FLASHSALE_EXPIRY_STRAY_AFTER).
		first, found, answered := c.lookByKey(ctx, userID, idemKey)
		switch {
		case found && first.ID == orderID:
			c.cfg.Observer.Placed(ctx, KindRegular)
			c.cfg.Observer.Stored(ctx, KindRegular, 1)
			return first, nil
		case found:
			c.undoRegular(ctx, orderID, true)
			return repeatCheckout(op, first, lines, couponID)
		case answered && !errors.Is(err, ErrCommitUnknown):
			c.undoRegular(ctx, orderID, true)
		default:
			c.cfg.Logger.ErrorContext(ctx, "regular order's store failed and whether it landed is unknown (the look failed, or its COMMIT got no answer): its stock and coupon stay held until the expiry worker finds no order (FLASHSALE_EXPIRY_STRAY_AFTER)",
				"order_id", orderID, "err", err)
		}
		return Order{}, fmt.Errorf("%s: store: %v: %w", op, err, ErrUnavailable)
	}
	if !created {
		// A concurrent attempt with the same key stored its order first;
		// this attempt's stock and coupon go back.
		c.undoRegular(ctx, orderID, true)
		return repeatCheckout(op, stored, lines, couponID)
	}
	// A regular order is accepted and stored in the one insert.
	c.cfg.Observer.Placed(ctx, KindRegular)
	c.cfg.Observer.Stored(ctx, KindRegular, 1)
	return stored, nil
}

// storeLookTimeout bounds the look a failed checkout takes at the store.
const storeLookTimeout = 2 * time.Second

// lookByKey looks, detached from the caller's context (which may be what
// ended), for the user's regular order with the key: found, or answered
// false when the store said there is none (not merely that it failed).
func (c *Checkout) lookByKey(ctx context.Context, userID int64, key string) (o Order, found, answered bool) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeLookTimeout)
	defer cancel()
	o, err := c.cfg.Regular.RegularByKey(lctx, userID, key)
	return o, err == nil, err == nil || errors.Is(err, ErrNotFound)
}

// repeatCheckout answers a checkout whose key already has an order: that
// order when the cart is the same (the same SKUs and quantities, in any
// order, and the same coupon), else ErrKeyReused.
func repeatCheckout(op string, first Order, lines []CartLine, couponID int64) (Order, error) {
	same := sameUnits(lines, first.Lines,
		func(l CartLine) (int64, int64) { return l.SKUID, l.Quantity },
		func(l Line) (int64, int64) { return l.SKUID, l.Quantity })
	if !same || first.CouponID != couponID {
		return Order{}, fmt.Errorf("%s: %w: it names order %d of another cart", op, ErrKeyReused, first.ID)
	}
	return first, nil
}

// undoRegular gives back what a failed checkout of orderID took: its
// stock, and its coupon when it may have consumed one. Both releases are
// keyed by the order id, so they never touch another order's stock or
// coupon, and they run detached from the caller's context, which may be
// what ended. A failure is logged: the stock then stays reserved until an
// operator releases it.
func (c *Checkout) undoRegular(ctx context.Context, orderID int64, coupon bool) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := c.cfg.Catalog.ReleaseStock(rctx, orderID); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "release of a failed regular order's stock failed", "order_id", orderID, "err", err)
	}
	if !coupon {
		return
	}
	if err := c.cfg.Pricing.ReleaseCoupon(rctx, orderID); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "release of a failed regular order's coupon failed", "order_id", orderID, "err", err)
	}
}

// priceLookups bounds a checkout's price look-ups in flight at once: a
// cart may have MaxCartLines lines.
const priceLookups = 8

// price looks up the lines' unit prices and has the marketing service
// price the cart.
func (c *Checkout) price(ctx context.Context, userID int64, lines []CartLine, couponID, orderID int64) (Order, error) {
	priced, err := c.unitPrices(ctx, lines)
	if err != nil {
		return Order{}, err
	}
	return c.quote(ctx, userID, priced, couponID, orderID)
}

// unitPrices looks up the lines' unit prices at once (up to priceLookups
// in flight), not one after another.
func (c *Checkout) unitPrices(ctx context.Context, lines []CartLine) ([]Line, error) {
	if c.cfg.Catalog == nil {
		return nil, fmt.Errorf("regular orders are not configured: %w", ErrUnavailable)
	}
	priced := make([]Line, len(lines))
	errs := make([]error, len(lines))
	var g errgroup.Group
	g.SetLimit(priceLookups)
	for i, l := range lines {
		g.Go(func() error {
			price, err := c.cfg.Catalog.Price(ctx, l.SKUID)
			priced[i], errs[i] = Line{SKUID: l.SKUID, Quantity: l.Quantity, UnitPrice: price}, err
			return nil
		})
	}
	_ = g.Wait() // the look-ups' errors are in errs
	// The first failing line in the cart's order answers, whichever
	// failed first.
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("price of sku %d: %w", lines[i].SKUID, err)
		}
	}
	return priced, nil
}

// quote has the marketing service price the priced lines.
func (c *Checkout) quote(ctx context.Context, userID int64, priced []Line, couponID, orderID int64) (Order, error) {
	if c.cfg.Pricing == nil {
		return Order{}, fmt.Errorf("regular orders are not configured: %w", ErrUnavailable)
	}
	o, err := c.cfg.Pricing.Quote(ctx, userID, priced, couponID, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("quote: %w", err)
	}
	o.UserID, o.Kind = userID, KindRegular
	return o, nil
}

// take reserves the lines' stock and consumes the coupon (if any) for
// the order, both at once. If either fails, both are given back (each
// release is keyed by the order and harmless for what was not taken), and
// the stock's error answers first: SOLD_OUT says more to a buyer than a
// coupon conflict.
func (c *Checkout) take(ctx context.Context, userID, orderID int64, lines []CartLine, couponID int64) error {
	var (
		stockErr, couponErr error
		g                   errgroup.Group
	)
	g.Go(func() error {
		stockErr = c.cfg.Catalog.ReserveStock(ctx, orderID, lines)
		return nil
	})
	if couponID != 0 {
		couponErr = c.cfg.Pricing.ConsumeCoupon(ctx, userID, couponID, orderID)
	}
	_ = g.Wait() // its error is stockErr
	if err := cmp.Or(stockErr, couponErr); err != nil {
		c.undoRegular(ctx, orderID, couponID != 0)
		return err
	}
	return nil
}

// validateCart checks what the order service needs of a regular cart: a
// user, a coupon id that is not negative, and 1..MaxCartLines lines (which
// bounds the price look-ups). The lines themselves (distinct SKUs,
// quantities) are checked by the marketing service's quote, which every
// cart goes through before anything is reserved.
func validateCart(userID int64, lines []CartLine, couponID int64) error {
	switch {
	case userID <= 0:
		return fmt.Errorf("%w: user id must be positive", ErrInvalid)
	case couponID < 0:
		return fmt.Errorf("%w: coupon id must be positive", ErrInvalid)
	case len(lines) < 1 || len(lines) > MaxCartLines:
		return fmt.Errorf("%w: %d lines, want 1..%d", ErrInvalid, len(lines), MaxCartLines)
	}
	return nil
}
