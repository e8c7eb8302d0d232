package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// PaymentRecord is one payment of an order as the payment service keeps
// it. Status is PAYING, SUCCEEDED, FAILED or REFUNDED: a payment that
// succeeded after its order could no longer take it (expired, cancelled,
// or paid through another payment) is refunded automatically.
type PaymentRecord struct {
	PaymentID string `json:"payment_id"`
	Channel   string `json:"channel"`
	Status    string `json:"status"`
}

// names reports whether o names payment p as the one that paid it.
func names(o api.Order, p PaymentRecord) bool {
	return o.Payment != nil && o.Payment.PaymentID == p.PaymentID
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
func ReadPayments(ctx context.Context, cl *client.Client, res *result.Replay, orders map[string]api.Order, pool *pgxpool.Pool) (map[string][]PaymentRecord, error) {
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
				_, err := cl.Do(ctx, http.MethodGet, "/api/v1/payments/"+l.paymentID, l.user.Token, nil, nil, &p)
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

// orderStates counts where the accepted orders and their payments ended,
// and tallies each channel's final payment statuses into res.Channels.
func orderStates(res *result.Replay, b *Books) *result.OrderStates {
	st := &result.OrderStates{ByStatus: map[string]int{}, Payments: map[string]int{}}
	final := map[string]map[string]int{}
	for _, id := range accepted(res) {
		o, ok := b.Orders[id]
		if !ok {
			continue
		}
		st.ByStatus[o.Status]++
		for _, p := range b.Payments[id] {
			st.Payments[p.Status]++
			if final[p.Channel] == nil {
				final[p.Channel] = map[string]int{}
			}
			final[p.Channel][p.Status]++
			switch {
			case p.Status != "REFUNDED":
			case names(o, p):
				st.BuyerRefunds++
			case slices.Contains(paidStatuses, o.Status):
				st.DuplicateRefunds++
			default:
				st.LateRefunds++
			}
		}
	}
	for ch, m := range final {
		i := slices.IndexFunc(res.Channels, func(c result.ChannelStat) bool { return c.Channel == ch })
		if i < 0 {
			res.Channels = append(res.Channels, result.ChannelStat{Channel: ch})
			i = len(res.Channels) - 1
		}
		res.Channels[i].Final = m
	}
	slices.SortFunc(res.Channels, func(a, b result.ChannelStat) int { return cmp.Compare(a.Channel, b.Channel) })
	return st
}

// paidStatuses are the statuses of an order its buyer paid for.
var paidStatuses = []string{"PAID", "PARTIALLY_REFUNDED", "REFUNDED"}

// auditPayments checks the money against the orders: a paid order has
// exactly one successful unrefunded payment, the one it names; no unpaid
// order keeps money; and no order ended in two final states.
func auditPayments(res *result.Replay, b *Books) []result.Check {
	one := result.Check{Name: "every paid order has exactly one successful unrefunded payment, the one it names (refunded with the order when the buyer had it refunded in full)"}
	kept := result.Check{Name: "no money kept for an unpaid order (late and duplicate payments refunded)"}
	twice := result.Check{Name: "no order in two final states"}
	if f := res.Feature(result.FeaturePay); !f.Available {
		for _, c := range []*result.Check{&one, &kept} {
			c.OK, c.Skipped, c.Detail = true, true, f.Reason
		}
	}
	var paid, wrongPaid, unpaid, keeping, both, late, duplicate int
	var example [3]string
	note := func(i int, s string) {
		if example[i] == "" {
			example[i] = s
		}
	}
	for _, id := range accepted(res) {
		o, ok := b.Orders[id]
		if !ok {
			continue // the stored-once checks name missing orders
		}
		// The payment an order names stays SUCCEEDED until its buyer
		// has the order refunded in full; every other payment of it
		// must not keep money.
		var succeeded []string
		refunded, namedRefunded := 0, false
		for _, p := range b.Payments[id] {
			switch {
			case p.Status == "SUCCEEDED":
				succeeded = append(succeeded, p.PaymentID)
			case p.Status == "REFUNDED" && names(o, p):
				namedRefunded = true
			case p.Status == "REFUNDED":
				refunded++
			}
		}
		t := res.Trails[id]
		switch {
		case o.Status == "REFUNDED":
			paid++
			duplicate += refunded
			if len(succeeded) > 1 || len(succeeded) == 1 && !names(o, PaymentRecord{PaymentID: succeeded[0]}) || len(succeeded) == 0 && !namedRefunded {
				wrongPaid++
				note(0, fmt.Sprintf("order %s is REFUNDED with successful payments %v, naming %+v", id, succeeded, o.Payment))
			}
		case slices.Contains(paidStatuses, o.Status):
			paid++
			duplicate += refunded
			if len(succeeded) != 1 || !names(o, PaymentRecord{PaymentID: succeeded[0]}) {
				wrongPaid++
				note(0, fmt.Sprintf("order %s is %s with successful payments %v, naming %+v", id, o.Status, succeeded, o.Payment))
			}
		default:
			unpaid++
			late += refunded
			if len(succeeded) > 0 {
				keeping++
				note(1, fmt.Sprintf("order %s is %s and keeps payments %v", id, o.Status, succeeded))
			}
		}
		// A buyer told the order is cancelled must find it so; an
		// unpaid order names no payment; an order paid by a payment
		// that was refunded is both paid and not.
		switch {
		case t != nil && t.Cancelled && o.Status != "CANCELLED":
			both++
			note(2, fmt.Sprintf("order %s was cancelled (200) and is %s", id, o.Status))
		case !slices.Contains(paidStatuses, o.Status) && o.Payment != nil:
			both++
			note(2, fmt.Sprintf("order %s is %s and names payment %s", id, o.Status, o.Payment.PaymentID))
		case o.Status != "REFUNDED" && namedRefunded:
			both++
			note(2, fmt.Sprintf("order %s is %s by payment %s, which was refunded in full", id, o.Status, o.Payment.PaymentID))
		}
	}
	if !one.Skipped {
		one.OK = wrongPaid == 0
		one.Detail = fmt.Sprintf("%d paid orders, %d wrong", paid, wrongPaid)
		kept.OK = keeping == 0
		kept.Detail = fmt.Sprintf("%d unpaid orders, %d keeping money; refunded: %d late, %d duplicate",
			unpaid, keeping, late, duplicate)
	}
	twice.OK = both == 0
	twice.Detail = fmt.Sprintf("%d orders, %d in two", paid+unpaid, both)
	for i, c := range []*result.Check{&one, &kept, &twice} {
		if example[i] != "" {
			c.Detail += ", e.g. " + example[i]
		}
	}
	return []result.Check{one, kept, twice}
}

// auditCoupons checks that every checkout placed with a coupon carries
// it, with a COUPON discount.
func auditCoupons(res *result.Replay, orders map[string]api.Order) result.Check {
	c := result.Check{Name: "every checkout placed with a coupon carries it, with a COUPON discount"}
	var used, wrong int
	for id, t := range res.Trails {
		if t.Coupon == "" {
			continue
		}
		used++
		o := orders[id]
		if o.CouponID != t.Coupon || !slices.ContainsFunc(o.Promotions, func(p api.Promotion) bool { return p.Kind == "COUPON" && p.ID == t.Coupon }) {
			wrong++
		}
	}
	if used == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no checkout used a coupon ("+featureReason(res, result.FeatureCoupons)+")"
		return c
	}
	c.OK = wrong == 0
	c.Detail = fmt.Sprintf("claimed %d, used %d, wrong %d, refused below threshold %d", res.Coupons.Claimed, used, wrong, res.Coupons.Refused)
	return c
}
