package loadtest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/gateway/api"
)

// ReadAllOrders lists every user's orders through the API (the audit's
// view when it has no database access), 32 users at a time.
func ReadAllOrders(ctx context.Context, cl *Client, users []User) (map[string]api.Order, error) {
	var mu sync.Mutex
	out := map[string]api.Order{}
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			list, err := withRetryAfter(ctx, func() ([]api.Order, error) { return cl.ListOrders(ctx, u.Token) })
			if err != nil {
				errs <- fmt.Errorf("orders of user %d: %w", u.ID, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range list {
				if _, dup := out[o.OrderID]; dup {
					errs <- fmt.Errorf("order %s listed twice", o.OrderID)
				}
				out[o.OrderID] = o
			}
		})
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

// WaitOrdersSettled reads every user's orders until each accepted order
// is listed and out of PROCESSING, or timeout passes (leaving the audit
// to name the missing ones). It returns the last read.
func WaitOrdersSettled(ctx context.Context, cl *Client, res *ReplayResult, timeout time.Duration) (map[string]api.Order, error) {
	deadline := time.Now().Add(timeout)
	for {
		orders, err := ReadAllOrders(ctx, cl, res.UsersList)
		if err != nil || time.Now().After(deadline) || settledAll(res, orders) {
			return orders, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func settledAll(res *ReplayResult, orders map[string]api.Order) bool {
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

// AuditReplay checks the platform's books after a replay drained. The
// stored orders come from Postgres when pool is not nil and from the API
// otherwise; orders are every user's orders as the API lists them.
func AuditReplay(ctx context.Context, cl *Client, res *ReplayResult, orders map[string]api.Order, pool *pgxpool.Pool) ([]Check, error) {
	var checks []Check
	for _, a := range res.Activities {
		var books *SeckillBooks
		var err error
		if pool != nil {
			books, err = ReadSeckillBooks(ctx, cl, pool, a.ActivityID)
		} else {
			books, err = seckillBooksFromAPI(ctx, cl, orders, a.ActivityID)
		}
		if err != nil {
			return nil, err
		}
		for _, c := range AuditSeckill(res.Sales[a.Key], books) {
			c.Name = a.Key + ": " + c.Name
			checks = append(checks, c)
		}
	}
	checks = append(checks, auditRegular(res, orders), auditLines(orders), auditPayments(res))
	return checks, nil
}

func seckillBooksFromAPI(ctx context.Context, cl *Client, orders map[string]api.Order, activityID string) (*SeckillBooks, error) {
	b := &SeckillBooks{StoredOrders: map[string]int64{}, UnitsByUser: map[int64]int64{}}
	var sold int64
	for _, o := range orders {
		if o.ActivityID != activityID {
			continue
		}
		user, err := strconv.ParseInt(o.UserID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: order %s: user id %q: %w", o.OrderID, o.UserID, err)
		}
		var units int64
		for _, l := range o.Lines {
			units += l.Quantity
		}
		sold += b.add(o.OrderID, user, o.Status, int64(len(o.Lines)), units)
	}
	return b, b.settle(ctx, cl, activityID, sold)
}

// auditRegular checks that every accepted cart checkout is listed once,
// for its buyer.
func auditRegular(res *ReplayResult, orders map[string]api.Order) Check {
	c := Check{Name: "every accepted checkout is stored once, for its buyer"}
	if len(res.Regular) == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no checkouts accepted ("+featureReason(res, FeatureCheckout)+")"
		return c
	}
	missing, wrong := 0, 0
	for id, user := range res.Regular {
		o, ok := orders[id]
		switch {
		case !ok:
			missing++
		case o.UserID != strconv.FormatInt(user, 10):
			wrong++
		}
	}
	c.OK = missing == 0 && wrong == 0
	c.Detail = fmt.Sprintf("accepted %d, missing %d, wrong buyer %d", len(res.Regular), missing, wrong)
	return c
}

// auditLines checks API.md's money invariants on every order.
func auditLines(orders map[string]api.Order) Check {
	var bad []string
	for _, o := range orders {
		if err := linesAddUp(o); err != "" {
			bad = append(bad, o.OrderID+": "+err)
		}
	}
	sort.Strings(bad)
	c := Check{Name: "every order's lines add up", OK: len(bad) == 0,
		Detail: fmt.Sprintf("%d orders, %d wrong", len(orders), len(bad))}
	if len(bad) > 0 {
		c.Detail += ", e.g. " + bad[0]
	}
	return c
}

// linesAddUp returns what is wrong with an order's money, "" when
// nothing is.
func linesAddUp(o api.Order) string {
	if len(o.Lines) == 0 {
		return "no lines"
	}
	var total, discount, payable int64
	for _, l := range o.Lines {
		switch {
		case l.Quantity <= 0:
			return fmt.Sprintf("line %s quantity %d", l.LineID, l.Quantity)
		case l.Amount != l.UnitPrice*l.Quantity:
			return fmt.Sprintf("line %s amount %d != %d × %d", l.LineID, l.Amount, l.UnitPrice, l.Quantity)
		case l.Payable != l.Amount-l.Discount || l.Payable < 0 || l.Discount < 0:
			return fmt.Sprintf("line %s payable %d != %d − %d", l.LineID, l.Payable, l.Amount, l.Discount)
		}
		total, discount, payable = total+l.Amount, discount+l.Discount, payable+l.Payable
	}
	if o.Total != total || o.Discount != discount || o.Payable != payable {
		return fmt.Sprintf("order total/discount/payable %d/%d/%d != lines %d/%d/%d", o.Total, o.Discount, o.Payable, total, discount, payable)
	}
	return ""
}

// auditPayments is the payment ledger's check: it needs each order's
// payment as the API will show it, so it is reported as skipped, with the
// reason, until the payment service lands.
func auditPayments(res *ReplayResult) Check {
	c := Check{Name: "every paid order has exactly one successful unrefunded payment", OK: true, Skipped: true}
	if f := featureOf(res, FeaturePay); !f.Available {
		c.Detail = f.Reason
	} else {
		c.Detail = fmt.Sprintf("the pay endpoint is served (%d paid) but orders do not show their payment yet", res.FollowUps.Paid)
	}
	return c
}

func featureOf(res *ReplayResult, name string) Feature {
	for _, f := range res.Features {
		if f.Name == name {
			return f
		}
	}
	return Feature{Name: name, Reason: "not probed"}
}

func featureReason(res *ReplayResult, name string) string {
	if f := featureOf(res, name); !f.Available {
		return f.Reason
	}
	return "none placed"
}
