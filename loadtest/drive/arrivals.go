package drive

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// dispatch sends phase p's arrivals at their scheduled times: a Poisson
// process whose rate follows the phase's ramp, drawn by thinning a
// process at the peak rate. Each arrival runs on a goroutine of its own
// at once (pool.go), so a slow answer never delays the next send (open
// loop).
func (r *replay) dispatch(ctx context.Context, i int, p scenario.Phase, sent *atomic.Int64) {
	rng := rand.New(rand.NewPCG(r.scenario.Seed, uint64(i)+1))
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
		r.load.inFlight.Add(1)
		r.load.requests.Go(func() {
			defer r.load.inFlight.Add(-1)
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
		for _, s := range r.scenario.Catalog.Activities {
			acts = append(acts, s.Key)
		}
	}
	a.activity = acts[rng.IntN(len(acts))]
	if p.Kind == scenario.PhaseCheckout {
		a.coupon = rng.Float64() < p.CouponShare
		n := p.Lines[0] + rng.IntN(p.Lines[1]-p.Lines[0]+1)
		for _, k := range rng.Perm(len(r.catalog.skus))[:min(n, len(r.catalog.skus))] {
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
			sku := r.catalog.skus[int(a.roll*2*float64(len(r.catalog.skus)))%len(r.catalog.skus)]
			r.call(ctx, EndpointProduct, due, http.MethodGet, "/api/v1/products/"+sku, "", nil, nil, nil)
		case a.roll < 0.8:
			r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.catalog.sales[a.activity].ActivityID, "", nil, nil, nil)
		default:
			r.call(ctx, EndpointActivities, due, http.MethodGet, "/api/v1/activities", "", nil, nil, nil)
		}
	case scenario.PhaseCountdown:
		r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.catalog.sales[a.activity].ActivityID, "", nil, nil, nil)
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
	_, err := r.gateway.Do(ctx, method, path, token, headers, in, out)
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
