package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
)

// Defaults of the challenge's Options.
const (
	// DefaultChallengeBits is the work asked: a SHA-256 with this many
	// leading zero bits takes 2^14 = 16,384 tries on average, tens of
	// milliseconds in a browser, a few in Go.
	DefaultChallengeBits = 14
	// DefaultChallengeJitter spreads the buys of a sale's opening second
	// over this much more (削峰): each challenge's wait is drawn
	// uniformly from zero to it.
	DefaultChallengeJitter = 2 * time.Second
	// DefaultChallengeTTL is how long a challenge may be used once its
	// wait is over.
	DefaultChallengeTTL = 30 * time.Second
)

// MaxChallengeBits bounds the work a gateway may ask: 24 bits is 16
// million hashes, seconds in a browser.
const MaxChallengeBits = 24

// challengeLead is how long before a sale's start its challenge is
// handed out: a page open on the countdown gets it in the last minute,
// and waits until the start and its jitter.
const challengeLead = time.Minute

// challengeClaims are what a challenge says, signed by the gateway: for
// whom and which sale it is, how much work it asks, and when it may be
// used (NotBefore, Expires: Unix milliseconds).
type challengeClaims struct {
	User      int64  `json:"u"`
	Activity  int64  `json:"a"`
	Device    string `json:"d,omitempty"`
	Nonce     string `json:"n"`
	Bits      int    `json:"k"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
}

// challenger hands out the flash sale's challenges and checks the
// answers (验证码/答题 as proof of work): a challenge is signed with a
// key only the gateways hold, bound to one user, sale and device, usable
// from its NotBefore (the start of the sale plus a random wait) until
// its Expires, by one buy request (one idempotency key) only.
type challenger struct {
	key    []byte
	bits   int
	jitter time.Duration
	ttl    time.Duration
	clock  clock.Clock
	rdb    redis.Cmdable
	// timeout bounds the single use's write (the call budget).
	timeout time.Duration
	// draw returns a wait in [0, jitter].
	draw  func(jitter time.Duration) time.Duration
	log   func(ctx context.Context, msg string, args ...any)
	count *prometheus.CounterVec
}

func newChallenger(o Options) (*challenger, error) {
	if o.ChallengeBits < 1 || o.ChallengeBits > MaxChallengeBits {
		return nil, fmt.Errorf("gateway: challenge difficulty %d bits: must be 1..%d", o.ChallengeBits, MaxChallengeBits)
	}
	c := &challenger{
		key: challengeKey(o.JWTSecret), bits: o.ChallengeBits, jitter: max(o.ChallengeJitter, 0), ttl: o.ChallengeTTL,
		clock: o.Clock, rdb: o.Redis, timeout: o.CallTimeout, draw: o.challengeWait,
		log: func(ctx context.Context, msg string, args ...any) { o.Logger.WarnContext(ctx, msg, args...) },
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_challenges_total",
			Help: "Flash-sale challenges handed out (issued) and buys through the challenge wall by result (passed, required, invalid, expired, early, used).",
		}, []string{"result"}),
	}
	if err := o.Registry.Register(c.count); err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	return c, nil
}

// challengeKey derives the challenges' signing key from the JWT secret,
// which every replica holds already, so any replica checks what another
// handed out; a separate derivation keeps a challenge from ever passing
// as a token, or the reverse.
func challengeKey(jwtSecret []byte) []byte {
	m := hmac.New(sha256.New, jwtSecret)
	m.Write([]byte("flashsale challenge v1"))
	return m.Sum(nil)
}

func uniformWait(jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(jitter/time.Millisecond)+1)) * time.Millisecond
}

// issue makes a challenge for the user's buy of the sale that starts at
// startsAt, from device ("" when none).
func (c *challenger) issue(user, activity int64, device string, startsAt time.Time) api.Challenge {
	now := c.clock.Now()
	notBefore := now
	if startsAt.After(now) {
		notBefore = startsAt
	}
	// In whole milliseconds, rounded down, and the wait rounded up: a
	// client that waits wait_ms is never early.
	notBefore = notBefore.Add(c.draw(c.jitter)).Truncate(time.Millisecond)
	expires := notBefore.Add(c.ttl)
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails on supported platforms.
	claims := challengeClaims{User: user, Activity: activity, Device: device, Nonce: hex.EncodeToString(nonce[:]),
		Bits: c.bits, NotBefore: notBefore.UnixMilli(), Expires: expires.UnixMilli()}
	payload, _ := json.Marshal(claims) // plain fields: cannot fail
	p := challengeEncoding.EncodeToString(payload)
	c.count.WithLabelValues("issued").Inc()
	return api.Challenge{
		Challenge: p + "." + challengeEncoding.EncodeToString(c.sign(p)),
		Bits:      c.bits, WaitMS: max(int64((notBefore.Sub(now)+time.Millisecond-1)/time.Millisecond), 0),
		NotBefore: notBefore.UTC(), ExpiresAt: expires.UTC(),
	}
}

func (c *challenger) sign(payload string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// challengeEncoding writes and reads a challenge's two parts: base64url
// without padding, decoded strictly, since a signature whose last
// character's unused bits were changed decodes to the same MAC, and that
// other spelling of the challenge would pass too.
var challengeEncoding = base64.RawURLEncoding.Strict()

// proof is what a buy carries to pass the challenge wall.
type proof struct {
	challenge, answer, device string
}

func proofOf(r *http.Request, device string) proof {
	return proof{challenge: r.Header.Get(api.ChallengeHeader), answer: r.Header.Get(api.ChallengeAnswerHeader), device: device}
}

// errChallengeRequired answers a buy without a challenge of a sale that
// requires one.
var errChallengeRequired = errorf(errcode.ChallengeRequired,
	"this flash sale needs a solved challenge: GET /api/v1/activities/{id}/challenge, solve it, wait wait_ms, and send it in "+api.ChallengeHeader+" and "+api.ChallengeAnswerHeader)

// verify checks the proof of a buy by user of activity, without Redis:
// signed by a gateway, for this user, sale and device, solved, and
// within its time. It returns the challenge's claims.
func (c *challenger) verify(p proof, user, activity int64) (challengeClaims, error) {
	invalid := func(why string) (challengeClaims, error) {
		return challengeClaims{}, errorf(errcode.ChallengeInvalid, why+": get a new challenge")
	}
	payload, sig, ok := strings.Cut(p.challenge, ".")
	mac, err := challengeEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, c.sign(payload)) {
		return invalid("the challenge is not one this platform handed out")
	}
	raw, err := challengeEncoding.DecodeString(payload)
	var cl challengeClaims
	if err != nil || json.Unmarshal(raw, &cl) != nil {
		return invalid("the challenge is not one this platform handed out")
	}
	switch {
	case cl.User != user:
		return invalid("the challenge was handed out to another account")
	case cl.Activity != activity:
		return invalid("the challenge was handed out for another flash sale")
	case cl.Device != p.device:
		return invalid("the challenge was handed out to another device")
	case !api.SolvesChallenge(p.challenge, p.answer, cl.Bits):
		return invalid("header " + api.ChallengeAnswerHeader + " does not solve the challenge")
	}
	now := c.clock.Now()
	if nbf := time.UnixMilli(cl.NotBefore); now.Before(nbf) {
		return challengeClaims{}, &Error{Code: errcode.ChallengeEarly,
			Message: "the challenge's wait is not over: send the buy wait_ms after the challenge came", RetryAfter: nbf.Sub(now)}
	}
	if !now.Before(time.UnixMilli(cl.Expires)) {
		return challengeClaims{}, errorf(errcode.ChallengeExpired, "the challenge has expired: get a new one")
	}
	return cl, nil
}

// spend uses the challenge for the buy with idempotency key key: the
// first buy to present it takes it (a Redis SET NX of the challenge's
// nonce, in the sale's hash slot, kept until it expires), and only a
// repeat of that same buy (the same key: a retry after a timeout or an
// OVERLOADED) may present it again. Without Redis, or while Redis
// fails, the challenge is let through and the failure logged: the
// signature, the work and the wait still hold, the per-user purchase
// limit is enforced by the order path, and a sale should not stop
// because this wall's memory is down.
func (c *challenger) spend(ctx context.Context, cl challengeClaims, key string) error {
	if c.rdb == nil {
		return nil
	}
	ttl := time.UnixMilli(cl.Expires).Sub(c.clock.Now()) + time.Minute // the replicas' clocks may differ a little
	name := "gw:challenge:{act:" + formatID(cl.Activity) + "}:" + cl.Nonce
	// As the accepted keys: a buy that hung up was still made; within
	// the call budget, as every call of a request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	prev, err := c.rdb.SetArgs(ctx, name, key, redis.SetArgs{Mode: "NX", Get: true, TTL: max(ttl, time.Minute)}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil
	case err != nil:
		c.log(ctx, "challenge single use unavailable, admitting the buy", "err", err)
		return nil
	case prev == key:
		return nil
	}
	return errorf(errcode.ChallengeUsed, "this challenge was used by another buy: get a new one")
}

// pass is the challenge wall of a buy: verify, then spend. Each answer
// is counted by result.
func (c *challenger) pass(ctx context.Context, p proof, user, activity int64, key string) error {
	err := c.check(ctx, p, user, activity, key)
	result := "passed"
	if ge := (*Error)(nil); errors.As(err, &ge) {
		result = strings.ToLower(strings.TrimPrefix(string(ge.Code), "CHALLENGE_"))
	}
	c.count.WithLabelValues(result).Inc()
	return err
}

func (c *challenger) check(ctx context.Context, p proof, user, activity int64, key string) error {
	if p.challenge == "" {
		return errChallengeRequired
	}
	cl, err := c.verify(p, user, activity)
	if err != nil {
		return err
	}
	return c.spend(ctx, cl, key)
}

// getChallenge is GET /api/v1/activities/{activity_id}/challenge: a
// challenge for the caller's buy of the sale, handed out from a minute
// before its start until its end.
func (g *Gateway) getChallenge(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("activity_id", r.PathValue("activity_id"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	act, err := g.activityOf(ctx, id)
	if err != nil {
		return err
	}
	now := g.clock.Now()
	if starts := act.GetStartsAt().AsTime(); now.Before(starts.Add(-challengeLead)) || !now.Before(act.GetEndsAt().AsTime()) {
		return errorf(errcode.ActivityNotActive, "challenges are handed out from a minute before the flash sale starts until it ends")
	}
	device, err := deviceOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.challenges.issue(callerOf(ctx).UserID, id, device, act.GetStartsAt().AsTime()))
	return nil
}
