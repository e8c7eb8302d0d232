package gateway

import (
	"net/http"

	"github.com/flashsale/flashsale/gateway/api"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// getProduct answers a product from the short-lived cache, so a storm of
// detail-page reads before a sale reaches the product service about once
// a second per product.
func (g *Gateway) getProduct(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("sku_id", r.PathValue("sku_id"))
	if err != nil {
		return err
	}
	p, err := g.products.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewProduct(p))
	return nil
}

type activitiesResponse struct {
	Activities []api.Activity `json:"activities"`
}

func (g *Gateway) listActivities(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	resp, err := g.product.ListActivities(ctx, &productv1.ListActivitiesRequest{})
	if err != nil {
		return err
	}
	out := activitiesResponse{Activities: make([]api.Activity, 0, len(resp.GetActivities()))}
	for _, a := range resp.GetActivities() {
		out.Activities = append(out.Activities, viewActivity(a))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getActivity answers from the same cache the seckill path reads, so its
// remaining stock may lag by up to the cache's TTL.
func (g *Gateway) getActivity(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("activity_id", r.PathValue("activity_id"))
	if err != nil {
		return err
	}
	a, err := g.activity.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewActivity(a))
	return nil
}
