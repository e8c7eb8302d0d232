package order_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/order"
)

// checkout fakes the catalog, the marketing service and the regular
// store, records what is held, and fails the step named by failAt.
type checkout struct {
	failAt   string
	stock    map[int64]bool // orders holding stock
	coupons  map[int64]bool // orders holding the coupon
	byKey    map[string]order.Order
	conflict *order.Order // answered by InsertRegular when set
	// onReserve, when set, runs as ReserveStock is called.
	onReserve func()
}

func newCheckout(failAt string) *checkout {
	return &checkout{failAt: failAt, stock: map[int64]bool{}, coupons: map[int64]bool{}, byKey: map[string]order.Order{}}
}

var errBoom = errors.New("boom")

func (c *checkout) Price(context.Context, int64) (int64, error) { return 10_00, nil }

func (c *checkout) ReserveStock(_ context.Context, orderID int64, _ []order.CartLine) error {
	if c.onReserve != nil {
		c.onReserve()
	}
	if c.failAt == "reserve" {
		return order.ErrSoldOut
	}
	c.stock[orderID] = true
	return nil
}

func (c *checkout) ReleaseStock(_ context.Context, orderID int64) error {
	delete(c.stock, orderID)
	return nil
}

func (c *checkout) Quote(_ context.Context, _ int64, lines []order.Line, couponID, _ int64) (order.Order, error) {
	o := order.Order{CouponID: couponID}
	for _, l := range lines {
		amount := l.UnitPrice * l.Quantity
		o.Lines = append(o.Lines, order.Line{SKUID: l.SKUID, Quantity: l.Quantity, UnitPrice: l.UnitPrice, Amount: amount, Payable: amount})
		o.Total += amount
	}
	o.Payable = o.Total
	return o, nil
}

func (c *checkout) ConsumeCoupon(_ context.Context, _, _, orderID int64) error {
	if c.failAt == "consume" {
		return order.ErrConflict
	}
	c.coupons[orderID] = true
	return nil
}

func (c *checkout) ReleaseCoupon(_ context.Context, orderID int64) error {
	delete(c.coupons, orderID)
	return nil
}

func (c *checkout) InsertRegular(_ context.Context, o order.Order) (order.Order, bool, error) {
	switch {
	case c.failAt == "insert", c.failAt == "insert and look":
		return order.Order{}, false, errBoom
	case c.failAt == "insert landed": // committed, and the answer lost
		c.byKey[o.IdempotencyKey] = o
		return order.Order{}, false, context.DeadlineExceeded
	case c.failAt == "commit unanswered": // committing still, not yet seen by a look
		return order.Order{}, false, fmt.Errorf("insert order %d: commit: %w: %w", o.ID, order.ErrCommitUnknown, context.DeadlineExceeded)
	case c.conflict != nil:
		return *c.conflict, false, nil
	}
	c.byKey[o.IdempotencyKey] = o
	return o, true, nil
}

func (c *checkout) RegularByKey(_ context.Context, _ int64, key string) (order.Order, error) {
	if c.failAt == "insert and look" && len(c.stock) > 0 { // the store is down after the reservation
		return order.Order{}, errBoom
	}
	if o, ok := c.byKey[key]; ok {
		return o, nil
	}
	return order.Order{}, order.ErrNotFound
}

func (c *checkout) MarkRegularReleased(context.Context, []int64) error { return nil }

func checkoutOver(c *checkout) *order.Checkout {
	var next int64
	return order.NewCheckout(order.CheckoutConfig{
		Catalog: c, Pricing: c, Regular: c,
		Clock:  clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)),
		NextID: func() int64 { next++; return next },
	})
}

func TestCreateRegularOrderUndoesAFailedCheckout(t *testing.T) {
	lines := []order.CartLine{{SKUID: 1, Quantity: 2}}
	tests := []struct {
		failAt  string
		wantErr error
	}{
		{"reserve", order.ErrSoldOut},
		{"consume", order.ErrConflict},
		{"insert", order.ErrUnavailable},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run("fail at "+tt.failAt, func(t *testing.T) {
			c := newCheckout(tt.failAt)
			o, err := checkoutOver(c).CreateRegularOrder(context.Background(), 7, lines, 99, "key")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateRegularOrder error = %v, want %v", err, tt.wantErr)
			}
			wantHeld := 0
			if tt.wantErr == nil {
				wantHeld = 1
				if o.Status != order.StatusPendingPayment || o.Kind != order.KindRegular || o.Payable != 20_00 || o.Lines[0].ID == 0 {
					t.Fatalf("order = %+v, want a PENDING_PAYMENT REGULAR order of 20.00 with line ids", o)
				}
			}
			if len(c.stock) != wantHeld || len(c.coupons) != wantHeld {
				t.Fatalf("%d orders hold stock and %d a coupon, want %d each", len(c.stock), len(c.coupons), wantHeld)
			}
		})
	}
}

// A store error may hide a commit that landed: the order then stands,
// payable, and keeps its stock and coupon; the checkout answers it. Its
// stock and coupon go back only once a look finds no order, and stay held
// when the look fails too (a unit held too long, never a unit sold twice).
// From a review: the hold was given back on any store error, so a buyer
// retrying with the key paid an order whose units were back on sale and
// whose coupon was free again. From a second (2026-12-08): a COMMIT that
// got no answer may still land after a look finds nothing, so its holds
// stay too (the expiry worker gives them back once no order has come).
func TestCreateRegularOrderAfterAnAmbiguousStore(t *testing.T) {
	lines := []order.CartLine{{SKUID: 1, Quantity: 2}}
	tests := []struct {
		failAt   string
		wantErr  error
		wantHeld int
	}{
		{"insert landed", nil, 1},
		{"insert", order.ErrUnavailable, 0},
		{"insert and look", order.ErrUnavailable, 1},
		{"commit unanswered", order.ErrUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.failAt, func(t *testing.T) {
			c := newCheckout(tt.failAt)
			o, err := checkoutOver(c).CreateRegularOrder(context.Background(), 7, lines, 99, "key")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateRegularOrder error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && (o.ID == 0 || o.ID != c.byKey["key"].ID) {
				t.Fatalf("order %+v, want the stored one %+v", o, c.byKey["key"])
			}
			if len(c.stock) != tt.wantHeld || len(c.coupons) != tt.wantHeld {
				t.Fatalf("%d orders hold stock and %d a coupon, want %d each", len(c.stock), len(c.coupons), tt.wantHeld)
			}
		})
	}
}

// A retry that races its own first attempt, and finds the last units (or
// the coupon) taken by it, is answered with the first attempt's order, not
// SOLD_OUT: the key answers its first order.
func TestCreateRegularOrderRetryRacingItsFirstAttempt(t *testing.T) {
	c := newCheckout("reserve")
	first := order.Order{ID: 1000, Status: order.StatusPendingPayment, CouponID: 99, Lines: []order.Line{{SKUID: 1, Quantity: 2}}}
	co := checkoutOver(c)
	// The first attempt stores its order between the retry's look at the
	// key and its reservation, which then finds no stock left.
	c.onReserve = func() { c.byKey["key"] = first }
	o, err := co.CreateRegularOrder(context.Background(), 7, []order.CartLine{{SKUID: 1, Quantity: 2}}, 99, "key")
	if err != nil || o.ID != first.ID {
		t.Fatalf("retry: %+v, %v; want the first attempt's order %d", o, err, first.ID)
	}
	if len(c.stock) != 0 || len(c.coupons) != 0 {
		t.Fatalf("the retry holds stock (%d) or a coupon (%d)", len(c.stock), len(c.coupons))
	}
}

func TestCreateRegularOrderLosingARaceGivesItsHoldBack(t *testing.T) {
	winner := order.Order{ID: 1000, Status: order.StatusPendingPayment, CouponID: 99, Lines: []order.Line{{SKUID: 1, Quantity: 1}}}
	tests := []struct {
		name    string
		cart    []order.CartLine
		wantErr error
	}{
		{"the same cart", []order.CartLine{{SKUID: 1, Quantity: 1}}, nil},
		{"another cart", []order.CartLine{{SKUID: 1, Quantity: 2}}, order.ErrKeyReused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCheckout("")
			c.conflict = &winner
			got, err := checkoutOver(c).CreateRegularOrder(context.Background(), 7, tt.cart, 99, "key")
			if !errors.Is(err, tt.wantErr) || (err == nil && got.ID != winner.ID) {
				t.Fatalf("CreateRegularOrder = %d, %v; want the winner %d or %v", got.ID, err, winner.ID, tt.wantErr)
			}
			if len(c.stock) != 0 || len(c.coupons) != 0 {
				t.Fatalf("the loser still holds stock %v and coupons %v", c.stock, c.coupons)
			}
		})
	}
}

// TestCreateRegularOrderKeyNamesOneCart repeats a checkout under its key:
// the same cart, its lines in any order, answers the first order and
// takes nothing more; another cart or coupon is refused with
// ErrKeyReused, an ErrInvalid, and takes nothing either.
func TestCreateRegularOrderKeyNamesOneCart(t *testing.T) {
	c := newCheckout("")
	svc := checkoutOver(c)
	ctx := context.Background()
	cart := []order.CartLine{{SKUID: 1, Quantity: 2}, {SKUID: 2, Quantity: 1}}
	first, err := svc.CreateRegularOrder(ctx, 7, cart, 99, "key")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cart    []order.CartLine
		coupon  int64
		wantErr error
	}{
		{"the same cart", cart, 99, nil},
		{"its lines in another order", []order.CartLine{cart[1], cart[0]}, 99, nil},
		{"another quantity", []order.CartLine{{SKUID: 1, Quantity: 3}, cart[1]}, 99, order.ErrKeyReused},
		{"a line less", cart[:1], 99, order.ErrKeyReused},
		{"a line more", append([]order.CartLine{{SKUID: 3, Quantity: 1}}, cart...), 99, order.ErrKeyReused},
		{"a line twice", []order.CartLine{cart[0], cart[0]}, 99, order.ErrKeyReused},
		{"another coupon", cart, 98, order.ErrKeyReused},
		{"no coupon", cart, 0, order.ErrKeyReused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.CreateRegularOrder(ctx, 7, tt.cart, tt.coupon, "key")
			if !errors.Is(err, tt.wantErr) || (err == nil && got.ID != first.ID) {
				t.Fatalf("repeat = order %d, %v; want order %d or %v", got.ID, err, first.ID, tt.wantErr)
			}
			if err != nil && !errors.Is(err, order.ErrInvalid) {
				t.Fatalf("%v is not an ErrInvalid", err)
			}
			if len(c.stock) != 1 || len(c.coupons) != 1 {
				t.Fatalf("%d orders hold stock and %d a coupon, want the first only", len(c.stock), len(c.coupons))
			}
		})
	}
}

func TestCreateRegularOrderValidates(t *testing.T) {
	svc := checkoutOver(newCheckout(""))
	tests := []struct {
		name  string
		user  int64
		lines []order.CartLine
		key   string
	}{
		{"no user", 0, []order.CartLine{{SKUID: 1, Quantity: 1}}, "k"},
		{"no lines", 7, nil, "k"},
		{"too many lines", 7, make([]order.CartLine, order.MaxCartLines+1), "k"},
		{"no key", 7, []order.CartLine{{SKUID: 1, Quantity: 1}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := svc.CreateRegularOrder(context.Background(), tt.user, tt.lines, 0, tt.key); !errors.Is(err, order.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

// rendezvous lets n calls through only once all n are in flight at the
// same time; calls made one after another fail instead (after a while).
type rendezvous struct {
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{}
}

func newRendezvous(n int) *rendezvous { return &rendezvous{n: n, all: make(chan struct{})} }

func (r *rendezvous) arrive() error {
	r.mu.Lock()
	if r.arrived++; r.arrived == r.n {
		close(r.all)
	}
	r.mu.Unlock()
	select {
	case <-r.all:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the calls ran one after another")
	}
}

// pricedTogether is a catalog whose price look-ups answer only once all
// of a cart's lines are being looked up at the same time, and whose
// look-ups of skus from 404 on fail.
type pricedTogether struct {
	*checkout
	lines *rendezvous
}

func (p *pricedTogether) Price(_ context.Context, sku int64) (int64, error) {
	if err := p.lines.arrive(); err != nil {
		return 0, err
	}
	if sku >= 404 {
		return 0, fmt.Errorf("sku %d: %w", sku, order.ErrNotFound)
	}
	return 10_00, nil
}

// A cart's prices are looked up at once (each look-up waits until all
// of them are in flight), and a failed one fails the checkout, naming
// the first failing line, before anything is taken.
func TestCreateRegularOrderLooksUpTheLinesPricesAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cart    []order.CartLine
		wantErr error
	}{
		{"three lines", []order.CartLine{{SKUID: 1, Quantity: 1}, {SKUID: 2, Quantity: 2}, {SKUID: 3, Quantity: 3}}, nil},
		{"two unknown skus among them", []order.CartLine{{SKUID: 1, Quantity: 1}, {SKUID: 404, Quantity: 1}, {SKUID: 405, Quantity: 1}}, order.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCheckout("")
			p := &pricedTogether{checkout: c, lines: newRendezvous(len(tt.cart))}
			var next int64
			svc := order.NewCheckout(order.CheckoutConfig{
				Catalog: p, Pricing: c, Regular: c,
				Clock:  clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)),
				NextID: func() int64 { next++; return next },
			})
			o, err := svc.CreateRegularOrder(context.Background(), 7, tt.cart, 0, "key")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateRegularOrder error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				// The first unknown line in the cart's order answers,
				// whichever look-up failed first.
				if !strings.Contains(err.Error(), "price of sku 404") {
					t.Fatalf("error %v, want the first unknown line's (sku 404)", err)
				}
				if len(c.stock) != 0 {
					t.Fatalf("a checkout whose price look-up failed holds stock %v", c.stock)
				}
				return
			}
			// Each line keeps its own SKU and price, in the cart's order.
			for i, l := range o.Lines {
				if l.SKUID != tt.cart[i].SKUID || l.UnitPrice != 10_00 || l.Amount != 10_00*tt.cart[i].Quantity {
					t.Fatalf("line %d = %+v, want sku %d at 10.00 x %d", i, l, tt.cart[i].SKUID, tt.cart[i].Quantity)
				}
			}
		})
	}
}

// together is a checkout whose independent steps answer only when their
// partner is in flight too: the key's look-up with the price's, the
// stock's reservation with the coupon's.
type together struct {
	*checkout
	keyAndPrice, stockAndCoupon *rendezvous
}

func (t *together) RegularByKey(ctx context.Context, user int64, key string) (order.Order, error) {
	if err := t.keyAndPrice.arrive(); err != nil {
		return order.Order{}, err
	}
	return t.checkout.RegularByKey(ctx, user, key)
}

func (t *together) Price(ctx context.Context, sku int64) (int64, error) {
	if err := t.keyAndPrice.arrive(); err != nil {
		return 0, err
	}
	return t.checkout.Price(ctx, sku)
}

func (t *together) ReserveStock(ctx context.Context, orderID int64, lines []order.CartLine) error {
	if err := t.stockAndCoupon.arrive(); err != nil {
		return err
	}
	return t.checkout.ReserveStock(ctx, orderID, lines)
}

func (t *together) ConsumeCoupon(ctx context.Context, user, coupon, orderID int64) error {
	if err := t.stockAndCoupon.arrive(); err != nil {
		return err
	}
	return t.checkout.ConsumeCoupon(ctx, user, coupon, orderID)
}

// A checkout's independent calls run at once: the key's look-up beside
// the price's, the stock beside the coupon. (Each fake call waits for its
// partner; one after another, the checkout fails.)
func TestCreateRegularOrderRunsItsIndependentCallsAtOnce(t *testing.T) {
	c := newCheckout("")
	f := &together{checkout: c, keyAndPrice: newRendezvous(2), stockAndCoupon: newRendezvous(2)}
	var next int64
	svc := order.NewCheckout(order.CheckoutConfig{
		Catalog: f, Pricing: f, Regular: f,
		Clock:  clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)),
		NextID: func() int64 { next++; return next },
	})
	o, err := svc.CreateRegularOrder(context.Background(), 7, []order.CartLine{{SKUID: 1, Quantity: 2}}, 99, "key")
	if err != nil {
		t.Fatal(err)
	}
	if o.Payable != 20_00 || !c.stock[o.ID] || !c.coupons[o.ID] {
		t.Fatalf("order %+v, stock held %v, coupons %v: want 20.00 payable, its stock and coupon held", o, c.stock, c.coupons)
	}
}

// insertDeadline is a checkout store that records the deadline of the
// insert's context.
type insertDeadline struct {
	*checkout
	deadline time.Time
	has      bool
}

func (c *insertDeadline) InsertRegular(ctx context.Context, o order.Order) (order.Order, bool, error) {
	c.deadline, c.has = ctx.Deadline()
	return c.checkout.InsertRegular(ctx, o)
}

// A checkout runs within MaxCheckout whatever its caller's deadline, none
// included: the expiry worker gives back the holds of an order not stored
// StrayAfter after they were taken, and an insert that landed later would
// make an order that holds nothing.
func TestCreateRegularOrderIsBoundedWhateverItsCallersDeadline(t *testing.T) {
	c := &insertDeadline{checkout: newCheckout("")}
	co := order.NewCheckout(order.CheckoutConfig{Catalog: c, Pricing: c, Regular: c, Clock: clock.Real{},
		NextID: func() int64 { return 1 }})
	called := time.Now()
	if _, err := co.CreateRegularOrder(context.Background(), 7, []order.CartLine{{SKUID: 1, Quantity: 1}}, 0, "key"); err != nil {
		t.Fatal(err)
	}
	if !c.has || c.deadline.After(called.Add(order.MaxCheckout+time.Second)) {
		t.Fatalf("the insert ran with deadline %v (set %v), want one within %s of the call", c.deadline, c.has, order.MaxCheckout)
	}
}
