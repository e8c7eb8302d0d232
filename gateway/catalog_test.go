package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/cache"
)

// Public catalogue reads may be kept by a browser, proxy or CDN for a
// second, and a reader that has the page already is told 304 without the
// body; once the page changes, its ETag changes with it.
func TestCatalogueReadsAreCacheableOutside(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 10)
	act := tg.MustActivity(t, admin, sku, 5, 1, now.Add(-time.Minute), now.Add(time.Hour))
	for _, path := range []string{"/api/v1/products/" + sku, "/api/v1/activities/" + act, "/api/v1/activities"} {
		first := tg.do(t, request{method: http.MethodGet, path: path})
		etag := first.header.Get("ETag")
		if first.status != http.StatusOK || len(etag) < 3 || first.header.Get("Cache-Control") != "public, max-age=1" {
			t.Fatalf("GET %s: %d, ETag %q, Cache-Control %q; want 200 with an ETag, public, max-age=1",
				path, first.status, etag, first.header.Get("Cache-Control"))
		}
		for _, match := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			got := tg.do(t, request{method: http.MethodGet, path: path, header: map[string]string{"If-None-Match": match}})
			if got.status != http.StatusNotModified || len(got.body) != 0 || got.header.Get("ETag") != etag {
				t.Errorf("GET %s If-None-Match %s: %d, %d bytes, ETag %q; want 304, no body, the same ETag", path, match, got.status, len(got.body), got.header.Get("ETag"))
			}
		}
		if got := tg.do(t, request{method: http.MethodGet, path: path, header: map[string]string{"If-None-Match": `"other"`}}); got.status != http.StatusOK || len(got.body) == 0 {
			t.Errorf("GET %s with another ETag: %d, %d bytes; want 200 with the page", path, got.status, len(got.body))
		}
	}

	// A buy changes the activity's remaining stock: after the gateway's
	// cache second, the page and its ETag are new.
	path := "/api/v1/activities/" + act
	before := tg.do(t, request{method: http.MethodGet, path: path}).header.Get("ETag")
	if got := tg.do(t, seckill(tg.token(t, 501, "user"), "k", fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act))); got.status != http.StatusAccepted {
		t.Fatalf("buy: %d %s", got.status, got.body)
	}
	tg.clock.Advance(2 * time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := tg.do(t, request{method: http.MethodGet, path: path, header: map[string]string{"If-None-Match": before}})
		if got.status == http.StatusOK && got.header.Get("ETag") != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a buy the page kept its ETag %s (status %d)", before, got.status)
		}
		tg.clock.Advance(time.Second)
	}
}

// An id that does not exist is answered NOT_FOUND from the gateway's
// cache for a second: a scan of made-up ids reaches the product service
// once per id, not once per request.
func TestUnknownIdsAreRememberedForASecond(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	before := tg.productCalls.Load()
	for range 3 {
		for id := 1; id <= 20; id++ {
			got := tg.do(t, request{method: http.MethodGet, path: fmt.Sprintf("/api/v1/products/%d", 9_000_000+id)})
			if got.status != http.StatusNotFound {
				t.Fatalf("unknown product: %d %s, want 404", got.status, got.body)
			}
		}
	}
	if n := tg.productCalls.Load() - before; n != 20 {
		t.Fatalf("three passes over 20 unknown ids made %d product calls, want 20", n)
	}
	tg.clock.Advance(time.Second)
	tg.do(t, request{method: http.MethodGet, path: "/api/v1/products/9000001"})
	if n := tg.productCalls.Load() - before; n != 21 {
		t.Fatalf("after the negative TTL: %d product calls, want 21 (asked again)", n)
	}
}

// TestAnInvalidationDropsTheCachedPage: with the clock standing still
// (the cache never expires by itself), a product read once is served
// from the cache until an invalidation of it arrives; an activity's
// invalidation (a sale being preheated) reloads it at once, before any
// buyer reads it.
func TestAnInvalidationDropsTheCachedPage(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	tg := MustGateway(t, gatewayConfig{productAddr: svc.ProductAddr, orderAddr: svc.OrderAddr})
	admin := tg.token(t, 1, "admin")
	now := tg.clock.Now()
	sku := tg.MustProduct(t, admin, 19900, 10)
	id, err := strconv.ParseInt(sku, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/products/" + sku
	tg.do(t, request{method: http.MethodGet, path: path})
	before := tg.productCalls.Load()
	tg.do(t, request{method: http.MethodGet, path: path})
	if n := tg.productCalls.Load() - before; n != 0 {
		t.Fatalf("a cached product cost %d product calls, want 0", n)
	}
	tg.gw.Invalidated(context.Background(), cache.Invalidation{Kind: cache.KindProduct, ID: id})
	tg.do(t, request{method: http.MethodGet, path: path})
	if n := tg.productCalls.Load() - before; n != 1 {
		t.Fatalf("after the invalidation: %d product calls, want 1", n)
	}

	act := tg.MustActivity(t, admin, sku, 5, 1, now.Add(-time.Minute), now.Add(time.Hour))
	actID, err := strconv.ParseInt(act, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	before = tg.productCalls.Load()
	tg.gw.Invalidated(context.Background(), cache.Invalidation{Kind: cache.KindActivity, ID: actID})
	for tg.productCalls.Load() == before {
		time.Sleep(time.Millisecond) // the warm-up reads in the background
	}
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/activities/" + act}); got.status != http.StatusOK || tg.productCalls.Load()-before != 1 {
		t.Fatalf("the preheated activity: %d after %d product calls; want 200 after the warm-up's one", got.status, tg.productCalls.Load()-before)
	}
}
