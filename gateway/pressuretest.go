package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
)

// Pressure-test traffic (全链路压测, docs/pressure-test.md): a request
// whose X-Pressure-Test header carries a load-test token is marked
// (platform/shadow) before anything else runs for it, and the mark
// travels to every service, topic and store, which route it to shadow
// storage. The token is a JWT signed like the bearer tokens, with the
// role "loadtest", issued only to admins by POST /admin/v1/load-test-tokens
// and short-lived. The header with anything else is refused with
// FORBIDDEN: a request that asked to be marked is never served unmarked
// (it would write real orders), nor marked on a caller's word.

// RoleLoadTest is the role claim of a load-test token. Such a token
// marks requests; it is not a bearer token and authenticates nobody.
const RoleLoadTest = "loadtest"

// Load-test tokens live an hour unless asked for less; at most a day.
const (
	DefaultLoadTestTTL = time.Hour
	MaxLoadTestTTL     = 24 * time.Hour
)

// errPressureTestToken is the answer to the header without a valid token.
func errPressureTestToken(why string) *Error {
	return errorf(errcode.Forbidden, shadow.Header+" "+why+": it must carry a load-test token from POST /admin/v1/load-test-tokens")
}

// pressureTest checks the values of the X-Pressure-Test header.
func (a *authenticator) pressureTest(values []string) error {
	if len(values) != 1 || values[0] == "" {
		return errPressureTestToken("must appear once, not empty")
	}
	var claims Claims
	if _, err := a.parser.ParseWithClaims(values[0], &claims, func(*jwt.Token) (any, error) { return a.secret, nil }); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return errPressureTestToken("holds an expired token")
		}
		return errPressureTestToken("holds an invalid token")
	}
	if claims.Role != RoleLoadTest {
		return errPressureTestToken("holds a token that is not a load-test token")
	}
	return nil
}

// markPressureTest marks r's context when it carries the header with a
// valid load-test token, and refuses it when it carries the header with
// anything else.
func (g *Gateway) markPressureTest(r *http.Request) (*http.Request, error) {
	values := r.Header.Values(shadow.Header)
	if values == nil {
		return r, nil
	}
	if err := g.auth.pressureTest(values); err != nil {
		return nil, err
	}
	infoOf(r.Context()).shadow = true
	return r.WithContext(shadow.With(r.Context())), nil
}

// pausePressureTest refuses a marked request on a buyer's route while the
// platform is degraded, whether the controller or an operator set the
// level: a pressure test exists to find the platform's edge without
// hurting buyers, so once the real sale is under pressure the test stops
// (the seed's 压测熔断) and resumes by itself when the level is back to
// normal. Admin routes (and the big screen's stream) stay open to it, so
// that a test can set up and read back its shadow catalogue.
func (g *Gateway) pausePressureTest(ctx context.Context, route string, access access) error {
	if !infoOf(ctx).shadow || access == adminOnly || access == screenView {
		return nil
	}
	level := g.degrade.level()
	if level == LevelNormal {
		return nil
	}
	g.metrics.refused.WithLabelValues(route, refusedYield).Inc()
	return &Error{Code: errcode.Overloaded, RetryAfter: degradedRetryAfter,
		Message: "pressure tests are paused while the platform is degraded (" + level.String() + "), retry later"}
}

type loadTestTokenResponse struct {
	Token     string `json:"token"`
	Header    string `json:"header"`
	ExpiresAt string `json:"expires_at"`
}

// issueLoadTestToken answers POST /admin/v1/load-test-tokens.
func (g *Gateway) issueLoadTestToken(w http.ResponseWriter, r *http.Request) error {
	token, expires, err := g.issueRoleToken(r, RoleLoadTest, DefaultLoadTestTTL, MaxLoadTestTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, loadTestTokenResponse{Token: token, Header: shadow.Header, ExpiresAt: expires})
	return nil
}

// trafficOf is the metric label value of a finished request.
func trafficOf(ctx context.Context) string {
	if infoOf(ctx).shadow {
		return shadow.LabelShadow
	}
	return shadow.LabelReal
}
