package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
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
	p, err := g.productOf(r.Context(), id)
	if err != nil {
		return err
	}
	writeCatalog(w, r, viewProduct(p))
	return nil
}

type activitiesResponse struct {
	Activities []api.Activity `json:"activities"`
}

func (g *Gateway) listActivities(w http.ResponseWriter, r *http.Request) error {
	if served, err := g.listFallback(w, r); served {
		return err
	}
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
	if !shadow.Is(r.Context()) {
		// The copy degraded lists are answered from is the real one: a
		// marked request's list is the pressure test's catalogue.
		g.lastList.Store(&out)
	}
	writeCatalog(w, r, out)
	return nil
}

// getActivity answers from the same cache the seckill path reads, so its
// remaining stock may lag by up to the cache's TTL.
func (g *Gateway) getActivity(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("activity_id", r.PathValue("activity_id"))
	if err != nil {
		return err
	}
	a, err := g.activityOf(r.Context(), id)
	if err != nil {
		return err
	}
	writeCatalog(w, r, viewActivity(a))
	return nil
}

// activityOf reads an activity through the cache, or, with the
// CatalogCacheOnly switch on, from the cache alone.
func (g *Gateway) activityOf(ctx context.Context, id int64) (*productv1.Activity, error) {
	return cachedRead(ctx, g, g.activity, id, "activity")
}

// productOf reads a product the same way.
func (g *Gateway) productOf(ctx context.Context, id int64) (*productv1.Product, error) {
	return cachedRead(ctx, g, g.products, id, "product")
}

func cachedRead[V any](ctx context.Context, g *Gateway, c *cache.Loader[int64, V], id int64, what string) (V, error) {
	if !g.cacheOnly.Load() && g.degrade.level() < LevelSurvive {
		return c.Get(ctx, id)
	}
	if v, ok := c.CachedIn(ctx, id); ok {
		return v, nil
	}
	var zero V
	return zero, &Error{Code: errcode.Unavailable, Message: what + " details are served from cache only right now, retry later", RetryAfter: time.Second}
}

// Invalidated applies a write of the catalogue announced on the
// invalidation channel (cache.Subscriber): the gateway's copy of the key
// is dropped, so its next read asks the product service; a new activity
// (a sale being preheated) is read again at once, so the sale's page is in
// this replica's cache before the buyers come.
func (g *Gateway) Invalidated(ctx context.Context, inv cache.Invalidation) {
	switch inv.Kind {
	case cache.KindProduct:
		g.products.Invalidate(inv.ID)
	case cache.KindActivity:
		g.activity.Invalidate(inv.ID)
		// In the background, so the channel is not held up; an error is
		// the Get's own to remember (or not), and nobody waits for it.
		go func() { _, _ = g.activity.Get(ctx, inv.ID) }()
	}
}

// InvalidationsLost makes the gateway's copies of the catalogue due again
// after its subscription to the invalidations was cut (some may have been
// lost); they stay for the cache-only switch and stale-if-error.
func (g *Gateway) InvalidationsLost() {
	g.products.Expire()
	g.activity.Expire()
}
