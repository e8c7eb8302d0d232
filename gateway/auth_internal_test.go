package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifiedTokensStayBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	claims := Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	v := verifiedTokens{max: 3}
	for i := range 10 {
		v.add("token-"+strconv.Itoa(i), principal{UserID: int64(i)}, claims)
		if got := len(v.tokens); got > v.max {
			t.Fatalf("after %d tokens the cache holds %d, want at most %d", i+1, got, v.max)
		}
	}
	if p, ok := v.lookup("token-9", now); !ok || p.UserID != 9 {
		t.Fatalf("latest token: got %+v, %v; want user 9", p, ok)
	}
}
