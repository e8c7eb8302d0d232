package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/testing/consultest"
)

// TestNotReadyUntilItsSettingsAreRead: a replica started while Consul
// cannot answer its settings (no leader) is alive but not ready, and
// answers every route but the probes UNAVAILABLE with Retry-After: on
// its environment's values it would let in an account an operator
// blocked in Consul. Once Consul answers, the settings are applied and
// the replica serves, the account refused.
func TestNotReadyUntilItsSettingsAreRead(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	consul := consultest.MustStart(t)
	consul.Put(app.SettingsPrefix+gateway.KeyBlockUsers, "7")
	consul.SetKVDown(true)
	base := MustGateway(t, app.Config{DevTokens: true, ProductAddr: svc.ProductAddr, OrderAddr: svc.OrderAddr,
		Discovery: discovery.Config{ConsulAddr: consul.Addr(), AdvertiseHost: "127.0.0.1"}})

	if status, body := call(t, http.MethodGet, base+"/readyz", "", ""); status != http.StatusServiceUnavailable || !strings.Contains(body, "settings in consul") {
		t.Fatalf("/readyz before the settings are read = %d %s, want 503 naming them", status, body)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if status, _ := call(t, http.MethodGet, base+path, "", ""); status != http.StatusOK {
			t.Errorf("%s before the settings are read = %d, want 200", path, status)
		}
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/dev/token", `{"user_id":"7"}`},
		{http.MethodGet, "/api/v1/activities", ""},
		{http.MethodPost, "/api/v1/seckill/orders", `{"activity_id":"1","quantity":1}`},
	} {
		req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var answer struct{ Error struct{ Code string } }
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || err != nil || answer.Error.Code != "UNAVAILABLE" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s before the settings are read = %d %+v (%v), Retry-After %q, want 503 UNAVAILABLE with Retry-After",
				r.method, r.path, resp.StatusCode, answer, err, resp.Header.Get("Retry-After"))
		}
	}

	consul.SetKVDown(false)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if status, _ := call(t, http.MethodGet, base+"/readyz", "", ""); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 15 s after Consul answered")
		}
	}
	status, body := call(t, http.MethodPost, base+"/api/v1/dev/token", "", `{"user_id":"7"}`)
	var tok struct{ Token string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("dev token once ready: %d %s", status, body)
	}
	status, body = call(t, http.MethodPost, base+"/api/v1/seckill/orders", tok.Token, `{"activity_id":"1","quantity":1}`)
	if status != http.StatusForbidden || !strings.Contains(body, "BLOCKED") {
		t.Fatalf("a buy by the account blocked in Consul = %d %s, want 403 BLOCKED", status, body)
	}
}
