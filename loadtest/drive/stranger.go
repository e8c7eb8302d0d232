package drive

import (
	"context"
	"net/http"
	"time"

	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// strangerOf is the replay user who visits u's order: the next user in
// the list, so every stranger is a real, signed-in buyer. ok is false
// when the replay has one user only.
func (r *replay) strangerOf(u client.User) (client.User, bool) {
	for i, v := range r.users {
		if v.ID == u.ID {
			s := r.users[(i+1)%len(r.users)]
			return s, s.ID != u.ID
		}
	}
	return client.User{}, false
}

// visit is a stranger trying another buyer's order once the buyer's own
// follow-up is done and the sale is over: read it, pay it, cancel it,
// refund a unit of it and read its payment. Each answer is recorded under
// result.StrangerEndpoint, and the audit requires every one to be a
// refusal (FORBIDDEN) and the order to end as its owner left it
// (audit.checkStrangers). The visits wait for the last phase to end and
// spread over the first half of the drain by spread (the order's hash),
// so the sale's figures are those of its buyers alone.
func (r *replay) visit(ctx context.Context, owner client.User, orderID string, spread uint64) {
	stranger, ok := r.strangerOf(owner)
	if !ok {
		return
	}
	after := r.start.Add(r.scenario.End()).Add(time.Duration(spread % uint64(r.scenario.Drain.D()/2+1)))
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(after)):
	}
	// The owner's read, once the order is stored: the line and payment
	// a stranger who learned them would name.
	o, err := r.settled(ctx, owner, orderID)
	if err != nil {
		return
	}
	r.orders.note(orderID, owner, func(t *result.Trail) { t.Visited = true })
	try := func(endpoint, method, path string, headers map[string]string, body any) {
		r.call(ctx, result.StrangerEndpoint(endpoint), time.Now(), method, path, stranger.Token, headers, body, nil)
	}
	try(EndpointOrder, http.MethodGet, "/api/v1/orders/"+orderID, nil, nil)
	if r.features[result.FeaturePay].Available {
		try(EndpointPay, http.MethodPost, "/api/v1/orders/"+orderID+"/pay", nil, map[string]any{"channel": "auto"})
	}
	if r.features[result.FeatureCancel].Available {
		try(EndpointCancel, http.MethodPost, "/api/v1/orders/"+orderID+"/cancel", nil, nil)
	}
	if r.features[result.FeatureRefund].Available && len(o.Lines) > 0 {
		try(EndpointRefund, http.MethodPost, "/api/v1/orders/"+orderID+"/refunds",
			map[string]string{"Idempotency-Key": "stranger-" + orderID},
			map[string]any{"lines": []map[string]any{{"line_id": o.Lines[0].LineID, "quantity": 1}}})
	}
	if o.Payment != nil {
		try(EndpointPayment, http.MethodGet, "/api/v1/payments/"+o.Payment.PaymentID, nil, nil)
	}
}
