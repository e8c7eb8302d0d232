package drive

import (
	"context"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// payPlan is how a buyer pays: through channel (a preference), also
// through a second channel when duplicate, confirming in the wallet only
// after the order expired when late; refund asks a partial refund after.
type payPlan struct {
	channel         string
	late, duplicate bool
	refund          bool
}

// followUp decides, from the order id and the seed, what the buyer does
// with an accepted order, and does it after the scenario's delay.
func (r *replay) followUp(ctx context.Context, u client.User, orderID string) {
	r.orders.note(orderID, u, func(*result.Trail) {})
	h := fnv.New64a()
	h.Write([]byte(orderID))
	rng := rand.New(rand.NewPCG(r.scenario.Seed, h.Sum64()))
	pay := r.scenario.Payment
	roll := rng.Float64()
	lo, hi := pay.Delay[0].D(), pay.Delay[1].D()
	delay := lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	var feature string
	var act func(context.Context)
	switch {
	case roll < pay.PayShare:
		feature = result.FeaturePay
		kind := rng.Float64()
		plan := payPlan{channel: pickChannel(rng, pay.Channels), late: kind < pay.LateShare,
			duplicate: kind >= pay.LateShare && kind < pay.LateShare+pay.DuplicateShare, refund: rng.Float64() < pay.RefundShare}
		act = func(ctx context.Context) { r.pay(ctx, u, orderID, plan) }
	case roll < pay.PayShare+pay.CancelShare:
		feature = result.FeatureCancel
		act = func(ctx context.Context) { r.cancel(ctx, u, orderID) }
	default:
		r.buyers.count(func(f *result.FollowUps) { f.Abandoned++ })
	}
	if act != nil && !r.features[feature].Available {
		r.buyers.count(func(f *result.FollowUps) { f.Skipped++ })
		act = nil
	}
	// A stranger visits a share of the orders once their buyer is done
	// with them and the sale is over (visit). The draw comes last, so
	// the buyer's draws above are those they were without it.
	visit := rng.Float64() < pay.StrangerShare
	if act == nil && !visit {
		return
	}
	r.buyers.wg.Add(1)
	time.AfterFunc(delay, func() {
		defer r.buyers.wg.Done()
		if act != nil {
			act(ctx)
		}
		if visit {
			r.visit(ctx, u, orderID, h.Sum64())
		}
	})
}

func pickChannel(rng *rand.Rand, weights map[string]int) string {
	total := 0
	names := make([]string, 0, len(weights))
	for ch, w := range weights {
		names = append(names, ch)
		total += w
	}
	if total == 0 {
		return "auto"
	}
	slices.Sort(names)
	n := rng.IntN(total)
	for _, ch := range names {
		if n -= weights[ch]; n < 0 {
			return ch
		}
	}
	return "auto"
}

// settled waits until an order has left PROCESSING (the consumer stored
// it) and returns it.
func (r *replay) settled(ctx context.Context, u client.User, orderID string) (api.Order, error) {
	return r.await(ctx, u, orderID, func(o api.Order) bool { return o.Status != "PROCESSING" })
}

// await reads an order until done says so (or about 20 seconds pass) and
// returns the last read.
func (r *replay) await(ctx context.Context, u client.User, orderID string, done func(api.Order) bool) (api.Order, error) {
	for i := 0; ; i++ {
		o, err := client.WithRetryAfter(ctx, func() (api.Order, error) { return r.gateway.GetOrder(ctx, u.Token, orderID) })
		if err != nil || done(o) || i == 100 {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lateSlack is how long after an order's expiry a late payer confirms,
// so that the expiry worker has run.
const lateSlack = 2 * time.Second

func (r *replay) pay(ctx context.Context, u client.User, orderID string, plan payPlan) {
	o, err := r.settled(ctx, u, orderID)
	if err != nil || o.Status != "PENDING_PAYMENT" {
		r.buyers.count(func(f *result.FollowUps) { f.PayFailed++ })
		return
	}
	first, ok := r.open(ctx, u, orderID, plan.channel)
	if !ok {
		r.buyers.count(func(f *result.FollowUps) { f.PayFailed++ })
		return
	}
	payments := []api.Payment{first}
	if plan.duplicate {
		if p, ok := r.open(ctx, u, orderID, r.otherChannel(first.Channel)); ok && p.PaymentID != first.PaymentID {
			payments = append(payments, p)
		}
	}
	if plan.late {
		if o.ExpiresAt == nil || o.ExpiresAt.Add(lateSlack).After(r.buyers.end) {
			r.buyers.count(func(f *result.FollowUps) { f.LateCutOff++ })
			return
		}
		select {
		case <-ctx.Done():
			r.buyers.count(func(f *result.FollowUps) { f.PayFailed++ })
			return
		case <-time.After(time.Until(o.ExpiresAt.Add(lateSlack))):
		}
	}
	confirmed := 0
	for _, p := range payments {
		if r.confirm(ctx, p) {
			confirmed++
			r.orders.note(orderID, u, func(t *result.Trail) { t.Confirmed = append(t.Confirmed, p.PaymentID) })
		}
	}
	r.buyers.count(func(f *result.FollowUps) {
		switch {
		case confirmed == 0:
			f.PayFailed++
			return
		case plan.late:
			f.LatePaid++
		case len(payments) > 1:
			f.Duplicated++
		}
		f.Paid++
	})
	if confirmed == 0 || plan.late || !plan.refund || len(o.Lines) == 0 {
		return
	}
	if !r.features[result.FeatureRefund].Available {
		r.buyers.count(func(f *result.FollowUps) { f.Skipped++ })
		return
	}
	// The callback settles the payment asynchronously: the buyer asks
	// for the refund once the order shows paid.
	if _, err = r.await(ctx, u, orderID, func(o api.Order) bool { return o.Status == "PAID" }); err == nil {
		r.orders.note(orderID, u, func(t *result.Trail) { t.RefundSent = true })
		var answer api.Refund
		err = r.call(ctx, EndpointRefund, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/refunds", u.Token,
			map[string]string{"Idempotency-Key": "refund-" + orderID},
			map[string]any{"lines": []map[string]any{{"line_id": o.Lines[0].LineID, "quantity": 1}}}, &answer)
		if err == nil {
			r.orders.note(orderID, u, func(t *result.Trail) { t.Refund = answer.Amount })
		}
	}
	r.buyers.count(func(f *result.FollowUps) {
		if err != nil {
			f.RefundFailed++
		} else {
			f.Refunded++
		}
	})
}

// open asks the platform to pay an order through channel (a preference
// the router may override) and returns the payment it opened.
func (r *replay) open(ctx context.Context, u client.User, orderID, channel string) (api.Payment, bool) {
	var p api.Payment
	t0 := time.Now()
	err := r.call(ctx, EndpointPay, t0, http.MethodPost, "/api/v1/orders/"+orderID+"/pay", u.Token,
		nil, map[string]any{"channel": channel}, &p)
	if err != nil {
		r.rec.payment(channel, outcomeOf(err))
		return p, false
	}
	r.rec.payment(p.Channel, p.Status)
	r.rec.channelLatency(p.Channel, stepPay, time.Since(t0))
	r.orders.note(orderID, u, func(t *result.Trail) { t.Payments = append(t.Payments, p.PaymentID) })
	return p, true
}

// confirmAttempts bounds a buyer's tries at the wallet while the channel
// answers 503 (down, failing), a second apart.
const confirmAttempts = 5

// confirm is the buyer paying at the channel's pay URL; the channel then
// notifies the platform. A payment already settled needs nothing.
func (r *replay) confirm(ctx context.Context, p api.Payment) bool {
	if p.Status != "PAYING" || p.PayURL == "" {
		return p.Status == "SUCCEEDED"
	}
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		err := r.call(ctx, EndpointWallet, t0, http.MethodPost, p.PayURL, "", nil, nil, nil)
		if err == nil {
			r.rec.channelLatency(p.Channel, stepWallet, time.Since(t0))
			return true
		}
		if attempt == confirmAttempts {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

// otherChannel is a scenario channel other than ch, for a duplicate
// payment.
func (r *replay) otherChannel(ch string) string {
	for _, c := range slices.Sorted(maps.Keys(r.scenario.Payment.Channels)) {
		if c != ch {
			return c
		}
	}
	return ch
}

func (r *replay) cancel(ctx context.Context, u client.User, orderID string) {
	_, err := r.settled(ctx, u, orderID)
	if err == nil {
		r.orders.note(orderID, u, func(t *result.Trail) { t.CancelSent = true })
		err = r.call(ctx, EndpointCancel, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/cancel", u.Token, nil, nil, nil)
	}
	if err == nil {
		r.orders.note(orderID, u, func(t *result.Trail) { t.Cancelled = true })
	}
	r.buyers.count(func(f *result.FollowUps) {
		if err != nil {
			f.CancelFailed++
		} else {
			f.Cancelled++
		}
	})
}
