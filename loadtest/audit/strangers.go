package audit

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
)

// checkStrangers checks that no buyer got into another buyer's order:
// every request a stranger made on an order not theirs (drive's visit:
// read, pay, cancel, refund, the payment read) was refused FORBIDDEN (or
// not answered at all), and every order a stranger tried ended as its
// owner left it: not cancelled, not refunded unless its owner asked.
// Payments a stranger opened would also fail the payments check, which
// requires every payment to be its order's buyer's.
func checkStrangers(res *result.Replay, orders map[string]api.Order) result.Check {
	c := result.Check{Name: "strangers were refused: no buyer read, paid, cancelled or refunded another buyer's order"}
	var tried, refused, silent int64
	var letIn []string
	for _, e := range res.Endpoints {
		if !result.IsStrangerEndpoint(e.Endpoint) {
			continue
		}
		tried += e.Count
		switch {
		case e.Outcome == "forbidden":
			refused += e.Count
		case result.Outcome(e.Outcome).Refused() || result.Outcome(e.Outcome).Unknown():
			// A refusal to work (429), a dependency down (503) or no
			// answer says nothing about who may do what.
			silent += e.Count
		default:
			letIn = append(letIn, fmt.Sprintf("%s answered %s %d times", e.Endpoint, e.Outcome, e.Count))
		}
	}
	var visited int
	for _, id := range slices.Sorted(maps.Keys(res.Trails)) {
		t := res.Trails[id]
		if !t.Visited {
			continue
		}
		visited++
		o, ok := orders[id]
		switch {
		case !ok:
		case o.Status == "CANCELLED" && !t.CancelSent:
			letIn = append(letIn, fmt.Sprintf("order %s is CANCELLED, its buyer never cancelled it", id))
		case o.Refunded > 0 && !t.RefundSent:
			letIn = append(letIn, fmt.Sprintf("order %s had %d cents refunded, its buyer never asked", id, o.Refunded))
		}
	}
	if visited == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no stranger tried an order (the scenario's payment.stranger_share is 0, or no order was accepted)"
		return c
	}
	c.OK = len(letIn) == 0
	c.Detail = fmt.Sprintf("%d orders tried by a stranger, %d requests: %d refused FORBIDDEN, %d unanswered (429, 503, none)", visited, tried, refused, silent)
	if len(letIn) > 0 {
		c.Detail += "; let in: " + strings.Join(letIn[:min(len(letIn), 5)], "; ")
	}
	return c
}
