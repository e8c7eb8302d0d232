package audit

import (
	"fmt"
	"maps"
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

// paymentTally counts, over the accepted orders, what the payment checks
// find, with the first example of each of the four findings.
type paymentTally struct {
	paid, wrongPaid, unpaid, keeping, both, late, duplicate int
	payments, wrongAmount                                   int
	example                                                 [4]string
}

// note keeps the first example of finding i (0 wrongly paid, 1 money
// kept, 2 two final states, 3 a payment for another amount or buyer).
func (t *paymentTally) note(i int, s string) {
	if t.example[i] == "" {
		t.example[i] = s
	}
}

// checkPayments checks the money against the orders: a paid order has
// exactly one successful unrefunded payment, the one it names; no unpaid
// order keeps money; no order ended in two final states; every payment
// asked its order's payable of its order's buyer; and every payment paid
// at the channel settled (checkPaidSettled).
func checkPayments(res *result.Replay, b *Books) []result.Check {
	one := result.Check{Name: "every paid order has exactly one successful unrefunded payment, the one it names (refunded with the order when the buyer had it refunded in full)"}
	kept := result.Check{Name: "no money kept for an unpaid order (late and duplicate payments refunded)"}
	twice := result.Check{Name: "no order in two final states"}
	amount := result.Check{Name: "every payment asked its order's payable of its order's buyer"}
	if f := res.Feature(result.FeaturePay); !f.Available {
		for _, c := range []*result.Check{&one, &kept} {
			c.OK, c.Skipped, c.Detail = true, true, f.Reason
		}
	}
	var t paymentTally
	for _, id := range accepted(res) {
		o, ok := b.Orders[id]
		if !ok {
			continue // the stored-once checks name missing orders
		}
		t.add(id, o, b.Payments[id], res.Trails[id])
	}
	if !one.Skipped {
		one.OK = t.wrongPaid == 0
		one.Detail = fmt.Sprintf("%d paid orders, %d wrong", t.paid, t.wrongPaid)
		kept.OK = t.keeping == 0
		kept.Detail = fmt.Sprintf("%d unpaid orders, %d keeping money; refunded: %d late, %d duplicate",
			t.unpaid, t.keeping, t.late, t.duplicate)
	}
	twice.OK = t.both == 0
	twice.Detail = fmt.Sprintf("%d orders, %d in two", t.paid+t.unpaid, t.both)
	amount.OK = t.wrongAmount == 0
	amount.Detail = fmt.Sprintf("%d payments, %d for another amount or buyer", t.payments, t.wrongAmount)
	for i, c := range []*result.Check{&one, &kept, &twice, &amount} {
		if t.example[i] != "" {
			c.Detail += ", e.g. " + t.example[i]
		}
	}
	return []result.Check{one, kept, twice, amount, checkPaidSettled(res, b)}
}

// checkPaidSettled checks that every payment a buyer paid at the
// channel (the wallet answered 200: the money is taken) settled once the
// books did: SUCCEEDED, or REFUNDED when the order no longer wanted it.
// One left PAYING is money taken for an order that may expire; one
// FAILED, money the platform will never give back. WaitBooksSettled
// waits for it as for the other payment checks (a lost callback is
// settled by the payment sweep's question to the channel).
func checkPaidSettled(res *result.Replay, b *Books) result.Check {
	c := result.Check{Name: "every payment a buyer paid at the channel settled: none left PAYING or FAILED"}
	var paid int
	var unsettled []string
	for _, id := range slices.Sorted(maps.Keys(res.Trails)) {
		for _, pid := range res.Trails[id].Confirmed {
			i := slices.IndexFunc(b.Payments[id], func(p PaymentRecord) bool { return p.PaymentID == pid })
			if i < 0 {
				continue // a payment not read: the other checks name what is missing
			}
			paid++
			if st := b.Payments[id][i].Status; st != "SUCCEEDED" && st != "REFUNDED" {
				unsettled = append(unsettled, fmt.Sprintf("payment %s of order %s is %s", pid, id, st))
			}
		}
	}
	return tally(c, paid, "no payment was paid at a channel ("+featureReason(res, result.FeaturePay)+")",
		fmt.Sprintf("%d paid at the channel, %d not settled", paid, len(unsettled)), unsettled)
}

// tally finishes check c over n cases: skipped, saying why, when there
// were none; else passing when none is wrong, its detail the counts and
// the first wrong case.
func tally(c result.Check, n int, why, counts string, wrong []string) result.Check {
	if n == 0 {
		c.OK, c.Skipped, c.Detail = true, true, why
		return c
	}
	c.OK = len(wrong) == 0
	c.Detail = counts
	if len(wrong) > 0 {
		c.Detail += ", e.g. " + wrong[0]
	}
	return c
}

// add tallies one accepted order o, its payments and what the replay did
// with it (trail, nil when it did nothing).
func (t *paymentTally) add(id string, o api.Order, payments []PaymentRecord, trail *result.Trail) {
	// The payment an order names stays SUCCEEDED until its buyer
	// has the order refunded in full; every other payment of it
	// must not keep money.
	var succeeded []string
	refunded, namedRefunded := 0, false
	for _, p := range payments {
		t.payments++
		if p.Amount != o.Payable || p.UserID != o.UserID {
			t.wrongAmount++
			t.note(3, fmt.Sprintf("payment %s of order %s asked %d of user %s; the order's payable is %d, its buyer %s",
				p.PaymentID, id, p.Amount, p.UserID, o.Payable, o.UserID))
		}
	}
	for _, p := range payments {
		switch {
		case p.Status == "SUCCEEDED":
			succeeded = append(succeeded, p.PaymentID)
		case p.Status == "REFUNDED" && names(o, p):
			namedRefunded = true
		case p.Status == "REFUNDED":
			refunded++
		}
	}
	switch {
	case o.Status == "REFUNDED":
		t.paid++
		t.duplicate += refunded
		// Refunded in full: the money is back once the replay drained
		// (it waits for the refunds), so the payment it names is
		// REFUNDED and none is left SUCCEEDED.
		if len(succeeded) > 0 || !namedRefunded {
			t.wrongPaid++
			t.note(0, fmt.Sprintf("order %s is REFUNDED with successful payments %v, naming %+v", id, succeeded, o.Payment))
		}
	case slices.Contains(paidStatuses, o.Status):
		t.paid++
		t.duplicate += refunded
		if len(succeeded) != 1 || !names(o, PaymentRecord{PaymentID: succeeded[0]}) {
			t.wrongPaid++
			t.note(0, fmt.Sprintf("order %s is %s with successful payments %v, naming %+v", id, o.Status, succeeded, o.Payment))
		}
	default:
		t.unpaid++
		t.late += refunded
		if len(succeeded) > 0 {
			t.keeping++
			t.note(1, fmt.Sprintf("order %s is %s and keeps payments %v", id, o.Status, succeeded))
		}
	}
	// A buyer told the order is cancelled must find it so; an
	// unpaid order names no payment; an order paid by a payment
	// that was refunded is both paid and not.
	switch {
	case trail != nil && trail.Cancelled && o.Status != "CANCELLED":
		t.both++
		t.note(2, fmt.Sprintf("order %s was cancelled (200) and is %s", id, o.Status))
	case !slices.Contains(paidStatuses, o.Status) && o.Payment != nil:
		t.both++
		t.note(2, fmt.Sprintf("order %s is %s and names payment %s", id, o.Status, o.Payment.PaymentID))
	case o.Status != "REFUNDED" && namedRefunded:
		t.both++
		t.note(2, fmt.Sprintf("order %s is %s by payment %s, which was refunded in full", id, o.Status, o.Payment.PaymentID))
	}
}

// checkCoupons checks that every checkout placed with a coupon carries
// it, with a COUPON discount, and that no coupon is held by two orders.
func checkCoupons(res *result.Replay, orders map[string]api.Order) result.Check {
	c := result.Check{Name: "every checkout placed with a coupon carries it, with a COUPON discount, and no coupon is held by two orders"}
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
	twice := couponsHeldTwice(orders)
	c.OK = wrong == 0 && len(twice) == 0
	c.Detail = fmt.Sprintf("claimed %d, used %d, wrong %d, refused below threshold %d, held by two orders %d", res.Coupons.Claimed, used, wrong, res.Coupons.Refused, len(twice))
	if len(twice) > 0 {
		c.Detail += ", e.g. coupon " + twice[0]
	}
	return c
}

// couponsHeldTwice lists the coupons that two orders hold at once: an
// order holds its coupon until it is cancelled, expires or is refunded
// in full, which give it back.
func couponsHeldTwice(orders map[string]api.Order) []string {
	holders := map[string]int{}
	for _, o := range orders {
		if o.CouponID != "" && !slices.Contains([]string{"CANCELLED", "EXPIRED", "REFUNDED"}, o.Status) {
			holders[o.CouponID]++
		}
	}
	var twice []string
	for _, coupon := range slices.Sorted(maps.Keys(holders)) {
		if holders[coupon] > 1 {
			twice = append(twice, coupon)
		}
	}
	return twice
}
