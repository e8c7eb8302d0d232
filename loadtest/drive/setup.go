package drive

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

func (r *replay) setup(ctx context.Context) error {
	var err error
	if r.admin, err = r.gateway.DevToken(ctx, 1, "admin"); err != nil {
		return fmt.Errorf("replay: admin token: %w", err)
	}
	r.say("Signing in %d buyers…\n", r.scenario.Users.Count)
	if r.users, err = SignIn(ctx, r.gateway, r.scenario.Users.FirstID, r.scenario.Users.Count); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if r.features, err = ProbeFeatures(ctx, r.gateway, r.users[0].Token, r.admin); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	skuOf := map[string]string{}
	for _, p := range r.scenario.Catalog.Products {
		id, err := r.gateway.CreateProduct(ctx, r.admin, p.Title, p.Price, p.Stock)
		if err != nil {
			return fmt.Errorf("replay: create product %s: %w", p.Key, err)
		}
		skuOf[p.Key] = id
		r.catalog.regularStock[id] = p.Stock
		r.catalog.skus = append(r.catalog.skus, id)
		r.catalog.prices = append(r.catalog.prices, p.Price)
	}
	if err := r.setupBots(ctx); err != nil {
		return err
	}
	r.setupMarketing(ctx, skuOf)
	r.setupChannels(ctx)

	// The schedule starts once every activity exists: a second per ten
	// activities is plenty for the admin calls.
	r.start = time.Now().Add(time.Second + time.Duration(len(r.scenario.Catalog.Activities))*100*time.Millisecond)
	for _, a := range r.scenario.Catalog.Activities {
		starts := r.start.Add(a.StartsIn.D())
		id, err := r.gateway.CreateActivity(ctx, r.admin, api.Activity{SKUID: skuOf[a.Product], Price: a.Price, Stock: a.Stock,
			PerUserLimit: a.PerUserLimit, StartsAt: starts, EndsAt: starts.Add(a.Lasts.D()), ChallengeRequired: a.Challenge})
		if err != nil {
			return fmt.Errorf("replay: create activity %s: %w", a.Key, err)
		}
		r.catalog.regularStock[skuOf[a.Product]] -= a.Stock // taken from the product
		r.catalog.sales[a.Key] = &result.ActivityStat{Key: a.Key, ActivityID: id, Stock: a.Stock, PerUserLimit: a.PerUserLimit, Price: a.Price, Challenge: a.Challenge}
		r.catalog.ledgers[a.Key] = newSaleLedger(r.users)
	}
	return nil
}

// setupBots signs the bot accounts in, after the buyers' ids, when a
// bots phase will drive them.
func (r *replay) setupBots(ctx context.Context) error {
	if !slices.ContainsFunc(r.scenario.Phases, func(p scenario.Phase) bool { return p.Kind == scenario.PhaseBots }) {
		return nil
	}
	n := r.scenario.Bots.Accounts
	r.say("Signing in %d bot accounts…\n", n)
	users, err := SignIn(ctx, r.gateway, r.scenario.Users.FirstID+int64(r.scenario.Users.Count), n)
	if err != nil {
		return fmt.Errorf("replay: bots: %w", err)
	}
	r.bots.stats = &result.BotStats{Accounts: n, Answers: map[string]map[string]int{}}
	for _, u := range users {
		r.bots.accounts = append(r.bots.accounts, &bot{user: u, device: "bot-" + strconv.FormatInt(u.ID, 10), used: map[string]map[string]string{}})
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
		if _, err := r.gateway.Do(ctx, http.MethodPost, path, r.admin, nil, body, out); err != nil {
			f.Available, f.Reason = false, "skipped: setup failed: "+err.Error()
			r.features[feature] = f
			return false
		}
		return true
	}
	for _, p := range r.scenario.Catalog.Promotions {
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
	rng := rand.New(rand.NewPCG(r.scenario.Seed, 0xc0))
	for _, c := range r.scenario.Catalog.Coupons {
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
		r.coupons.count(func(s *result.CouponStats) {
			s.Templates++
			if s.Issued == nil {
				s.Issued = map[string]int64{}
			}
			s.Issued[tpl.TemplateID] = int64(len(claimers))
		})
		r.claim(ctx, tpl.TemplateID, c.Threshold, claimers)
	}
}

// setupChannels sets each scenario channel's routing weight, enabled,
// so that routing follows the scenario; a refusal turns the channel
// switches off with the reason. A pressure test leaves them as they are
// (Options.PressureTest): the routing is shared with real buyers.
func (r *replay) setupChannels(ctx context.Context) {
	if r.opts.PressureTest {
		f := r.features[result.FeatureChannels]
		f.Available, f.Reason = false, skippedPressureTest
		r.features[result.FeatureChannels] = f
		return
	}
	if !r.features[result.FeatureChannels].Available || r.scenario.Payment.PayShare == 0 {
		return
	}
	for _, ch := range slices.Sorted(maps.Keys(r.scenario.Payment.Channels)) {
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
	_, err := r.gateway.Do(ctx, http.MethodPut, "/admin/v1/channels/"+channel, r.admin, nil,
		map[string]any{"weight": r.scenario.Payment.Channels[channel], "enabled": enabled}, nil)
	return err
}
