package drive

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// probe is a harmless request that reaches a feature's handler when the
// gateway serves it: an unknown order, an empty body, an unknown channel.
// The handler answers it with a 4xx of its own; only the router's answer
// (404 "no such endpoint", or 405 when another method owns the path)
// means the endpoint does not exist.
type probe struct {
	name, method, path, endpoint string
	admin                        bool
	body                         any
}

var probes = []probe{
	{result.FeaturePay, http.MethodPost, "/api/v1/orders/0/pay", "POST /api/v1/orders/{order_id}/pay", false, map[string]any{}},
	{result.FeatureCancel, http.MethodPost, "/api/v1/orders/0/cancel", "POST /api/v1/orders/{order_id}/cancel", false, map[string]any{}},
	{result.FeatureRefund, http.MethodPost, "/api/v1/orders/0/refunds", "POST /api/v1/orders/{order_id}/refunds", false, map[string]any{}},
	{result.FeatureCheckout, http.MethodPost, "/api/v1/orders", "POST /api/v1/orders", false, map[string]any{}},
	{result.FeaturePromotions, http.MethodPost, "/admin/v1/promotions", "POST /admin/v1/promotions", true, map[string]any{}},
	{result.FeatureCoupons, http.MethodPost, "/admin/v1/coupon-templates", "POST /admin/v1/coupon-templates", true, map[string]any{}},
	{result.FeatureChannels, http.MethodPut, "/admin/v1/channels/replay-probe", "PUT /admin/v1/channels/{channel}", true, map[string]any{}},
}

// noEndpointMessage is the gateway router's message for a path it does
// not serve (gateway/middleware.go).
const noEndpointMessage = "no such endpoint"

// endpointMissing reports whether err is the router's answer for an
// endpoint the gateway does not serve, and its status.
func endpointMissing(err error) (int, bool) {
	var e *client.APIError
	if !errors.As(err, &e) {
		return 0, false
	}
	if e.Status == http.StatusNotFound && e.Message == noEndpointMessage || e.Status == http.StatusMethodNotAllowed {
		return e.Status, true
	}
	return 0, false
}

// ProbeFeatures asks the gateway which optional endpoints it serves.
func ProbeFeatures(ctx context.Context, gateway *client.Client, user, admin string) (map[string]result.Feature, error) {
	out := map[string]result.Feature{}
	for _, p := range probes {
		tok := user
		if p.admin {
			tok = admin
		}
		_, err := gateway.Do(ctx, p.method, p.path, tok, map[string]string{"Idempotency-Key": "replay-probe"}, p.body, nil)
		f := result.Feature{Name: p.name, Endpoint: p.endpoint, Available: true}
		var answer *client.APIError
		if status, missing := endpointMissing(err); missing {
			f.Available, f.Reason = false, fmt.Sprintf("skipped: endpoint not available (%d)", status)
		} else if err != nil && !errors.As(err, &answer) {
			return nil, fmt.Errorf("probe %s: %w", p.endpoint, err)
		}
		out[p.name] = f
	}
	return out, nil
}
