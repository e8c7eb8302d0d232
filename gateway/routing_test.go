package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestUnknownRoutesAndMethods(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	tests := []struct {
		method, path string
		want         int
		wantCode     string
		wantAllow    string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "/api/v1/payments/1", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "/api/v1/../healthz", http.StatusNotFound, "NOT_FOUND", ""},
		// Paths ServeMux would clean into a route (and redirect to) are
		// no API path either.
		{http.MethodGet, "/api/v1//activities", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "/api/v1/./activities", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "/api/v1/x/../activities", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodPost, "/api/v1/seckill//orders", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "//healthz", http.StatusNotFound, "NOT_FOUND", ""},
		{http.MethodGet, "/api/v1/seckill/orders", http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "POST"},
		{http.MethodDelete, "/api/v1/orders", http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "GET, HEAD, POST"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "GET, HEAD"},
		{http.MethodPut, "/admin/v1/products", http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got := tg.do(t, request{method: tt.method, path: tt.path})
			if got.status != tt.want || got.code(t) != tt.wantCode {
				t.Fatalf("got %d %s, want %d %s", got.status, got.body, tt.want, tt.wantCode)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q, want application/json", ct)
			}
			if allow := got.header.Get("Allow"); allow != tt.wantAllow {
				t.Fatalf("Allow = %q, want %q", allow, tt.wantAllow)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"kept", "req-123", true},
		{"made when missing", "", false},
		{"replaced when too long", strings.Repeat("a", 129), false},
		{"replaced when it has spaces", "a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{method: http.MethodGet, path: "/healthz"}
			if tt.in != "" {
				req.header = map[string]string{"X-Request-Id": tt.in}
			}
			got := tg.do(t, req).header.Get("X-Request-Id")
			if tt.keep && got != tt.in {
				t.Fatalf("X-Request-Id = %q, want %q", got, tt.in)
			}
			if !tt.keep && (got == "" || got == tt.in) {
				t.Fatalf("X-Request-Id = %q, want a fresh id", got)
			}
		})
	}
}

func TestMetricsCountRequestsByRouteAndStatus(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	token := tg.token(t, 9, "user")
	for range 3 {
		tg.do(t, seckill(token, "k", `{"activity_id":"1","quantity":0}`))
	}
	tg.do(t, request{method: http.MethodGet, path: "/nope"})
	got := tg.do(t, request{method: http.MethodGet, path: "/metrics"})
	if got.status != http.StatusOK {
		t.Fatalf("/metrics status = %d", got.status)
	}
	for _, want := range []string{
		`gateway_http_requests_total{route="POST /api/v1/seckill/orders",status="400"} 3`,
		`gateway_http_requests_total{route="unmatched",status="404"} 1`,
		`gateway_http_request_duration_seconds_count{route="POST /api/v1/seckill/orders"} 3`,
	} {
		if !strings.Contains(string(got.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
