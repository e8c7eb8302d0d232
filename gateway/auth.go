package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
)

// Roles a token's role claim may carry (and RoleLoadTest, which marks
// requests and authenticates nobody). No role is a buyer's.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
	// RoleScreen reads the big screen and nothing else: the token an
	// admin mints for a display (POST /admin/v1/screen-tokens), so that
	// no admin token sits in a wall screen's browser.
	RoleScreen = "screen"
)

// access is what a route requires of its caller.
type access int

const (
	public access = iota
	userOnly
	adminOnly
	// screenView: the big screen's figures, for an admin or a screen.
	screenView
)

// admit refuses a caller whose role the route's access does not take: a
// buyer's route takes buyers and admins, an admin route admins, the big
// screen's stream admins and screens. A role the gateway does not know
// is taken nowhere.
func (a access) admit(role string) error {
	switch a {
	case userOnly:
		if role == "" || role == RoleUser || role == RoleAdmin {
			return nil
		}
		return errorf(errcode.Forbidden, "this endpoint needs a user token")
	case adminOnly:
		if role == RoleAdmin {
			return nil
		}
		return errorf(errcode.Forbidden, "this endpoint needs an admin token")
	case screenView:
		if role == RoleAdmin || role == RoleScreen {
			return nil
		}
		return errorf(errcode.Forbidden, "this endpoint needs an admin or screen token")
	case public:
		return nil
	}
	return errorf(errcode.Forbidden, "this endpoint takes no token")
}

// Claims are the claims of the gateway's tokens: sub is the decimal user
// id, role is "admin" for admin calls, "screen" for the big screen's.
type Claims struct {
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// principal is the authenticated caller.
type principal struct {
	UserID  int64
	Role    string
	Expires time.Time // the token's exp: a stream it opened ends then
	Issued  time.Time // the token's iat (zero without one): Settings.ScreenRetiredUntil reads it
}

// authenticator verifies and issues HS256 tokens.
type authenticator struct {
	secret   []byte
	clock    clock.Clock
	parser   *jwt.Parser
	verified verifiedTokens
}

func newAuthenticator(secret []byte, c clock.Clock) *authenticator {
	return &authenticator{
		secret:   secret,
		clock:    c,
		verified: newVerifiedTokens(maxVerifiedTokens),
		// Pinning the method to HS256 rejects "none" and every
		// algorithm-confusion trick; a token without exp would be
		// valid forever, so exp is required; strict decoding refuses
		// the other spellings of a signature whose last character's
		// unused bits were changed, so a token is one string.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithStrictDecoding(),
			jwt.WithTimeFunc(c.Now),
		),
	}
}

// authenticate returns the caller named by the request's bearer token.
func (a *authenticator) authenticate(r *http.Request) (principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return principal{}, errorf(errcode.Unauthenticated, "missing bearer token")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return principal{}, errorf(errcode.Unauthenticated, "authorization header must be \"Bearer <token>\"")
	}
	if p, ok := a.verified.lookup(token, a.clock.Now()); ok {
		return p, nil
	}
	var claims Claims
	if _, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.secret, nil }); err != nil {
		msg := "invalid token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "token expired"
		}
		return principal{}, errorf(errcode.Unauthenticated, msg)
	}
	if claims.Role == RoleLoadTest {
		return principal{}, errorf(errcode.Unauthenticated, "a load-test token is not a bearer token: send it in "+shadow.Header)
	}
	subject := claims.Subject
	if claims.Role == RoleScreen {
		var ok bool
		if subject, ok = strings.CutPrefix(subject, screenSubject); !ok {
			return principal{}, errorf(errcode.Unauthenticated, "a screen token's subject names no admin")
		}
	}
	id, err := parseID("sub", subject)
	if err != nil {
		return principal{}, errorf(errcode.Unauthenticated, "token subject is not a user id")
	}
	p := principal{UserID: id, Role: claims.Role, Expires: claims.ExpiresAt.Time}
	if claims.IssuedAt != nil {
		p.Issued = claims.IssuedAt.Time
	}
	a.verified.add(token, p, claims)
	return p, nil
}

// screenSubject prefixes the subject of a screen token, the id of the
// admin who minted it, so that it is no user id: a gateway older than the
// screen role (which took any role on a buyer's route) refuses the token
// as one whose subject is not a user id, during a rolling update or
// after a rollback, instead of taking it for that admin's account.
const screenSubject = "screen-"

// maxVerifiedTokens bounds the verified-token cache: about one entry per
// signed-in buyer of a busy sale, a few megabytes at most.
const maxVerifiedTokens = 1 << 16

// verifiedTokens remembers the tokens whose signature and claims have
// been checked, so a buyer's repeated requests do not decode and verify
// the same token again (that was about 4% of the spike's CPU). Only a
// string the parser accepted gets in, so a forged or altered token never
// matches; the time claims are checked again on every hit, and a token
// outside its validity window goes back through the parser, which
// refuses it with the precise reason. What a token's string says never
// changes, so a memo holds them; when full it starts over, which costs
// one verification per active token.
type verifiedTokens struct {
	tokens *cache.Memo[string, verifiedToken]
}

func newVerifiedTokens(max int) verifiedTokens {
	return verifiedTokens{tokens: cache.NewMemo[string, verifiedToken](max)}
}

type verifiedToken struct {
	principal principal // its Expires is the token's exp
	notBefore time.Time // zero: no nbf claim
}

func (v verifiedTokens) lookup(token string, now time.Time) (principal, bool) {
	t, ok := v.tokens.Load(token)
	if !ok || now.Before(t.notBefore) || !now.Before(t.principal.Expires) {
		return principal{}, false
	}
	return t.principal, true
}

func (v verifiedTokens) add(token string, p principal, claims Claims) {
	t := verifiedToken{principal: p}
	if claims.NotBefore != nil {
		t.notBefore = claims.NotBefore.Time
	}
	v.tokens.Store(token, t)
}

// issue signs a token for the user and role valid for ttl, and returns it
// with the expiry it carries.
func (a *authenticator) issue(userID int64, role string, ttl time.Duration) (string, time.Time, error) {
	now := a.clock.Now()
	subject := formatID(userID)
	if role == RoleScreen {
		subject = screenSubject + subject
	}
	claims := Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	return token, claims.ExpiresAt.Time, err
}

type tokenRequest struct {
	// TTLSeconds is optional: the role's default when absent.
	TTLSeconds *int64 `json:"ttl_seconds"`
}

// issueRoleToken mints, for the admin calling, a token of role that lives
// the body's ttl_seconds (def when absent, 1 s to max), logs it, and
// returns it with its expiry (RFC 3339).
func (g *Gateway) issueRoleToken(r *http.Request, role string, def, max time.Duration) (token, expires string, err error) {
	var req tokenRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		return "", "", err
	}
	ttl := def
	if req.TTLSeconds != nil {
		var f fields
		ttl = time.Duration(f.int("ttl_seconds", req.TTLSeconds, 1, int64(max/time.Second))) * time.Second
		if f.err != nil {
			return "", "", f.err
		}
	}
	admin := callerOf(r.Context()).UserID
	token, exp, err := g.auth.issue(admin, role, ttl)
	if err != nil {
		return "", "", err
	}
	g.log.InfoContext(r.Context(), "token issued", "role", role, "admin", admin, "ttl", ttl)
	return token, exp.UTC().Format(time.RFC3339), nil
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// callerOf returns the authenticated caller; routes that require a token
// always have one.
func callerOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

type devTokenRequest struct {
	UserID *string `json:"user_id"`
	Role   *string `json:"role"`
}

type devTokenResponse struct {
	Token string `json:"token"`
}

// devToken mints a token for any user: demo and development mode only,
// where there is no login service.
func (g *Gateway) devToken(w http.ResponseWriter, r *http.Request) error {
	var req devTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	userID := f.id("user_id", req.UserID)
	role := RoleUser
	if req.Role != nil {
		role = *req.Role
	}
	if role != RoleUser && role != RoleAdmin {
		f.fail("role", `must be "user" or "admin"`)
	}
	if f.err != nil {
		return f.err
	}
	token, _, err := g.auth.issue(userID, role, g.opts.DevTokenTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, devTokenResponse{Token: token})
	return nil
}
