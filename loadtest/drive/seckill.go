package drive

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// seckill is a buyer's click on the sale's button, as a browser sends
// it: from the buyer's device, and when the sale requires a challenge,
// after fetching, solving and waiting it out (passChallenge); the buy is
// then due when it is sent, after the wait.
func (r *replay) seckill(ctx context.Context, p scenario.Phase, a arrival, due time.Time) {
	ledger, act := r.catalog.ledgers[a.activity], r.catalog.sales[a.activity]
	headers := map[string]string{api.DeviceHeader: deviceOf(r.users[a.user])}
	if act.Challenge {
		if !r.passChallenge(ctx, r.users[a.user], act.ActivityID, headers, due) {
			return
		}
		due = time.Now()
	}
	key, replayed := ledger.nextKey(a.user, a.replay)
	order, err := buy(ctx, r.gateway, r.users[a.user].Token, act.ActivityID, p.Quantity, key, headers)
	out := ledger.settle(a.user, key, replayed, p.Quantity, order, err)
	r.rec.done(EndpointSeckill, string(out), due, time.Now())
	if out.Unknown() {
		r.comeBack(ctx, ledger, act.ActivityID, a.user, key, headers, replayed, out, p.Quantity)
	}
	if out == result.Accepted {
		r.load.accepted.Add(1)
		r.followUp(ctx, r.users[a.user], order.OrderID)
	}
}

// comeBackAfter are the waits of a buyer who got no answer (503 after
// the client's quick retries) before asking again with the same key, as a
// buyer told to retry does: a call that timed out may have made the order,
// and only the key finds it, within the order's payment window. Six
// tries over 14 s stay inside the shortest window a scenario uses (20 s):
// after it an unpaid order has expired and its key is free again.
var comeBackAfter = []time.Duration{1 * time.Second, 2 * time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}

// comeBack asks again with the key after each wait of comeBackAfter
// until the platform answers about the key (not 503, not 429), and books
// that answer for the attempt.
func (r *replay) comeBack(ctx context.Context, ledger *saleLedger, activityID string, user int, key string, headers map[string]string, replayed bool, was result.Outcome, quantity int64) {
	r.load.requests.Go(func() {
		for _, wait := range comeBackAfter {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			order, err := buy(ctx, r.gateway, r.users[user].Token, activityID, quantity, key, headers)
			if o := classify(err); o.Unknown() || o.Refused() {
				// A 429 says only that the gateway did not look: the
				// order the key may have made is still unknown.
				ledger.heard(user, key, o)
				continue
			}
			if ledger.answeredLater(user, key, replayed, quantity, was, order, err) == result.Accepted {
				r.load.accepted.Add(1)
			}
			return
		}
	})
}

func (r *replay) placeRegular(ctx context.Context, a arrival, due time.Time) {
	lines := make([]map[string]any, len(a.skus))
	var list int64
	for i, k := range a.skus {
		lines[i] = map[string]any{"sku_id": r.catalog.skus[k], "quantity": a.quantity[i]}
		list += r.catalog.prices[k] * a.quantity[i]
	}
	user := r.users[a.user]
	key := "c" + strconv.FormatInt(user.ID, 10) + "-" + strconv.FormatInt(r.orders.checkouts.Add(1), 10)
	body := map[string]any{"lines": lines}
	coupon, withCoupon := heldCoupon{}, false
	if a.coupon {
		if coupon, withCoupon = r.coupons.take(a.user, list); withCoupon {
			body["coupon_id"] = coupon.id
		}
	}
	// unaccounted notes the cart's units as ones a checkout may hold
	// though the replay has no order for them: one unanswered, or one
	// refused after its stock was taken (a coupon CONFLICT, whose undo
	// may fail under a fault), until the stray sweep gives them back.
	unaccounted := func() {
		r.orders.mu.Lock()
		defer r.orders.mu.Unlock()
		for i, k := range a.skus {
			r.orders.unknownUnits[r.catalog.skus[k]] += a.quantity[i]
		}
	}
	var o api.Order
	err := r.call(ctx, EndpointCheckout, due, http.MethodPost, "/api/v1/orders", user.Token,
		map[string]string{"Idempotency-Key": key}, body, &o)
	if withCoupon && err != nil {
		// The coupon stays the buyer's; one the cart does not reach
		// (CONFLICT) is dropped from the cart, as a buyer would.
		r.coupons.giveBack(a.user, coupon)
		if outcomeOf(err) == "conflict" {
			unaccounted()
			r.coupons.count(func(s *result.CouponStats) { s.Refused++ })
			delete(body, "coupon_id")
			withCoupon = false
			err = r.call(ctx, EndpointCheckout, due, http.MethodPost, "/api/v1/orders", user.Token,
				map[string]string{"Idempotency-Key": key + "-plain"}, body, &o)
		}
	}
	if err != nil {
		out := outcomeOf(err)
		if serverFailure(out) || out == "conflict" {
			unaccounted()
		}
		// The coupon is used beside the stock reservation, so any refusal
		// but the gateway's 429 may come after it was taken, and its
		// give-back may fail under a fault.
		if withCoupon && !result.Outcome(out).Refused() {
			r.coupons.count(func(s *result.CouponStats) {
				if s.Unanswered == nil {
					s.Unanswered = map[string]bool{}
				}
				s.Unanswered[coupon.id] = true
			})
		}
		return
	}
	r.orders.mu.Lock()
	r.orders.regular[o.OrderID] = user.ID
	r.orders.mu.Unlock()
	if withCoupon {
		r.coupons.count(func(s *result.CouponStats) { s.Used++ })
		r.orders.note(o.OrderID, user, func(t *result.Trail) { t.Coupon = coupon.id })
	}
	r.followUp(ctx, user, o.OrderID)
}
