package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/platform/errcode"
)

func TestErrorTable(t *testing.T) {
	tests := []struct {
		code errcode.Code
		want int
	}{
		{errcode.InvalidArgument, http.StatusBadRequest},
		{errcode.Unauthenticated, http.StatusUnauthorized},
		{errcode.Forbidden, http.StatusForbidden},
		{errcode.NotFound, http.StatusNotFound},
		{errcode.SoldOut, http.StatusConflict},
		{errcode.LimitExceeded, http.StatusConflict},
		{errcode.ActivityNotActive, http.StatusConflict},
		{errcode.Conflict, http.StatusConflict},
		{errcode.RateLimited, http.StatusTooManyRequests},
		{errcode.Overloaded, http.StatusTooManyRequests},
		{errcode.Unavailable, http.StatusServiceUnavailable},
		{errcode.Internal, http.StatusInternalServerError},
		{errcode.Blocked, http.StatusForbidden},
		{errcode.ChallengeRequired, http.StatusPreconditionRequired},
		{errcode.ChallengeInvalid, http.StatusForbidden},
		{errcode.ChallengeExpired, http.StatusForbidden},
		{errcode.ChallengeEarly, http.StatusTooEarly},
		{errcode.ChallengeUsed, http.StatusConflict},
		{errcode.Code("SOMETHING_NEW"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := gateway.StatusOf(tt.code); got != tt.want {
			t.Errorf("StatusOf(%s) = %d, want %d", tt.code, got, tt.want)
		}
	}
}

func TestUnreachableDownstreamIsUnavailableWithoutDetails(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	for _, path := range []string{"/api/v1/products/1", "/api/v1/activities/1", "/api/v1/activities"} {
		got := tg.do(t, request{method: http.MethodGet, path: path})
		if got.status != http.StatusServiceUnavailable || got.code(t) != "UNAVAILABLE" {
			t.Fatalf("GET %s: got %d %s, want 503 UNAVAILABLE", path, got.status, got.body)
		}
		if strings.Contains(string(got.body), "127.0.0.1") || strings.Contains(string(got.body), "dial") {
			t.Fatalf("GET %s: body %s leaks connection details", path, got.body)
		}
	}
}
