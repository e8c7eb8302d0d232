package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAuthentication(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	now := tg.clock.Now()
	valid := func(claims jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "42", "role": "user", "exp": now.Add(time.Hour).Unix()}
		for k, v := range claims {
			c[k] = v
		}
		return c
	}
	otherSecret := []byte("not-the-gateway-secret-not-the-gateway-secret")
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"not bearer", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"malformed", "Bearer not.a.jwt", http.StatusUnauthorized},
		{"garbage", "Bearer %%%", http.StatusUnauthorized},
		{"expired", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), http.StatusUnauthorized},
		{"no exp", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "role": "user"}), http.StatusUnauthorized},
		{"forged signature", "Bearer " + signToken(t, jwt.SigningMethodHS256, otherSecret, valid(nil)), http.StatusUnauthorized},
		{"alg none", "Bearer " + signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil)), http.StatusUnauthorized},
		{"alg HS512", "Bearer " + signToken(t, jwt.SigningMethodHS512, testSecret, valid(nil)), http.StatusUnauthorized},
		{"sub not digits", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(jwt.MapClaims{"sub": "alice"})), http.StatusUnauthorized},
		{"sub missing", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), http.StatusUnauthorized},
		{"sub negative", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(jwt.MapClaims{"sub": "-42"})), http.StatusUnauthorized},
		// A valid token passes auth and meets the next check: the
		// order id "x" is not a number.
		{"valid user", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(nil)), http.StatusBadRequest},
		{"valid lower-case scheme", "bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(nil)), http.StatusBadRequest},
		{"valid admin", "Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, valid(jwt.MapClaims{"role": "admin"})), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{method: http.MethodGet, path: "/api/v1/orders/x"}
			if tt.header != "" {
				req.header = map[string]string{"Authorization": tt.header}
			}
			got := tg.do(t, req)
			if got.status != tt.want {
				t.Fatalf("status = %d (%s), want %d", got.status, got.body, tt.want)
			}
			wantCode := map[int]string{http.StatusUnauthorized: "UNAUTHENTICATED", http.StatusBadRequest: "INVALID_ARGUMENT"}[tt.want]
			if code := got.code(t); code != wantCode {
				t.Fatalf("code = %s, want %s", code, wantCode)
			}
		})
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

func TestTokenExpiresWithTheClock(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	token := tg.token(t, 7, "user")
	req := request{method: http.MethodGet, path: "/api/v1/orders/x", token: token}
	if got := tg.do(t, req); got.status != http.StatusBadRequest {
		t.Fatalf("fresh token: status = %d, want 400 (past auth)", got.status)
	}
	tg.clock.Advance(2 * time.Hour)
	if got := tg.do(t, req); got.status != http.StatusUnauthorized {
		t.Fatalf("expired token: status = %d, want 401", got.status)
	}
}

// A token's signature is base64url, whose last character carries unused
// bits: decoded loosely, another spelling of a valid token decodes to the
// same signature, and was let in. Only the token as signed is, so a token
// is one string wherever it is compared, logged or listed.
func TestOnlyTheSignedSpellingOfATokenIsTaken(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	valid := tg.token(t, 5, "user")
	if got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/3", token: valid}); got.status == http.StatusUnauthorized {
		t.Fatalf("the valid token was refused: %s", got.body)
	}
	got := tg.do(t, request{method: http.MethodGet, path: "/api/v1/orders/3", token: respell(t, valid)})
	if got.status != http.StatusUnauthorized || got.code(t) != "UNAUTHENTICATED" {
		t.Fatalf("the token respelled: %d %s, want 401 UNAUTHENTICATED", got.status, got.body)
	}
}

// Verified tokens are cached; the cache must not outlive a token's
// validity window in either direction, nor accept an altered copy of a
// token it holds.
func TestVerifiedTokenStillObeysItsWindow(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	now := tg.clock.Now()
	token := signToken(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": "7", "role": "user", "nbf": now.Add(time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	req := request{method: http.MethodGet, path: "/api/v1/orders/x", token: token}
	altered := req
	// A character inside the signature (every bit of it significant).
	i, c := len(token)-10, byte('A')
	if token[i] == c {
		c = 'B'
	}
	altered.token = token[:i] + string(c) + token[i+1:]
	steps := []struct {
		name    string
		advance time.Duration
		req     request
		want    int
	}{
		{"before nbf", 0, req, http.StatusUnauthorized},
		{"valid", 2 * time.Minute, req, http.StatusBadRequest},
		{"valid again (cached)", time.Minute, req, http.StatusBadRequest},
		{"altered signature of a cached token", 0, altered, http.StatusUnauthorized},
		{"expired although cached", time.Hour, req, http.StatusUnauthorized},
	}
	for _, st := range steps {
		tg.clock.Advance(st.advance)
		if got := tg.do(t, st.req); got.status != st.want {
			t.Fatalf("%s: status = %d (%s), want %d", st.name, got.status, got.body, st.want)
		}
	}
}

func TestAdminRoutesNeedTheAdminRole(t *testing.T) {
	tg := MustGateway(t, gatewayConfig{})
	tests := []struct {
		name     string
		path     string
		token    string
		want     int
		wantCode string
	}{
		{"products without token", "/admin/v1/products", "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"products with user token", "/admin/v1/products", tg.token(t, 1, "user"), http.StatusForbidden, "FORBIDDEN"},
		{"products with no role", "/admin/v1/products", tg.token(t, 1, ""), http.StatusForbidden, "FORBIDDEN"},
		{"activities with user token", "/admin/v1/activities", tg.token(t, 1, "user"), http.StatusForbidden, "FORBIDDEN"},
		// The admin passes and meets body validation.
		{"products with admin token", "/admin/v1/products", tg.token(t, 1, "admin"), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"activities with admin token", "/admin/v1/activities", tg.token(t, 1, "admin"), http.StatusBadRequest, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tg.do(t, request{method: http.MethodPost, path: tt.path, token: tt.token, body: `{}`})
			if got.status != tt.want || got.code(t) != tt.wantCode {
				t.Fatalf("got %d %s, want %d %s", got.status, got.body, tt.want, tt.wantCode)
			}
		})
	}
	if n := tg.calls(); n != 0 {
		t.Fatalf("%d downstream calls, want 0", n)
	}
}

func TestDevTokens(t *testing.T) {
	off := MustGateway(t, gatewayConfig{})
	if got := off.do(t, request{method: http.MethodPost, path: "/api/v1/dev/token", body: `{"user_id":"42","role":"user"}`}); got.status != http.StatusNotFound {
		t.Fatalf("dev token with dev mode off: status = %d, want 404", got.status)
	}

	on := MustGateway(t, gatewayConfig{opts: devMode()})
	tests := []struct {
		body     string
		want     int
		wantNext int // status of an admin call with the token
	}{
		{`{"user_id":"42","role":"user"}`, http.StatusOK, http.StatusForbidden},
		{`{"user_id":"42"}`, http.StatusOK, http.StatusForbidden},
		{`{"user_id":"43","role":"admin"}`, http.StatusOK, http.StatusBadRequest},
		{`{"user_id":"42","role":"root"}`, http.StatusBadRequest, 0},
		{`{"user_id":42}`, http.StatusBadRequest, 0},
		{`{"role":"user"}`, http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got := on.do(t, request{method: http.MethodPost, path: "/api/v1/dev/token", body: tt.body})
			if got.status != tt.want {
				t.Fatalf("status = %d (%s), want %d", got.status, got.body, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			var out struct{ Token string }
			got.decode(t, &out)
			next := on.do(t, request{method: http.MethodPost, path: "/admin/v1/products", token: out.Token, body: `{}`})
			if next.status != tt.wantNext {
				t.Fatalf("admin call with the token: status = %d (%s), want %d", next.status, next.body, tt.wantNext)
			}
		})
	}
}
