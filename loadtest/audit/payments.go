package audit

import (
	"fmt"
	"slices"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
)

// names reports whether o names payment p as the one that paid it.
func names(o api.Order, p PaymentRecord) bool {
	return o.Payment != nil && o.Payment.PaymentID == p.PaymentID
}

// paidStatuses are the statuses of an order its buyer paid for.
var paidStatuses = []string{"PAID", "PARTIALLY_REFUNDED", "REFUNDED"}

// checkPayments checks the money against the orders: a paid order has
// exactly one successful unrefunded payment, the one it names; no unpaid
// order keeps money; and no order ended in two final states.
func checkPayments(res *result.Replay, b *Books) []result.Check {
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

// checkCoupons checks that every checkout placed with a coupon carries
// it, with a COUPON discount.
func checkCoupons(res *result.Replay, orders map[string]api.Order) result.Check {
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
