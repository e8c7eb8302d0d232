package audit

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/postgres"
)

// Books is what the audit reads back: every user's orders as the API
// lists them, and the payments of the replay's orders.
type Books struct {
	Orders   map[string]api.Order
	Payments map[string][]PaymentRecord // by order id
	// Listed is, by order id, when the list that gave the order was
	// asked for: the order is as it stood then or later, so its lateness
	// is judged against that time, not against the clock of a check that
	// runs after the ceiling's measurement.
	Listed map[string]time.Time
}

// listed returns when order id was listed, or now for an order of no
// list (judged at the check's time, the strict side).
func (b *Books) listed(id string) time.Time {
	if t, ok := b.Listed[id]; ok {
		return t
	}
	return time.Now()
}

// ReadAllOrders lists every user's orders through the API (the audit's
// view when it has no database access), 32 users at a time.
func ReadAllOrders(ctx context.Context, gateway *client.Client, users []client.User) (map[string]api.Order, error) {
	b, err := readBooksOrders(ctx, gateway, users)
	return b.Orders, err
}

// readBooksOrders lists every user's orders, each with when its list was
// asked for (Books.Listed).
func readBooksOrders(ctx context.Context, gateway *client.Client, users []client.User) (*Books, error) {
	var mu sync.Mutex
	b := &Books{Orders: map[string]api.Order{}, Listed: map[string]time.Time{}}
	err := eachUser(users, func(u client.User) error {
		var asked time.Time
		list, err := client.WithRetryAfter(ctx, func() ([]api.Order, error) {
			asked = time.Now() // of the attempt that answers
			return gateway.ListOrders(ctx, u.Token)
		})
		if err != nil {
			return fmt.Errorf("orders of user %d: %w", u.ID, err)
		}
		mu.Lock()
		defer mu.Unlock()
		var dup error
		for _, o := range list {
			if _, seen := b.Orders[o.OrderID]; seen && dup == nil {
				dup = fmt.Errorf("order %s listed twice", o.OrderID)
			}
			b.Orders[o.OrderID], b.Listed[o.OrderID] = o, asked
		}
		return dup
	})
	return b, err
}

// eachUser calls read for every user, 32 at a time, and returns the
// first error a call returned (the others still run): the audit's reads
// of what each buyer's lists show.
func eachUser(users []client.User, read func(client.User) error) error {
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := read(u); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// expiryHorizon is how far ahead the audit waits for unpaid orders to
// expire: a payment window this short (the demo's) is waited out, a
// production one (minutes) leaves its orders pending.
const expiryHorizon = time.Minute

// expiryGrace is how long past its deadline an unpaid order is waited
// for; one still pending then is stuck, and the audit names it.
const expiryGrace = 15 * time.Second

// WaitBooksSettled reads the books until every accepted order is listed
// and out of PROCESSING, every unpaid order due within expiryHorizon has
// expired, and the payment checks hold (callbacks and automatic refunds
// are asynchronous), or until timeout passes, leaving the audit to name
// what is wrong. It returns the last read. Payments come from the
// payment database when payments is not nil, otherwise through the API.
func WaitBooksSettled(ctx context.Context, gateway *client.Client, res *result.Replay, payments postgres.DB, timeout time.Duration) (*Books, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := readBooksOrders(ctx, gateway, res.UsersList)
		if err != nil {
			return nil, err
		}
		last := time.Now().After(deadline)
		if settledAll(res, b.Orders) && !expiring(b) || last {
			if b.Payments, err = ReadPayments(ctx, gateway, res, b.Orders, payments); err != nil {
				return nil, err
			}
			if last || allOK(checkPayments(res, b)) {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// expiring reports whether an unpaid order falls due within the horizon
// or is overdue by less than the grace, as of when it was listed.
func expiring(b *Books) bool {
	for id, o := range b.Orders {
		now := b.listed(id)
		if o.Status == "PENDING_PAYMENT" && o.ExpiresAt != nil && o.ExpiresAt.Before(now.Add(expiryHorizon)) && o.ExpiresAt.After(now.Add(-expiryGrace)) {
			return true
		}
	}
	return false
}

func allOK(checks []result.Check) bool {
	for _, c := range checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func settledAll(res *result.Replay, orders map[string]api.Order) bool {
	seen := func(id string) bool { o, ok := orders[id]; return ok && o.Status != "PROCESSING" }
	for _, sale := range res.Sales {
		for id := range sale.Orders {
			if !seen(id) {
				return false
			}
		}
	}
	for id := range res.Regular {
		if !seen(id) {
			return false
		}
	}
	return true
}

// PaymentRecord is one payment of an order as the payment service keeps
// it. Status is PAYING, SUCCEEDED, FAILED or REFUNDED: a payment that
// succeeded after its order could no longer take it (expired, cancelled,
// or paid through another payment) is refunded automatically.
type PaymentRecord struct {
	PaymentID string `json:"payment_id"`
	UserID    string `json:"user_id"`
	Channel   string `json:"channel"`
	Status    string `json:"status"`
	Amount    int64  `json:"amount"` // cents, what the channel was asked to take
}

// accepted lists the ids of the orders the replay had accepted.
func accepted(res *result.Replay) []string {
	var ids []string
	for _, sale := range res.Sales {
		ids = append(ids, slices.Collect(maps.Keys(sale.Orders))...)
	}
	ids = append(ids, slices.Collect(maps.Keys(res.Regular))...)
	slices.Sort(ids)
	return ids
}

// ReadPayments reads the payments of the replay's accepted orders: every
// payment of them from the payment database when pool is not nil;
// otherwise, through GET /api/v1/payments/{id} as their buyers, the
// payments the replay opened and the one each order names.
func ReadPayments(ctx context.Context, gateway *client.Client, res *result.Replay, orders map[string]api.Order, pool postgres.DB) (map[string][]PaymentRecord, error) {
	if pool != nil {
		return queryPayments(ctx, pool, accepted(res))
	}
	type lookup struct {
		orderID, paymentID string
		user               client.User
	}
	var pending []lookup
	for id, t := range res.Trails {
		ids := slices.Clone(t.Payments)
		if o, ok := orders[id]; ok && o.Payment != nil && !slices.Contains(ids, o.Payment.PaymentID) {
			ids = append(ids, o.Payment.PaymentID)
		}
		for _, p := range ids {
			pending = append(pending, lookup{id, p, t.User})
		}
	}
	var mu sync.Mutex
	out := map[string][]PaymentRecord{}
	errs := make(chan error, len(pending))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, l := range pending {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p, err := client.WithRetryAfter(ctx, func() (api.Payment, error) {
				var p api.Payment
				_, err := gateway.Do(ctx, http.MethodGet, "/api/v1/payments/"+l.paymentID, l.user.Token, nil, nil, &p)
				return p, err
			})
			if err != nil {
				errs <- fmt.Errorf("payment %s of order %s: %w", l.paymentID, l.orderID, err)
				return
			}
			mu.Lock()
			out[l.orderID] = append(out[l.orderID], PaymentRecord{PaymentID: p.PaymentID, Channel: p.Channel, Status: p.Status})
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

func seckillBooksFromAPI(ctx context.Context, gateway *client.Client, orders map[string]api.Order, activityID string) (*SeckillBooks, error) {
	b := newSeckillBooks()
	for _, o := range orders {
		if o.ActivityID != activityID {
			continue
		}
		user, err := strconv.ParseInt(o.UserID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: order %s: user id %q: %w", o.OrderID, o.UserID, err)
		}
		m := OrderMoney{Total: o.Total, Discount: o.Discount, Payable: o.Payable}
		for _, l := range o.Lines {
			m.Units += l.Quantity
			m.UnitPrice = l.UnitPrice
		}
		b.add(o.OrderID, user, o.Status, int64(len(o.Lines)), m.Units)
		b.Money[o.OrderID] = m
	}
	return settleBooks(ctx, gateway, activityID, func() (*SeckillBooks, error) { return b, nil })
}

// untilAgreed runs check on the orders until it passes or wait is over,
// reading the orders again (relist) a second after each failing round:
// the books move while the audit runs (an order that expires gives back
// what it held just after its status changes, and a give-back that
// failed under a fault is retried by the expiry worker's sweep).
func untilAgreed(ctx context.Context, orders map[string]api.Order, relist func() (map[string]api.Order, error), wait time.Duration, check func(map[string]api.Order) (result.Check, error)) (result.Check, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := check(orders)
		if err != nil || c.OK || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(time.Second):
		}
		if orders, err = relist(); err != nil {
			return c, err
		}
	}
}
