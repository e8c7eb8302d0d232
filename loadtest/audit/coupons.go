package audit

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// couponWait bounds how long the coupon check waits for the coupons and
// their orders to agree: an order that ended a moment ago gives its
// coupon back just after its status changes, and a give-back that failed
// under a fault is retried by the expiry worker's sweep.
const couponWait = 15 * time.Second

// holdsCoupon says whether an order in status holds the coupon it
// consumed: it gives it back when it is cancelled, expires or is
// refunded in full (after the refund's money is back: a REFUNDED order
// whose last refund is still PENDING holds it a little longer, which the
// books' settling and the check's wait cover).
func holdsCoupon(status string) bool {
	return !slices.Contains([]string{"CANCELLED", "EXPIRED", "REFUNDED"}, status)
}

// ownedCoupon is a coupon as its buyer's list shows it, with the buyer.
type ownedCoupon struct {
	api.Coupon
	owner int64
}

// checkCouponsConserved checks the coupons of the replay's templates
// against their orders: no template issued more than its total, no buyer
// holds more than one of a template (the replay's per-user limit), every
// order that holds a coupon finds it USED for itself, and every USED
// coupon is held by its order. A coupon AVAILABLE while an order holds
// it can take its discount a second time (a misprice); one left USED by
// an order that gave it back is lost to its buyer. While they disagree
// the orders (relist) and the coupons are read again, a second apart,
// for up to wait. A coupon used by an order never stored passes when its
// checkout was answered with an error that can come after the coupon was
// taken (anything but a gateway's 429): the order service gives it back
// at once, or, when that fails, the stray sweep later.
func checkCouponsConserved(ctx context.Context, gateway *client.Client, res *result.Replay, orders map[string]api.Order, relist func() (map[string]api.Order, error), wait time.Duration) (result.Check, error) {
	c := result.Check{Name: "every coupon issued is held by at most its order, and within its template's total"}
	if len(res.Coupons.Issued) == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no coupon templates ("+featureReason(res, result.FeatureCoupons)+")"
		return c, nil
	}
	return untilAgreed(ctx, orders, relist, wait, func(orders map[string]api.Order) (result.Check, error) {
		coupons, err := readCoupons(ctx, gateway, res)
		if err != nil { // a failed round, read again while there is time
			c.OK, c.Detail = false, "coupons unread: "+err.Error()
			return c, nil
		}
		wrong, used, unanswered := couponFindings(res, orders, coupons)
		c.OK = len(wrong) == 0
		c.Detail = fmt.Sprintf("%d templates, %d coupons issued, %d used by their orders, %d by checkouts not answered", len(res.Coupons.Issued), len(coupons), used, unanswered)
		if !c.OK {
			if len(wrong) > 5 {
				wrong = append(wrong[:5], fmt.Sprintf("and %d more", len(wrong)-5))
			}
			c.Detail += ": " + strings.Join(wrong, "; ")
		}
		return c, nil
	})
}

// couponFindings lists what is wrong between the coupons and the orders,
// and counts the coupons used by the orders that hold them and those
// used by an order never stored, whose checkout was not answered (they
// wait for the stray sweep).
func couponFindings(res *result.Replay, orders map[string]api.Order, coupons map[string]ownedCoupon) (wrong []string, used, unanswered int) {
	perTemplate := map[string]int64{}
	perBuyer := map[string]int{}
	for _, cp := range coupons {
		perTemplate[cp.TemplateID]++
		perBuyer[fmt.Sprint(cp.TemplateID, "/", cp.owner)]++
	}
	for _, t := range slices.Sorted(maps.Keys(res.Coupons.Issued)) {
		if perTemplate[t] > res.Coupons.Issued[t] {
			wrong = append(wrong, fmt.Sprintf("template %s issued %d coupons, its total is %d", t, perTemplate[t], res.Coupons.Issued[t]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(perBuyer)) {
		if perBuyer[k] > 1 {
			wrong = append(wrong, fmt.Sprintf("template/buyer %s holds %d coupons, the limit is 1", k, perBuyer[k]))
		}
	}
	// Every coupon a claim was answered is listed: a missing one is a
	// coupon lost (or an order's coupon this check cannot see).
	if n := int64(len(coupons)); n < res.Coupons.Claimed {
		wrong = append(wrong, fmt.Sprintf("%d coupons claimed, %d in their buyers' lists", res.Coupons.Claimed, n))
	}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		o := orders[id]
		cp, ours := coupons[o.CouponID]
		if o.CouponID == "" || !ours || !holdsCoupon(o.Status) {
			continue
		}
		switch {
		case cp.Status != "USED" || cp.OrderID != id:
			wrong = append(wrong, fmt.Sprintf("order %s (%s) holds coupon %s, which is %s for order %q: its discount can be taken again", id, o.Status, cp.CouponID, cp.Status, cp.OrderID))
		case strconv.FormatInt(cp.owner, 10) != o.UserID:
			wrong = append(wrong, fmt.Sprintf("order %s of buyer %s holds coupon %s of buyer %d", id, o.UserID, cp.CouponID, cp.owner))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(coupons)) {
		cp := coupons[id]
		if cp.Status != "USED" {
			continue
		}
		o, ok := orders[cp.OrderID]
		if !ok && res.Coupons.Unanswered[id] {
			unanswered++
			continue
		}
		if !ok || o.CouponID != id || !holdsCoupon(o.Status) {
			status := cmp.Or(o.Status, "no such order")
			wrong = append(wrong, fmt.Sprintf("coupon %s is USED for order %s, which does not hold it (%s): lost to its buyer", id, cp.OrderID, status))
			continue
		}
		used++
	}
	return wrong, used, unanswered
}

// readCoupons reads every buyer's coupons of the replay's templates, by
// coupon id.
func readCoupons(ctx context.Context, gateway *client.Client, res *result.Replay) (map[string]ownedCoupon, error) {
	var mu sync.Mutex
	out := map[string]ownedCoupon{}
	err := eachUser(res.UsersList, func(u client.User) error {
		list, err := client.WithRetryAfter(ctx, func() ([]api.Coupon, error) { return gateway.ListCoupons(ctx, u.Token) })
		if err != nil {
			return fmt.Errorf("audit: coupons of user %d: %w", u.ID, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, cp := range list {
			if _, ours := res.Coupons.Issued[cp.TemplateID]; ours {
				out[cp.CouponID] = ownedCoupon{Coupon: cp, owner: u.ID}
			}
		}
		return nil
	})
	return out, err
}
