package loadtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/services/channelsim"
)

// ReplayOptions adjust a replay.
type ReplayOptions struct {
	// Target names the gateway in the report.
	Target string
	// Progress, when set, receives the live one-line display.
	Progress io.Writer
	// CapacityWindow and CapacityP99 define the reported capacity: the
	// best answered flash-sale rate over CapacityWindow seconds with a
	// p99 within CapacityP99 (defaults 5s and 50ms).
	CapacityWindow int
	CapacityP99    time.Duration
	// Simulator, when set, is the channel simulator's admin API (its
	// PUT /admin/channels/{channel}): slow and failing faults need it and
	// are reported as skipped without it.
	Simulator *client.Client
	// Infra, when set, puts faults on the platform's own parts: the
	// scenario's faults with a target need it and are reported as
	// skipped without it.
	Infra Infrastructure
}

// Infrastructure puts a scenario's fault on one of the platform's own
// parts (Fault.Target) and returns what lifts it. Only a platform the
// replay started in this process has one (make demo: its local stack and
// services).
type Infrastructure interface {
	Fault(ctx context.Context, f scenario.Fault) (lift func(context.Context) error, err error)
}

// replay is one run in progress.
type replay struct {
	sc       *scenario.Scenario
	cl       *client.Client
	opts     ReplayOptions
	admin    string
	users    []client.User
	features map[string]result.Feature
	skus     []string // product sku ids in catalog order
	acts     map[string]*result.ActivityStat
	ledgers  map[string]*saleLedger
	rec      *recorder
	start    time.Time
	// followEnd is when follow-ups must be done: the last arrival plus
	// the drain.
	followEnd time.Time
	trailMu   sync.Mutex
	trails    map[string]*result.Trail
	couponMu  sync.Mutex
	coupons   map[int][]heldCoupon // by user index
	cs        result.CouponStats
	prices    []int64 // product prices in catalog order
	inflight  atomic.Int64
	accepted  atomic.Int64
	requests  sync.WaitGroup
	follow    sync.WaitGroup
	followMu  sync.Mutex
	fu        result.FollowUps
	regMu     sync.Mutex
	regular   map[string]int64
	checkout  atomic.Int64
	phases    []result.PhaseStat
	faults    []result.FaultStat
	faultOn   []atomic.Bool // which faults are on now, for the live display
	// bots are the scripted accounts of the bots phases.
	bots     []*bot
	botStats *result.BotStats
}

// RunReplay signs the scenario's users in, creates its catalog, drives
// its phases at their scheduled rates and returns the measurements. It
// does not audit: call AuditReplay once the platform has drained.
func RunReplay(ctx context.Context, cl *client.Client, sc *scenario.Scenario, opts ReplayOptions) (*result.Replay, error) {
	if opts.CapacityWindow <= 0 {
		opts.CapacityWindow = 5
	}
	if opts.CapacityP99 <= 0 {
		opts.CapacityP99 = 50 * time.Millisecond
	}
	r := &replay{sc: sc, cl: cl, opts: opts, acts: map[string]*result.ActivityStat{}, ledgers: map[string]*saleLedger{}, regular: map[string]int64{},
		trails: map[string]*result.Trail{}, coupons: map[int][]heldCoupon{}, faultOn: make([]atomic.Bool, len(sc.Faults))}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	r.run(ctx)
	return r.result(), ctx.Err()
}

func (r *replay) say(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, format, args...)
	}
}

func (r *replay) setup(ctx context.Context) error {
	var err error
	if r.admin, err = r.cl.DevToken(ctx, 1, "admin"); err != nil {
		return fmt.Errorf("replay: admin token: %w", err)
	}
	r.say("Signing in %d buyers…\n", r.sc.Users.Count)
	if r.users, err = SignIn(ctx, r.cl, r.sc.Users.FirstID, r.sc.Users.Count); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if r.features, err = ProbeFeatures(ctx, r.cl, r.users[0].Token, r.admin); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	skuOf := map[string]string{}
	for _, p := range r.sc.Catalog.Products {
		id, err := r.cl.CreateProduct(ctx, r.admin, p.Title, p.Price, p.Stock)
		if err != nil {
			return fmt.Errorf("replay: create product %s: %w", p.Key, err)
		}
		skuOf[p.Key] = id
		r.skus = append(r.skus, id)
		r.prices = append(r.prices, p.Price)
	}
	if err := r.setupBots(ctx); err != nil {
		return err
	}
	r.setupMarketing(ctx, skuOf)
	r.setupChannels(ctx)

	// The schedule starts once every activity exists: a second per ten
	// activities is plenty for the admin calls.
	r.start = time.Now().Add(time.Second + time.Duration(len(r.sc.Catalog.Activities))*100*time.Millisecond)
	for _, a := range r.sc.Catalog.Activities {
		starts := r.start.Add(a.StartsIn.D())
		id, err := r.cl.CreateActivity(ctx, r.admin, api.Activity{SKUID: skuOf[a.Product], Price: a.Price, Stock: a.Stock,
			PerUserLimit: a.PerUserLimit, StartsAt: starts, EndsAt: starts.Add(a.Lasts.D()), ChallengeRequired: a.Challenge})
		if err != nil {
			return fmt.Errorf("replay: create activity %s: %w", a.Key, err)
		}
		r.acts[a.Key] = &result.ActivityStat{Key: a.Key, ActivityID: id, Stock: a.Stock, PerUserLimit: a.PerUserLimit, Challenge: a.Challenge}
		r.ledgers[a.Key] = newSaleLedger(r.users)
	}
	return nil
}

// setupBots signs the bot accounts in, after the buyers' ids, when a
// bots phase will drive them.
func (r *replay) setupBots(ctx context.Context) error {
	if !slices.ContainsFunc(r.sc.Phases, func(p scenario.Phase) bool { return p.Kind == scenario.PhaseBots }) {
		return nil
	}
	n := r.sc.Bots.Accounts
	r.say("Signing in %d bot accounts…\n", n)
	users, err := SignIn(ctx, r.cl, r.sc.Users.FirstID+int64(r.sc.Users.Count), n)
	if err != nil {
		return fmt.Errorf("replay: bots: %w", err)
	}
	r.botStats = &result.BotStats{Accounts: n, Answers: map[string]map[string]int{}}
	for _, u := range users {
		r.bots = append(r.bots, &bot{user: u, device: "bot-" + strconv.FormatInt(u.ID, 10), used: map[string]map[string]string{}})
	}
	return nil
}

// setupMarketing creates the scenario's promotions and coupon templates
// when the gateway serves marketing, and has a share of the buyers claim
// coupons. A refusal turns the feature off with the reason, so the report
// says why instead of the replay failing. Everything is valid from a
// minute ago for a day, so the whole replay sees it.
func (r *replay) setupMarketing(ctx context.Context, skuOf map[string]string) {
	from, until := time.Now().Add(-time.Minute).UTC(), time.Now().Add(24*time.Hour).UTC()
	create := func(feature, path string, body map[string]any, out any) bool {
		f := r.features[feature]
		if !f.Available {
			return false
		}
		if _, err := r.cl.Do(ctx, http.MethodPost, path, r.admin, nil, body, out); err != nil {
			f.Available, f.Reason = false, "skipped: setup failed: "+err.Error()
			r.features[feature] = f
			return false
		}
		return true
	}
	for _, p := range r.sc.Catalog.Promotions {
		body := map[string]any{"kind": p.Kind, "starts_at": from, "ends_at": until}
		if len(p.Products) > 0 {
			skus := make([]string, len(p.Products))
			for i, k := range p.Products {
				skus[i] = skuOf[k]
			}
			body["sku_ids"] = skus
		}
		if p.Kind == scenario.PromotionSKUDiscount {
			body["rate_bp"] = p.RateBP
		} else {
			body["tiers"] = p.Tiers
		}
		create(result.FeaturePromotions, "/admin/v1/promotions", body, nil)
	}
	rng := rand.New(rand.NewPCG(r.sc.Seed, 0xc0))
	for _, c := range r.sc.Catalog.Coupons {
		var claimers []int
		for i := range r.users {
			if rng.Float64() < c.Share {
				claimers = append(claimers, i)
			}
		}
		if len(claimers) == 0 {
			continue
		}
		var tpl api.CouponTemplateCreated
		if !create(result.FeatureCoupons, "/admin/v1/coupon-templates", map[string]any{
			"threshold": c.Threshold, "amount": c.Amount, "total": len(claimers), "per_user_limit": 1,
			"valid_from": from, "valid_until": until,
		}, &tpl) {
			continue
		}
		r.cs.Templates++
		r.claim(ctx, tpl.TemplateID, c.Threshold, claimers)
	}
}

// heldCoupon is a coupon a buyer claimed and has not used yet.
type heldCoupon struct {
	id        string
	threshold int64
}

// claim has each of the users claim one coupon of the template, 32 at a
// time, waiting out rate limits as SignIn does.
func (r *replay) claim(ctx context.Context, templateID string, threshold int64, users []int) {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, i := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := client.WithRetryAfter(ctx, func() (api.Coupon, error) {
				var c api.Coupon
				// One claim per buyer and template: the key makes a retry
				// answer the coupon instead of claiming another.
				_, err := r.cl.Do(ctx, http.MethodPost, "/api/v1/coupons/"+templateID+"/claim", r.users[i].Token,
					map[string]string{"Idempotency-Key": "claim-" + templateID}, nil, &c)
				return c, err
			})
			r.couponMu.Lock()
			defer r.couponMu.Unlock()
			if err != nil {
				r.cs.ClaimFailed++
				return
			}
			r.cs.Claimed++
			r.coupons[i] = append(r.coupons[i], heldCoupon{id: c.CouponID, threshold: threshold})
		})
	}
	wg.Wait()
}

// takeCoupon hands out one of the user's coupons whose threshold the
// cart's list price clears twice over (promotions come off first, and a
// coupon below its threshold is refused), or "" when there is none.
func (r *replay) takeCoupon(user int, listTotal int64) (heldCoupon, bool) {
	r.couponMu.Lock()
	defer r.couponMu.Unlock()
	held := r.coupons[user]
	for i, c := range held {
		if listTotal >= 2*c.threshold {
			r.coupons[user] = append(held[:i:i], held[i+1:]...)
			return c, true
		}
	}
	return heldCoupon{}, false
}

func (r *replay) giveBackCoupon(user int, c heldCoupon) {
	r.couponMu.Lock()
	r.coupons[user] = append(r.coupons[user], c)
	r.couponMu.Unlock()
}

// setupChannels sets each scenario channel's routing weight, enabled,
// so that routing follows the scenario; a refusal turns the channel
// switches off with the reason.
func (r *replay) setupChannels(ctx context.Context) {
	if !r.features[result.FeatureChannels].Available || r.sc.Payment.PayShare == 0 {
		return
	}
	for _, ch := range slices.Sorted(maps.Keys(r.sc.Payment.Channels)) {
		if err := r.switchChannel(ctx, ch, true); err != nil {
			r.features[result.FeatureChannels] = result.Feature{Name: result.FeatureChannels, Endpoint: r.features[result.FeatureChannels].Endpoint,
				Reason: "skipped: setup failed: " + err.Error()}
			return
		}
	}
}

// switchChannel turns a payment channel on or off in the platform's
// routing, with its scenario weight.
func (r *replay) switchChannel(ctx context.Context, channel string, enabled bool) error {
	_, err := r.cl.Do(ctx, http.MethodPut, "/admin/v1/channels/"+channel, r.admin, nil,
		map[string]any{"weight": r.sc.Payment.Channels[channel], "enabled": enabled}, nil)
	return err
}

// needs is the feature a phase kind depends on ("" when none).
func needs(kind string) string {
	if kind == scenario.PhaseCheckout {
		return result.FeatureCheckout
	}
	return ""
}

func (r *replay) run(ctx context.Context) {
	r.rec = newRecorder(r.start)
	stats := make([]result.PhaseStat, len(r.sc.Phases))
	sent := make([]atomic.Int64, len(r.sc.Phases))
	var dispatchers sync.WaitGroup
	if d := time.Until(r.start); d > 0 {
		time.Sleep(d)
	}
	// Follow-ups (payments, cancels) run until the drain time is up; a
	// follow-up still waiting then is cut off, so none outlives the
	// replay and races the audit.
	r.followEnd = r.start.Add(r.sc.End() + r.sc.Drain.D())
	followCtx, cancelFollow := context.WithDeadline(ctx, r.followEnd)
	defer cancelFollow()
	stopBackground := r.background(ctx)
	for i, p := range r.sc.Phases {
		stats[i] = result.PhaseStat{Name: p.Name, Kind: p.Kind, Status: "ran", StartS: p.Start.D().Seconds(), EndS: p.End().Seconds(), PeakRPS: max(p.Rate, p.RateFrom)}
		if f := needs(p.Kind); f != "" && !r.features[f].Available {
			stats[i].Status = r.features[f].Reason
			continue
		}
		dispatchers.Go(func() { r.dispatch(followCtx, i, p, &sent[i]) })
	}
	faults := r.scheduleFaults(ctx)
	dispatchers.Wait()
	r.requests.Wait()
	r.follow.Wait()
	faults()
	stopBackground()
	for i := range stats {
		stats[i].Sent = sent[i].Load()
		if stats[i].Kind == scenario.PhaseSeckill && stats[i].Status == "ran" {
			r.rec.phaseSeckill(&stats[i])
		}
	}
	r.phases = stats
	for i := range r.faults {
		if r.faults[i].Ran() {
			r.rec.faultWindow(&r.faults[i])
		}
	}
}

// dispatch sends phase p's arrivals at their scheduled times: a Poisson
// process whose rate follows the phase's ramp, drawn by thinning a
// process at the peak rate. Each arrival gets its own goroutine, so a
// slow answer never delays the next send (open loop).
func (r *replay) dispatch(ctx context.Context, i int, p scenario.Phase, sent *atomic.Int64) {
	rng := rand.New(rand.NewPCG(r.sc.Seed, uint64(i)+1))
	peak := max(p.Rate, p.RateFrom)
	t := p.Start.D()
	for {
		t += time.Duration(rng.ExpFloat64() / peak * float64(time.Second))
		if t >= p.End() || ctx.Err() != nil {
			return
		}
		if rng.Float64()*peak > p.RateAt(t) {
			continue
		}
		due := r.start.Add(t)
		a := r.draw(rng, p)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		sent.Add(1)
		r.rec.arrive(due)
		r.inflight.Add(1)
		r.requests.Go(func() {
			defer r.inflight.Add(-1)
			r.fire(ctx, p, a, due)
		})
	}
}

// arrival is what one arrival does, drawn by the phase's dispatcher so
// that a seed replays the same choices.
type arrival struct {
	user     int
	activity string
	replay   bool
	coupon   bool
	roll     float64
	skus     []int
	quantity []int64
}

func (r *replay) draw(rng *rand.Rand, p scenario.Phase) arrival {
	a := arrival{user: rng.IntN(len(r.users)), roll: rng.Float64(), replay: rng.Float64() < p.ReplayShare}
	acts := p.Activities
	if len(acts) == 0 {
		for _, s := range r.sc.Catalog.Activities {
			acts = append(acts, s.Key)
		}
	}
	a.activity = acts[rng.IntN(len(acts))]
	if p.Kind == scenario.PhaseCheckout {
		a.coupon = rng.Float64() < p.CouponShare
		n := p.Lines[0] + rng.IntN(p.Lines[1]-p.Lines[0]+1)
		for _, k := range rng.Perm(len(r.skus))[:min(n, len(r.skus))] {
			a.skus = append(a.skus, k)
			a.quantity = append(a.quantity, 1+rng.Int64N(2))
		}
	}
	return a
}

func (r *replay) fire(ctx context.Context, p scenario.Phase, a arrival, due time.Time) {
	switch p.Kind {
	case scenario.PhaseBrowse:
		switch {
		case a.roll < 0.5:
			sku := r.skus[int(a.roll*2*float64(len(r.skus)))%len(r.skus)]
			r.call(ctx, EndpointProduct, due, http.MethodGet, "/api/v1/products/"+sku, "", nil, nil, nil)
		case a.roll < 0.8:
			r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.acts[a.activity].ActivityID, "", nil, nil, nil)
		default:
			r.call(ctx, EndpointActivities, due, http.MethodGet, "/api/v1/activities", "", nil, nil, nil)
		}
	case scenario.PhaseCountdown:
		r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.acts[a.activity].ActivityID, "", nil, nil, nil)
	case scenario.PhaseSeckill:
		r.seckill(ctx, p, a, due)
	case scenario.PhaseCheckout:
		r.placeRegular(ctx, a, due)
	case scenario.PhaseBots:
		r.botBuy(ctx, a, due)
	}
}

// call sends one request and records its answer under endpoint.
func (r *replay) call(ctx context.Context, endpoint string, due time.Time, method, path, token string, headers map[string]string, in, out any) error {
	_, err := r.cl.Do(ctx, method, path, token, headers, in, out)
	r.rec.done(endpoint, outcomeOf(err), due, time.Now())
	return err
}

// outcomeOf names an answer: "ok", the API error code in lower case, or
// "errors" for a transport failure.
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var e *client.APIError
	if errors.As(err, &e) && e.Code != "" {
		return strings.ToLower(e.Code)
	}
	return string(result.Failed)
}

// seckill is a buyer's click on the sale's button, as a browser sends
// it: from the buyer's device, and when the sale requires a challenge,
// after fetching, solving and waiting it out (passChallenge); the buy is
// then due when it is sent, after the wait.
func (r *replay) seckill(ctx context.Context, p scenario.Phase, a arrival, due time.Time) {
	ledger, act := r.ledgers[a.activity], r.acts[a.activity]
	headers := map[string]string{api.DeviceHeader: deviceOf(r.users[a.user])}
	if act.Challenge {
		if !r.passChallenge(ctx, r.users[a.user], act.ActivityID, headers, due) {
			return
		}
		due = time.Now()
	}
	key, replayed := ledger.nextKey(a.user, a.replay)
	order, err := buy(ctx, r.cl, r.users[a.user].Token, act.ActivityID, p.Quantity, key, headers)
	out := ledger.settle(a.user, key, replayed, p.Quantity, order, err)
	r.rec.done(EndpointSeckill, string(out), due, time.Now())
	if out.Unknown() {
		r.comeBack(ctx, ledger, act.ActivityID, a.user, key, headers, replayed, out, p.Quantity)
	}
	if out == result.Accepted {
		r.accepted.Add(1)
		r.followUp(ctx, r.users[a.user], order.OrderID)
	}
}

// comeBackAfter are the waits of a buyer who got no answer (503 after
// the client's quick retries) before asking again with the same key, as a
// buyer told to retry does: a call that timed out may have made the order,
// and only the key finds it, within the order's payment window. Six
// tries over 14 s stay inside the shortest window a scenario uses (20 s):
// after it an unpaid order has expired and its key is free again.
var comeBackAfter = []time.Duration{1 * time.Second, 2 * time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}

// comeBack asks again with the key after each wait of comeBackAfter
// until the platform answers about the key (not 503, not 429), and books
// that answer for the attempt.
func (r *replay) comeBack(ctx context.Context, ledger *saleLedger, activityID string, user int, key string, headers map[string]string, replayed bool, was result.Outcome, quantity int64) {
	r.requests.Go(func() {
		for _, wait := range comeBackAfter {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			order, err := buy(ctx, r.cl, r.users[user].Token, activityID, quantity, key, headers)
			if o := classify(err); o.Unknown() || o.Refused() {
				// A 429 says only that the gateway did not look: the
				// order the key may have made is still unknown.
				ledger.heard(user, key, o)
				continue
			}
			if ledger.answeredLater(user, key, replayed, quantity, was, order, err) == result.Accepted {
				r.accepted.Add(1)
			}
			return
		}
	})
}

func (r *replay) placeRegular(ctx context.Context, a arrival, due time.Time) {
	lines := make([]map[string]any, len(a.skus))
	var list int64
	for i, k := range a.skus {
		lines[i] = map[string]any{"sku_id": r.skus[k], "quantity": a.quantity[i]}
		list += r.prices[k] * a.quantity[i]
	}
	user := r.users[a.user]
	key := "c" + strconv.FormatInt(user.ID, 10) + "-" + strconv.FormatInt(r.checkout.Add(1), 10)
	body := map[string]any{"lines": lines}
	coupon, withCoupon := heldCoupon{}, false
	if a.coupon {
		if coupon, withCoupon = r.takeCoupon(a.user, list); withCoupon {
			body["coupon_id"] = coupon.id
		}
	}
	var o api.Order
	err := r.call(ctx, EndpointCheckout, due, http.MethodPost, "/api/v1/orders", user.Token,
		map[string]string{"Idempotency-Key": key}, body, &o)
	if withCoupon && err != nil {
		// The coupon stays the buyer's; one the cart does not reach
		// (CONFLICT) is dropped from the cart, as a buyer would.
		r.giveBackCoupon(a.user, coupon)
		if outcomeOf(err) == "conflict" {
			r.couponMu.Lock()
			r.cs.Refused++
			r.couponMu.Unlock()
			delete(body, "coupon_id")
			withCoupon = false
			err = r.call(ctx, EndpointCheckout, due, http.MethodPost, "/api/v1/orders", user.Token,
				map[string]string{"Idempotency-Key": key + "-plain"}, body, &o)
		}
	}
	if err != nil {
		return
	}
	r.regMu.Lock()
	r.regular[o.OrderID] = user.ID
	r.regMu.Unlock()
	if withCoupon {
		r.couponMu.Lock()
		r.cs.Used++
		r.couponMu.Unlock()
		r.note(o.OrderID, user, func(t *result.Trail) { t.Coupon = coupon.id })
	}
	r.followUp(ctx, user, o.OrderID)
}

// note records what the replay did with an order, for the audit.
func (r *replay) note(orderID string, u client.User, fn func(*result.Trail)) {
	r.trailMu.Lock()
	defer r.trailMu.Unlock()
	t := r.trails[orderID]
	if t == nil {
		t = &result.Trail{User: u}
		r.trails[orderID] = t
	}
	fn(t)
}

// payPlan is how a buyer pays: through channel (a preference), also
// through a second channel when duplicate, confirming in the wallet only
// after the order expired when late; refund asks a partial refund after.
type payPlan struct {
	channel         string
	late, duplicate bool
	refund          bool
}

// followUp decides, from the order id and the seed, what the buyer does
// with an accepted order, and does it after the scenario's delay.
func (r *replay) followUp(ctx context.Context, u client.User, orderID string) {
	r.note(orderID, u, func(*result.Trail) {})
	h := fnv.New64a()
	h.Write([]byte(orderID))
	rng := rand.New(rand.NewPCG(r.sc.Seed, h.Sum64()))
	pay := r.sc.Payment
	roll := rng.Float64()
	lo, hi := pay.Delay[0].D(), pay.Delay[1].D()
	delay := lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	var feature string
	var act func(context.Context)
	switch {
	case roll < pay.PayShare:
		feature = result.FeaturePay
		kind := rng.Float64()
		plan := payPlan{channel: pickChannel(rng, pay.Channels), late: kind < pay.LateShare,
			duplicate: kind >= pay.LateShare && kind < pay.LateShare+pay.DuplicateShare, refund: rng.Float64() < pay.RefundShare}
		act = func(ctx context.Context) { r.pay(ctx, u, orderID, plan) }
	case roll < pay.PayShare+pay.CancelShare:
		feature = result.FeatureCancel
		act = func(ctx context.Context) { r.cancel(ctx, u, orderID) }
	default:
		r.count(func(f *result.FollowUps) { f.Abandoned++ })
		return
	}
	if !r.features[feature].Available {
		r.count(func(f *result.FollowUps) { f.Skipped++ })
		return
	}
	r.follow.Add(1)
	time.AfterFunc(delay, func() {
		defer r.follow.Done()
		act(ctx)
	})
}

func (r *replay) count(fn func(*result.FollowUps)) {
	r.followMu.Lock()
	fn(&r.fu)
	r.followMu.Unlock()
}

func pickChannel(rng *rand.Rand, weights map[string]int) string {
	total := 0
	names := make([]string, 0, len(weights))
	for ch, w := range weights {
		names = append(names, ch)
		total += w
	}
	if total == 0 {
		return "auto"
	}
	slices.Sort(names)
	n := rng.IntN(total)
	for _, ch := range names {
		if n -= weights[ch]; n < 0 {
			return ch
		}
	}
	return "auto"
}

// settled waits until an order has left PROCESSING (the consumer stored
// it) and returns it.
func (r *replay) settled(ctx context.Context, u client.User, orderID string) (api.Order, error) {
	return r.await(ctx, u, orderID, func(o api.Order) bool { return o.Status != "PROCESSING" })
}

// await reads an order until done says so (or about 20 seconds pass) and
// returns the last read.
func (r *replay) await(ctx context.Context, u client.User, orderID string, done func(api.Order) bool) (api.Order, error) {
	for i := 0; ; i++ {
		o, err := client.WithRetryAfter(ctx, func() (api.Order, error) { return r.cl.GetOrder(ctx, u.Token, orderID) })
		if err != nil || done(o) || i == 100 {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lateSlack is how long after an order's expiry a late payer confirms,
// so that the expiry worker has run.
const lateSlack = 2 * time.Second

func (r *replay) pay(ctx context.Context, u client.User, orderID string, plan payPlan) {
	o, err := r.settled(ctx, u, orderID)
	if err != nil || o.Status != "PENDING_PAYMENT" {
		r.count(func(f *result.FollowUps) { f.PayFailed++ })
		return
	}
	first, ok := r.open(ctx, u, orderID, plan.channel)
	if !ok {
		r.count(func(f *result.FollowUps) { f.PayFailed++ })
		return
	}
	payments := []api.Payment{first}
	if plan.duplicate {
		if p, ok := r.open(ctx, u, orderID, r.otherChannel(first.Channel)); ok && p.PaymentID != first.PaymentID {
			payments = append(payments, p)
		}
	}
	if plan.late {
		if o.ExpiresAt == nil || o.ExpiresAt.Add(lateSlack).After(r.followEnd) {
			r.count(func(f *result.FollowUps) { f.LateCutOff++ })
			return
		}
		select {
		case <-ctx.Done():
			r.count(func(f *result.FollowUps) { f.PayFailed++ })
			return
		case <-time.After(time.Until(o.ExpiresAt.Add(lateSlack))):
		}
	}
	confirmed := 0
	for _, p := range payments {
		if r.confirm(ctx, p) {
			confirmed++
		}
	}
	r.count(func(f *result.FollowUps) {
		switch {
		case confirmed == 0:
			f.PayFailed++
			return
		case plan.late:
			f.LatePaid++
		case len(payments) > 1:
			f.Duplicated++
		}
		f.Paid++
	})
	if confirmed == 0 || plan.late || !plan.refund || len(o.Lines) == 0 {
		return
	}
	if !r.features[result.FeatureRefund].Available {
		r.count(func(f *result.FollowUps) { f.Skipped++ })
		return
	}
	// The callback settles the payment asynchronously: the buyer asks
	// for the refund once the order shows paid.
	if _, err = r.await(ctx, u, orderID, func(o api.Order) bool { return o.Status == "PAID" }); err == nil {
		err = r.call(ctx, EndpointRefund, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/refunds", u.Token,
			map[string]string{"Idempotency-Key": "refund-" + orderID},
			map[string]any{"lines": []map[string]any{{"line_id": o.Lines[0].LineID, "quantity": 1}}}, nil)
	}
	r.count(func(f *result.FollowUps) {
		if err != nil {
			f.RefundFailed++
		} else {
			f.Refunded++
		}
	})
}

// open asks the platform to pay an order through channel (a preference
// the router may override) and returns the payment it opened.
func (r *replay) open(ctx context.Context, u client.User, orderID, channel string) (api.Payment, bool) {
	var p api.Payment
	t0 := time.Now()
	err := r.call(ctx, EndpointPay, t0, http.MethodPost, "/api/v1/orders/"+orderID+"/pay", u.Token,
		nil, map[string]any{"channel": channel}, &p)
	if err != nil {
		r.rec.payment(channel, outcomeOf(err))
		return p, false
	}
	r.rec.payment(p.Channel, p.Status)
	r.rec.channelLatency(p.Channel, stepPay, time.Since(t0))
	r.note(orderID, u, func(t *result.Trail) { t.Payments = append(t.Payments, p.PaymentID) })
	return p, true
}

// confirmAttempts bounds a buyer's tries at the wallet while the channel
// answers 503 (down, failing), a second apart.
const confirmAttempts = 5

// confirm is the buyer paying at the channel's pay URL; the channel then
// notifies the platform. A payment already settled needs nothing.
func (r *replay) confirm(ctx context.Context, p api.Payment) bool {
	if p.Status != "PAYING" || p.PayURL == "" {
		return p.Status == "SUCCEEDED"
	}
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		err := r.call(ctx, EndpointWallet, t0, http.MethodPost, p.PayURL, "", nil, nil, nil)
		if err == nil {
			r.rec.channelLatency(p.Channel, stepWallet, time.Since(t0))
			return true
		}
		if attempt == confirmAttempts {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

// otherChannel is a scenario channel other than ch, for a duplicate
// payment.
func (r *replay) otherChannel(ch string) string {
	for _, c := range slices.Sorted(maps.Keys(r.sc.Payment.Channels)) {
		if c != ch {
			return c
		}
	}
	return ch
}

func (r *replay) cancel(ctx context.Context, u client.User, orderID string) {
	_, err := r.settled(ctx, u, orderID)
	if err == nil {
		err = r.call(ctx, EndpointCancel, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/cancel", u.Token, nil, nil, nil)
	}
	if err == nil {
		r.note(orderID, u, func(t *result.Trail) { t.Cancelled = true })
	}
	r.count(func(f *result.FollowUps) {
		if err != nil {
			f.CancelFailed++
		} else {
			f.Cancelled++
		}
	})
}

// scheduleFaults applies the scenario's faults and lifts them at their
// times; it returns a func that waits for the last lift. A down channel
// is switched off in the platform's routing; slow and failing ones are
// set at the channel simulator, and restored to what they were.
func (r *replay) scheduleFaults(ctx context.Context) func() {
	var wg sync.WaitGroup
	r.faults = make([]result.FaultStat, len(r.sc.Faults))
	for i, f := range r.sc.Faults {
		name := f.Name()
		var apply, lift func(context.Context) error
		switch {
		case f.Target != "" && r.opts.Infra == nil:
			r.faults[i] = result.FaultStat{Fault: name, Status: "skipped: faults on the platform's own parts need the platform make demo starts"}
			continue
		case f.Target != "":
			var undo func(context.Context) error
			apply = func(ctx context.Context) (err error) {
				undo, err = r.opts.Infra.Fault(ctx, f)
				return err
			}
			lift = func(ctx context.Context) error { return undo(ctx) }
		case f.Mode == scenario.FaultDown && !r.features[result.FeatureChannels].Available:
			r.faults[i] = result.FaultStat{Fault: name, Status: r.features[result.FeatureChannels].Reason}
			continue
		case f.Mode == scenario.FaultDown:
			apply = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, false) }
			lift = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, true) }
		case r.opts.Simulator == nil:
			r.faults[i] = result.FaultStat{Fault: name, Status: "skipped: no channel simulator admin URL (FLASHSALE_CHANNELSIM_URL)"}
			continue
		default:
			var saved channelsim.Behaviour
			apply = func(ctx context.Context) error {
				var all map[string]channelsim.Behaviour
				if _, err := r.opts.Simulator.Do(ctx, http.MethodGet, "/admin/channels", "", nil, nil, &all); err != nil {
					return err
				}
				saved = all[f.Channel]
				b := saved
				if f.Mode == scenario.FaultSlow {
					b.LatencyMS = f.Latency.D().Milliseconds()
				} else {
					b.FailureRate = f.FailureRate
				}
				_, err := r.opts.Simulator.Do(ctx, http.MethodPut, "/admin/channels/"+f.Channel, "", nil, b, nil)
				return err
			}
			lift = func(ctx context.Context) error {
				_, err := r.opts.Simulator.Do(ctx, http.MethodPut, "/admin/channels/"+f.Channel, "", nil, saved, nil)
				return err
			}
		}
		wg.Go(func() {
			st := result.FaultStat{Fault: name, Status: "applied and lifted"}
			for step, at := range []time.Duration{f.At.D(), f.At.D() + f.Lasts.D()} {
				select {
				case <-ctx.Done():
					r.faultOn[i].Store(false)
					r.faults[i] = result.FaultStat{Fault: name, Status: "interrupted"}
					return
				case <-time.After(time.Until(r.start.Add(at))):
				}
				do := apply
				if step == 1 {
					do = lift
				}
				t0 := time.Now()
				err := do(ctx)
				r.rec.done(EndpointChannel, outcomeOf(err), t0, time.Now())
				if err != nil {
					r.faultOn[i].Store(false)
					r.faults[i] = result.FaultStat{Fault: name, Status: "failed: " + err.Error()}
					return
				}
				// The fault is on from the end of its apply (a kill is
				// done once the process is gone) to the end of its lift
				// (a restart is done once the part answers again).
				if step == 0 {
					st.OnS = time.Since(r.start).Seconds()
				} else {
					st.OffS = time.Since(r.start).Seconds()
				}
				r.faultOn[i].Store(step == 0)
			}
			r.faults[i] = st
		})
	}
	return wg.Wait
}

// background samples stock and prints progress until stopped.
func (r *replay) background(ctx context.Context) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			r.sampleStock(ctx)
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if r.opts.Progress != nil {
		wg.Go(func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					r.printProgress(true)
					return
				case <-t.C:
					r.printProgress(false)
				}
			}
		})
	}
	return func() { close(stop); wg.Wait() }
}

func (r *replay) sampleStock(ctx context.Context) {
	for key, a := range r.acts {
		got, err := r.cl.GetActivity(ctx, a.ActivityID)
		if err == nil {
			r.rec.stockAt(key, time.Now(), got.Remaining)
		}
	}
}

func (r *replay) printProgress(final bool) {
	now := time.Now()
	t := now.Sub(r.start)
	var active []string
	for _, p := range r.sc.Phases {
		if t >= p.Start.D() && t < p.End() {
			active = append(active, p.Name)
		}
	}
	if len(active) == 0 {
		active = []string{"draining"}
	}
	var on []string
	for i := range r.faultOn {
		if r.faultOn[i].Load() {
			on = append(on, r.sc.Faults[i].Label())
		}
	}
	faults := ""
	if len(on) > 0 {
		faults = "  FAULT " + strings.Join(on, ", ")
	}
	due, done, p99 := r.rec.live(now)
	end := "  "
	if final {
		end = "  \n"
	}
	// The line is rewritten in place; the padding clears what a longer
	// line (a fault's name) left behind.
	fmt.Fprintf(r.opts.Progress, "\r  t=%3.0fs %-24s due %5d/s  done %5d/s  p99 %7.1fms  in flight %4d  accepted %6d%-60s%s",
		t.Seconds(), strings.Join(active, "+"), due, done, p99, r.inflight.Load(), r.accepted.Load(), faults, end)
}

func (r *replay) result() *result.Replay {
	res := &result.Replay{
		Scenario: r.sc.Name, Target: r.opts.Target, StartedAt: r.start, ElapsedS: time.Since(r.start).Seconds(),
		Users: len(r.users), Phases: r.phases, Faults: r.faults, Channels: r.rec.channelStats(), Trails: r.trails,
		Endpoints: r.rec.endpointStats(), Seconds: r.rec.seconds(), Stock: r.rec.stockSeries(), Payments: r.rec.paymentCounts(),
		Capacity: r.rec.capacity(r.opts.CapacityWindow, float64(r.opts.CapacityP99.Microseconds())/1000),
		Sales:    map[string]*result.Sale{}, Regular: r.regular, UsersList: r.users,
		Bots: r.botStats,
	}
	for _, b := range r.bots {
		res.BotsList = append(res.BotsList, b.user)
	}
	r.followMu.Lock()
	res.FollowUps = r.fu
	r.followMu.Unlock()
	r.couponMu.Lock()
	res.Coupons = r.cs
	r.couponMu.Unlock()
	for _, p := range probes {
		res.Features = append(res.Features, r.features[p.name])
	}
	for _, a := range r.sc.Catalog.Activities {
		st := r.acts[a.Key]
		sale := r.ledgers[a.Key].result(a.PerUserLimit)
		st.Accepted = len(sale.Orders)
		res.Sales[a.Key] = sale
		res.Activities = append(res.Activities, *st)
	}
	return res
}
