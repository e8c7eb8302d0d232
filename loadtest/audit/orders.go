package audit

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
)

// checkExpiry checks that no accepted order was still unpaid more than
// the grace past its payment deadline when it was listed.
func checkExpiry(res *result.Replay, b *Books) result.Check {
	c := result.Check{Name: "every unpaid order past its payment window has expired"}
	orders := b.Orders
	overdue := map[string]int{}
	pending := 0
	var example string
	for _, id := range accepted(res) {
		o, ok := orders[id]
		if !ok || o.Status != "PENDING_PAYMENT" {
			continue
		}
		pending++
		now := b.listed(id)
		if o.ExpiresAt != nil && o.ExpiresAt.Before(now.Add(-expiryGrace)) {
			overdue[o.Kind]++
			if example == "" {
				example = fmt.Sprintf("%s order %s due %s", o.Kind, id, now.Sub(*o.ExpiresAt).Round(time.Second))
			}
		}
	}
	c.OK = len(overdue) == 0
	c.Detail = fmt.Sprintf("%d still pending, overdue by more than %s: %s", pending, expiryGrace, result.Tally(overdue))
	if example != "" {
		c.Detail += ", e.g. " + example + " ago"
	}
	return c
}

// recoverWithin is how long after a fault's lift the platform may still
// answer 5xx: breakers half-open after 5 s, a fenced sale settles in
// about 5 s, pools and the broker's writer reconnect.
const recoverWithin = 10

// checkDegradation checks that the platform answered 5xx (or nothing)
// only while a fault that can fail the endpoint was on or within
// recoverWithin seconds of its lift, and that it recovered after each
// fault before the replay ended: under a fault a 503 is the documented
// degradation, anywhere else a failure. A payment channel's fault
// excuses only the payment endpoints (result.FaultStat.Reaches): a buy
// or a checkout that failed while a channel was down failed for another
// reason. Failures of no known endpoint are excused by faults that reach
// every endpoint only.
func checkDegradation(res *result.Replay) result.Check {
	c := result.Check{Name: fmt.Sprintf("5xx only during a fault that reaches the endpoint or within %d s of its lift, and recovered after each", recoverWithin)}
	// covered says whether a fault that can fail endpoint was on at
	// second t (or lifted less than recoverWithin before it): a payment
	// channel's fault excuses the payment endpoints only.
	covered := func(t int, endpoint string) bool {
		for _, f := range res.Faults {
			reaches := len(f.Reaches) == 0 || slices.Contains(f.Reaches, endpoint)
			if f.Ran() && reaches && float64(t+1) > f.OnS && float64(t) < f.OffS+recoverWithin {
				return true
			}
		}
		return false
	}
	var outside []string
	total, failing := 0, 0
	for _, s := range res.Seconds {
		total += s.Failures
		by := s.FailedBy
		if len(by) == 0 && s.Failures > 0 {
			by = map[string]int{"": s.Failures}
		}
		for _, ep := range slices.Sorted(maps.Keys(by)) {
			if n := by[ep]; !covered(s.T, ep) {
				failing += n
				if len(outside) < 5 {
					outside = append(outside, fmt.Sprintf("%d at %ds (%s)", n, s.T, ep))
				}
			}
		}
	}
	var stuck []string
	for _, f := range res.Faults {
		if f.Ran() && f.RecoveredS < 0 {
			stuck = append(stuck, f.Fault)
		}
	}
	c.OK = failing == 0 && len(stuck) == 0
	c.Detail = fmt.Sprintf("%d requests answered 5xx or not at all, %d of them outside the faults", total, failing)
	if len(outside) > 0 {
		c.Detail += " (" + strings.Join(outside, ", ") + ")"
	}
	if len(stuck) > 0 {
		c.Detail += "; not recovered before the end: " + strings.Join(stuck, "; ")
	}
	return c
}

// checkRegular checks that every accepted cart checkout is listed once,
// for its buyer.
func checkRegular(res *result.Replay, orders map[string]api.Order) result.Check {
	c := result.Check{Name: "every accepted checkout is stored once, for its buyer"}
	if len(res.Regular) == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no checkouts accepted ("+featureReason(res, result.FeatureCheckout)+")"
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

// checkLines checks docs/api.md's money invariants on every order.
func checkLines(orders map[string]api.Order) result.Check {
	var bad []string
	for _, o := range orders {
		if err := linesAddUp(o); err != "" {
			bad = append(bad, o.OrderID+": "+err)
		}
	}
	sort.Strings(bad)
	c := result.Check{Name: "every order's lines add up", OK: len(bad) == 0,
		Detail: fmt.Sprintf("%d orders, %d wrong", len(orders), len(bad))}
	if len(bad) > 0 {
		c.Detail += ", e.g. " + bad[0]
	}
	return c
}

// checkRefunds checks that refunds balance to the cent on every refunded
// order: its lines' refunds add up to the order's, no line returns more
// units or money than it had, a REFUNDED order returned exactly what was
// payable and a PARTIALLY_REFUNDED one less. Its detail shows one partial
// refund worked through, so the report shows the books balancing.
func checkRefunds(orders map[string]api.Order) result.Check {
	c := result.Check{Name: "refunds balance to the cent (lines add up to the order; full = payable; partial < payable)"}
	var bad []string
	refunded, partial := 0, 0
	example := ""
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		o := orders[id]
		if o.Refunded == 0 && o.Status != "REFUNDED" && o.Status != "PARTIALLY_REFUNDED" {
			continue
		}
		refunded++
		if err := refundsBalance(o); err != "" {
			bad = append(bad, o.OrderID+": "+err)
			continue
		}
		if o.Status == "PARTIALLY_REFUNDED" {
			partial++
			if example == "" {
				example = refundExample(o)
			}
		}
	}
	c.OK = len(bad) == 0
	c.Detail = fmt.Sprintf("%d refunded orders (%d partly), %d wrong", refunded, partial, len(bad))
	if len(bad) > 0 {
		c.Detail += ", e.g. " + bad[0]
	}
	if example != "" {
		c.Detail += "; e.g. " + example
	}
	return c
}

// checkRefundsApplied checks that every refund a buyer was answered 200
// (SUCCEEDED, or PENDING and finished by the channel later) is on its
// order: the order shows at least that much refunded. Without it a
// platform that answered refunds and never recorded them passed, the
// order's books balancing without them.
func checkRefundsApplied(res *result.Replay, orders map[string]api.Order) result.Check {
	c := result.Check{Name: "every refund answered to a buyer is on its order"}
	var answered int
	var missing []string
	for _, id := range slices.Sorted(maps.Keys(res.Trails)) {
		t := res.Trails[id]
		if t.Refund == 0 {
			continue
		}
		answered++
		if o, ok := orders[id]; ok && o.Refunded < t.Refund {
			missing = append(missing, fmt.Sprintf("order %s was answered a refund of %d cents and shows %d refunded", id, t.Refund, o.Refunded))
		}
	}
	return tally(c, answered, "no refund was answered ("+featureReason(res, result.FeatureRefund)+")",
		fmt.Sprintf("%d refunds answered, %d not on their order", answered, len(missing)), missing)
}

// refundsBalance returns what is wrong with an order's refunds, "" when
// nothing is.
func refundsBalance(o api.Order) string {
	var sum int64
	for _, l := range o.Lines {
		if l.RefundedQuantity < 0 || l.RefundedQuantity > l.Quantity || l.Refunded < 0 || l.Refunded > l.Payable {
			return fmt.Sprintf("line %s refunded %d units for %d of %d units for %d", l.LineID, l.RefundedQuantity, l.Refunded, l.Quantity, l.Payable)
		}
		if l.RefundedQuantity == l.Quantity && l.Refunded != l.Payable {
			return fmt.Sprintf("line %s refunded in full for %d, payable %d", l.LineID, l.Refunded, l.Payable)
		}
		sum += l.Refunded
	}
	switch {
	case sum != o.Refunded:
		return fmt.Sprintf("lines refunded %d, order %d", sum, o.Refunded)
	case o.Status == "REFUNDED" && o.Refunded != o.Payable:
		return fmt.Sprintf("REFUNDED for %d of %d payable", o.Refunded, o.Payable)
	case o.Status == "PARTIALLY_REFUNDED" && (o.Refunded <= 0 || o.Refunded >= o.Payable):
		return fmt.Sprintf("PARTIALLY_REFUNDED for %d of %d payable", o.Refunded, o.Payable)
	}
	return ""
}

// refundExample describes a partial refund line by line.
func refundExample(o api.Order) string {
	var parts []string
	for _, l := range o.Lines {
		if l.RefundedQuantity > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d units (payable %d) returned %d", l.RefundedQuantity, l.Quantity, l.Payable, l.Refunded))
		}
	}
	return fmt.Sprintf("order %s paid %d: %s; refunded %d, kept %d", o.OrderID, o.Payable, strings.Join(parts, ", "), o.Refunded, o.Payable-o.Refunded)
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
