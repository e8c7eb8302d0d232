package drive

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// EndpointChallenge is a buyer's challenge fetch.
const EndpointChallenge = "GET challenge"

// deviceOf is the device id of a buyer's browser: one per buyer, kept.
func deviceOf(u client.User) string { return "web-" + strconv.FormatInt(u.ID, 10) }

// AnswerChallenge does what a sale's page does with a challenge that
// came at received: it solves it, waits until wait_ms after received, and
// returns the headers that carry it on the buy (to add to the device's).
// It returns early, with ctx's error, when ctx ends.
func AnswerChallenge(ctx context.Context, c api.Challenge, received time.Time) (map[string]string, error) {
	answer := api.SolveChallenge(c.Challenge, c.Bits)
	if d := time.Until(received.Add(time.Duration(c.WaitMS) * time.Millisecond)); d > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
	return map[string]string{api.ChallengeHeader: c.Challenge, api.ChallengeAnswerHeader: answer}, nil
}

// passChallenge is the buyer's page before a buy of a sale that requires
// a challenge: fetch it (recorded as due at due), answer it, and add the
// answer to headers. ok is false when the fetch was refused: no buy then.
func (r *replay) passChallenge(ctx context.Context, u client.User, activityID string, headers map[string]string, due time.Time) (ok bool) {
	c, err := r.gateway.Challenge(ctx, u.Token, activityID, headers[api.DeviceHeader])
	got := time.Now()
	r.rec.done(EndpointChallenge, outcomeOf(err), due, got)
	if err != nil {
		return false
	}
	answer, err := AnswerChallenge(ctx, c, got)
	if err != nil {
		return false
	}
	maps.Copy(headers, answer)
	return true
}

// bot is one scripted account: its device, and per sale the challenge
// it solved and used up (TrickOverLimit), which the other tricks reuse.
// mu is held while it gets one, so the bot spends one per sale.
type bot struct {
	user   client.User
	device string
	mu     sync.Mutex
	used   map[string]map[string]string // activity id → the used challenge's headers
	keys   int
}

// pickTrick maps an arrival's roll to a trick; the blocklisted device's
// share goes to TrickNoChallenge when the scenario names none.
func pickTrick(roll float64, blocked string) string {
	switch {
	case roll < 0.35:
		return result.TrickNoChallenge
	case roll < 0.6:
		return result.TrickReused
	case roll < 0.8:
		return result.TrickShared
	case blocked == "":
		return result.TrickNoChallenge
	}
	return result.TrickBlocked
}

// botBuy is one arrival of a bots phase: bot a.user (modulo the
// accounts) plays the trick its roll picks on the arrival's sale.
func (r *replay) botBuy(ctx context.Context, a arrival, due time.Time) {
	b := r.bots.accounts[a.user%len(r.bots.accounts)]
	act := r.catalog.sales[a.activity]
	headers := map[string]string{api.DeviceHeader: b.device}
	trick := pickTrick(a.roll, r.scenario.Bots.BlockedDevice)
	switch trick {
	case result.TrickReused, result.TrickShared:
		owner := b
		if trick == result.TrickShared {
			owner = r.bots.accounts[(a.user+1)%len(r.bots.accounts)]
		}
		used, ok := r.usedChallenge(ctx, owner, act, due)
		if !ok {
			return
		}
		maps.Copy(headers, used)
	case result.TrickBlocked:
		headers[api.DeviceHeader] = r.scenario.Bots.BlockedDevice
	}
	b.mu.Lock()
	key := b.nextKey()
	b.mu.Unlock()
	r.botSend(ctx, b, trick, act.ActivityID, 1, key, headers, due)
}

// usedChallenge returns the headers of the challenge owner used up on
// act, solving and spending one first (TrickOverLimit) if it has none;
// ok false when the platform would not hand one out.
func (r *replay) usedChallenge(ctx context.Context, owner *bot, act *result.ActivityStat, due time.Time) (map[string]string, bool) {
	owner.mu.Lock()
	defer owner.mu.Unlock()
	if h := owner.used[act.ActivityID]; h != nil {
		return h, true
	}
	c, err := r.gateway.Challenge(ctx, owner.user.Token, act.ActivityID, owner.device)
	got := time.Now()
	r.rec.done(result.EndpointBot, outcomeOf(err), due, got)
	if err != nil {
		r.bots.stats.Add(result.TrickOverLimit, "challenge "+outcomeOf(err))
		return nil, false
	}
	answer, err := AnswerChallenge(ctx, c, got)
	if err != nil {
		return nil, false
	}
	headers := map[string]string{api.DeviceHeader: owner.device}
	maps.Copy(headers, answer)
	// Only LIMIT_EXCEEDED says the buy got past the wall, and so used
	// the challenge up: a buy the sold-out flag refused did not, and its
	// challenge would buy (it was solved honestly).
	if r.botSend(ctx, owner, result.TrickOverLimit, act.ActivityID, act.PerUserLimit+1, owner.nextKey(), headers, time.Now()) != "limit_exceeded" {
		return nil, false
	}
	owner.used[act.ActivityID] = answer
	return answer, true
}

// nextKey is a new idempotency key of the bot's; b.mu must be held.
func (b *bot) nextKey() string {
	b.keys++
	return "bot" + strconv.FormatInt(b.user.ID, 10) + "-" + strconv.Itoa(b.keys)
}

// botSend sends one bot buy, books its answer and returns it.
func (r *replay) botSend(ctx context.Context, b *bot, trick, activityID string, quantity int64, key string, headers map[string]string, due time.Time) string {
	_, err := r.gateway.Seckill(ctx, b.user.Token, activityID, quantity, key, headers)
	out := outcomeOf(err)
	r.rec.done(result.EndpointBot, out, due, time.Now())
	r.bots.stats.Add(trick, out)
	return out
}
