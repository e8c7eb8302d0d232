package loadtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
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
}

// PhaseStat is what one phase did.
type PhaseStat struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Status is "ran" or why the phase was skipped.
	Status  string  `json:"status"`
	StartS  float64 `json:"start_s"`
	EndS    float64 `json:"end_s"`
	PeakRPS float64 `json:"peak_rate"`
	Sent    int64   `json:"sent"`
}

// FaultStat is what happened to one scheduled fault.
type FaultStat struct {
	Fault  string `json:"fault"`
	Status string `json:"status"`
}

// ActivityStat is one flash sale as the replay created it.
type ActivityStat struct {
	Key          string `json:"key"`
	ActivityID   string `json:"activity_id"`
	Stock        int64  `json:"stock"`
	PerUserLimit int64  `json:"per_user_limit"`
	Accepted     int    `json:"accepted"`
}

// FollowUps counts what buyers did with accepted orders.
type FollowUps struct {
	Paid, PayFailed, Cancelled, CancelFailed, Refunded, RefundFailed, Abandoned int64
	// Skipped counts follow-ups drawn whose endpoint is not available.
	Skipped int64
}

// ReplayResult is everything a replay measured, ready for the report and
// the audit.
type ReplayResult struct {
	Scenario   string                    `json:"scenario"`
	Target     string                    `json:"target"`
	StartedAt  time.Time                 `json:"started_at"`
	ElapsedS   float64                   `json:"elapsed_s"`
	Users      int                       `json:"users"`
	Phases     []PhaseStat               `json:"phases"`
	Features   []Feature                 `json:"features"`
	Faults     []FaultStat               `json:"faults"`
	Activities []ActivityStat            `json:"activities"`
	Endpoints  []EndpointStat            `json:"endpoints"`
	Seconds    []SecondStat              `json:"seconds"`
	Stock      map[string][]StockPoint   `json:"stock"`
	Payments   map[string]map[string]int `json:"payments"`
	FollowUps  FollowUps                 `json:"follow_ups"`
	Capacity   Capacity                  `json:"capacity"`
	Ceiling    *Ceiling                  `json:"ceiling,omitempty"`
	Checks     []Check                   `json:"checks"`
	Sales      map[string]*BurstResult   `json:"-"`
	Regular    map[string]int64          `json:"-"`
	UsersList  []User                    `json:"-"`
	limits     map[string]int64
}

// replay is one run in progress.
type replay struct {
	sc       *Scenario
	cl       *Client
	opts     ReplayOptions
	admin    string
	users    []User
	features map[string]Feature
	skus     []string // product sku ids in catalog order
	acts     map[string]*ActivityStat
	ledgers  map[string]*saleLedger
	rec      *recorder
	start    time.Time
	inflight atomic.Int64
	accepted atomic.Int64
	requests sync.WaitGroup
	follow   sync.WaitGroup
	followMu sync.Mutex
	fu       FollowUps
	regMu    sync.Mutex
	regular  map[string]int64
	checkout atomic.Int64
	phases   []PhaseStat
	faults   []FaultStat
}

// RunReplay signs the scenario's users in, creates its catalog, drives
// its phases at their scheduled rates and returns the measurements. It
// does not audit: call AuditReplay once the platform has drained.
func RunReplay(ctx context.Context, cl *Client, sc *Scenario, opts ReplayOptions) (*ReplayResult, error) {
	if opts.CapacityWindow <= 0 {
		opts.CapacityWindow = 5
	}
	if opts.CapacityP99 <= 0 {
		opts.CapacityP99 = 50 * time.Millisecond
	}
	r := &replay{sc: sc, cl: cl, opts: opts, acts: map[string]*ActivityStat{}, ledgers: map[string]*saleLedger{}, regular: map[string]int64{}}
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
	}
	r.setupMarketing(ctx, skuOf)

	// The schedule starts once every activity exists: a second per ten
	// activities is plenty for the admin calls.
	r.start = time.Now().Add(time.Second + time.Duration(len(r.sc.Catalog.Activities))*100*time.Millisecond)
	for _, a := range r.sc.Catalog.Activities {
		starts := r.start.Add(a.StartsIn.D())
		id, err := r.cl.CreateActivity(ctx, r.admin, api.Activity{SKUID: skuOf[a.Product], Price: a.Price, Stock: a.Stock,
			PerUserLimit: a.PerUserLimit, StartsAt: starts, EndsAt: starts.Add(a.Lasts.D())})
		if err != nil {
			return fmt.Errorf("replay: create activity %s: %w", a.Key, err)
		}
		r.acts[a.Key] = &ActivityStat{Key: a.Key, ActivityID: id, Stock: a.Stock, PerUserLimit: a.PerUserLimit}
		r.ledgers[a.Key] = newSaleLedger(r.users)
	}
	return nil
}

// setupMarketing creates the scenario's promotions and coupon templates
// when the gateway serves marketing; a refusal turns the feature off with
// the reason, so the report says why instead of the replay failing.
func (r *replay) setupMarketing(ctx context.Context, skuOf map[string]string) {
	create := func(feature, path string, body map[string]any) {
		f := r.features[feature]
		if !f.Available {
			return
		}
		if _, err := r.cl.Do(ctx, http.MethodPost, path, r.admin, nil, body, nil); err != nil {
			f.Available, f.Reason = false, "skipped: setup failed: "+err.Error()
			r.features[feature] = f
		}
	}
	for _, p := range r.sc.Catalog.Promotions {
		body := map[string]any{"kind": p.Kind}
		for k, v := range p.Fields {
			if s, ok := v.(string); ok && skuOf[s] != "" {
				v = skuOf[s] // product keys become sku ids
			}
			body[k] = v
		}
		create(FeaturePromotions, "/admin/v1/promotions", body)
	}
	for _, c := range r.sc.Catalog.Coupons {
		create(FeatureCoupons, "/admin/v1/coupon-templates", map[string]any{"threshold": c.Threshold, "amount": c.Amount})
	}
}

// needs is the feature a phase kind depends on ("" when none).
func needs(kind string) string {
	if kind == PhaseCheckout {
		return FeatureCheckout
	}
	return ""
}

func (r *replay) run(ctx context.Context) {
	r.rec = newRecorder(r.start)
	stats := make([]PhaseStat, len(r.sc.Phases))
	sent := make([]atomic.Int64, len(r.sc.Phases))
	var dispatchers sync.WaitGroup
	if d := time.Until(r.start); d > 0 {
		time.Sleep(d)
	}
	stopBackground := r.background(ctx)
	for i, p := range r.sc.Phases {
		stats[i] = PhaseStat{Name: p.Name, Kind: p.Kind, Status: "ran", StartS: p.Start.D().Seconds(), EndS: p.End().Seconds(), PeakRPS: max(p.Rate, p.RateFrom)}
		if f := needs(p.Kind); f != "" && !r.features[f].Available {
			stats[i].Status = r.features[f].Reason
			continue
		}
		dispatchers.Go(func() { r.dispatch(ctx, i, p, &sent[i]) })
	}
	faults := r.scheduleFaults(ctx)
	dispatchers.Wait()
	r.requests.Wait()
	// Follow-ups (payments, cancels) run until the drain time is up.
	waited := make(chan struct{})
	go func() { r.follow.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(r.sc.Drain.D()):
	case <-ctx.Done():
	}
	faults()
	stopBackground()
	for i := range stats {
		stats[i].Sent = sent[i].Load()
	}
	r.phases = stats
}

// dispatch sends phase p's arrivals at their scheduled times: a Poisson
// process whose rate follows the phase's ramp, drawn by thinning a
// process at the peak rate. Each arrival gets its own goroutine, so a
// slow answer never delays the next send (open loop).
func (r *replay) dispatch(ctx context.Context, i int, p Phase, sent *atomic.Int64) {
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
	roll     float64
	skus     []int
	quantity []int64
}

func (r *replay) draw(rng *rand.Rand, p Phase) arrival {
	a := arrival{user: rng.IntN(len(r.users)), roll: rng.Float64(), replay: rng.Float64() < p.ReplayShare}
	acts := p.Activities
	if len(acts) == 0 {
		for _, s := range r.sc.Catalog.Activities {
			acts = append(acts, s.Key)
		}
	}
	a.activity = acts[rng.IntN(len(acts))]
	if p.Kind == PhaseCheckout {
		n := p.Lines[0] + rng.IntN(p.Lines[1]-p.Lines[0]+1)
		for _, k := range rng.Perm(len(r.skus))[:min(n, len(r.skus))] {
			a.skus = append(a.skus, k)
			a.quantity = append(a.quantity, 1+rng.Int64N(2))
		}
	}
	return a
}

func (r *replay) fire(ctx context.Context, p Phase, a arrival, due time.Time) {
	switch p.Kind {
	case PhaseBrowse:
		switch {
		case a.roll < 0.5:
			sku := r.skus[int(a.roll*2*float64(len(r.skus)))%len(r.skus)]
			r.call(ctx, EndpointProduct, due, http.MethodGet, "/api/v1/products/"+sku, "", nil, nil, nil)
		case a.roll < 0.8:
			r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.acts[a.activity].ActivityID, "", nil, nil, nil)
		default:
			r.call(ctx, EndpointActivities, due, http.MethodGet, "/api/v1/activities", "", nil, nil, nil)
		}
	case PhaseCountdown:
		r.call(ctx, EndpointActivity, due, http.MethodGet, "/api/v1/activities/"+r.acts[a.activity].ActivityID, "", nil, nil, nil)
	case PhaseSeckill:
		r.seckill(ctx, p, a, due)
	case PhaseCheckout:
		r.placeRegular(ctx, a, due)
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
	var e *APIError
	if errors.As(err, &e) && e.Code != "" {
		return strings.ToLower(e.Code)
	}
	return string(Failed)
}

func (r *replay) seckill(ctx context.Context, p Phase, a arrival, due time.Time) {
	ledger, act := r.ledgers[a.activity], r.acts[a.activity]
	key, replayed := ledger.nextKey(a.user, a.replay)
	order, err := buy(ctx, r.cl, r.users[a.user].Token, act.ActivityID, p.Quantity, key)
	out := ledger.settle(a.user, key, replayed, p.Quantity, order, err)
	r.rec.done(EndpointSeckill, string(out), due, time.Now())
	if out == Accepted {
		r.accepted.Add(1)
		r.followUp(ctx, r.users[a.user], order.OrderID)
	}
}

func (r *replay) placeRegular(ctx context.Context, a arrival, due time.Time) {
	lines := make([]map[string]any, len(a.skus))
	for i, k := range a.skus {
		lines[i] = map[string]any{"sku_id": r.skus[k], "quantity": a.quantity[i]}
	}
	user := r.users[a.user]
	key := "c" + strconv.FormatInt(user.ID, 10) + "-" + strconv.FormatInt(r.checkout.Add(1), 10)
	var o api.Order
	err := r.call(ctx, EndpointCheckout, due, http.MethodPost, "/api/v1/orders", user.Token,
		map[string]string{"Idempotency-Key": key}, map[string]any{"lines": lines}, &o)
	if err == nil {
		r.regMu.Lock()
		r.regular[o.OrderID] = user.ID
		r.regMu.Unlock()
		r.followUp(ctx, user, o.OrderID)
	}
}

// followUp decides, from the order id and the seed, what the buyer does
// with an accepted order, and does it after the scenario's delay.
func (r *replay) followUp(ctx context.Context, u User, orderID string) {
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
		feature = FeaturePay
		ch := pickChannel(rng, pay.Channels)
		refund := rng.Float64() < pay.RefundShare
		act = func(ctx context.Context) { r.pay(ctx, u, orderID, ch, refund) }
	case roll < pay.PayShare+pay.CancelShare:
		feature = FeatureCancel
		act = func(ctx context.Context) { r.cancel(ctx, u, orderID) }
	default:
		r.count(func(f *FollowUps) { f.Abandoned++ })
		return
	}
	if !r.features[feature].Available {
		r.count(func(f *FollowUps) { f.Skipped++ })
		return
	}
	r.follow.Add(1)
	time.AfterFunc(delay, func() {
		defer r.follow.Done()
		act(ctx)
	})
}

func (r *replay) count(fn func(*FollowUps)) {
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
func (r *replay) settled(ctx context.Context, u User, orderID string) (api.Order, error) {
	for i := 0; ; i++ {
		o, err := withRetryAfter(ctx, func() (api.Order, error) { return r.cl.GetOrder(ctx, u.Token, orderID) })
		if err != nil || o.Status != "PROCESSING" || i == 100 {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *replay) pay(ctx context.Context, u User, orderID, channel string, refund bool) {
	o, err := r.settled(ctx, u, orderID)
	if err != nil {
		r.count(func(f *FollowUps) { f.PayFailed++ })
		return
	}
	var p struct {
		PaymentID string `json:"payment_id"`
		Channel   string `json:"channel"`
		Status    string `json:"status"`
	}
	err = r.call(ctx, EndpointPay, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/pay", u.Token,
		map[string]string{"Idempotency-Key": "pay-" + orderID}, map[string]any{"channel": channel}, &p)
	if err != nil {
		r.rec.payment(channel, outcomeOf(err))
		r.count(func(f *FollowUps) { f.PayFailed++ })
		return
	}
	r.rec.payment(p.Channel, p.Status)
	r.count(func(f *FollowUps) { f.Paid++ })
	if !refund || len(o.Lines) == 0 {
		return
	}
	if !r.features[FeatureRefund].Available {
		r.count(func(f *FollowUps) { f.Skipped++ })
		return
	}
	err = r.call(ctx, EndpointRefund, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/refunds", u.Token,
		map[string]string{"Idempotency-Key": "refund-" + orderID},
		map[string]any{"lines": []map[string]any{{"line_id": o.Lines[0].LineID, "quantity": 1}}}, nil)
	r.count(func(f *FollowUps) {
		if err != nil {
			f.RefundFailed++
		} else {
			f.Refunded++
		}
	})
}

func (r *replay) cancel(ctx context.Context, u User, orderID string) {
	_, err := r.settled(ctx, u, orderID)
	if err == nil {
		err = r.call(ctx, EndpointCancel, time.Now(), http.MethodPost, "/api/v1/orders/"+orderID+"/cancel", u.Token, nil, nil, nil)
	}
	r.count(func(f *FollowUps) {
		if err != nil {
			f.CancelFailed++
		} else {
			f.Cancelled++
		}
	})
}

// scheduleFaults switches payment channels off (or slow) and back on at
// the scenario's times; it returns a func that waits for the switches.
func (r *replay) scheduleFaults(ctx context.Context) func() {
	var wg sync.WaitGroup
	r.faults = make([]FaultStat, len(r.sc.Faults))
	for i, f := range r.sc.Faults {
		name := fmt.Sprintf("%s %s at %s for %s", f.Channel, f.Mode, f.At.D(), f.Lasts.D())
		if ft := r.features[FeatureChannels]; !ft.Available {
			r.faults[i] = FaultStat{Fault: name, Status: ft.Reason}
			continue
		}
		on, off := map[string]any{"enabled": false}, map[string]any{"enabled": true}
		if f.Mode == FaultSlow {
			on, off = map[string]any{"latency_ms": f.Latency.D().Milliseconds()}, map[string]any{"latency_ms": 0}
		}
		wg.Go(func() {
			status := "applied and lifted"
			for _, step := range []struct {
				at   time.Duration
				body map[string]any
			}{{f.At.D(), on}, {f.At.D() + f.Lasts.D(), off}} {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(r.start.Add(step.at))):
				}
				err := r.call(ctx, EndpointChannel, time.Now(), http.MethodPut, "/admin/v1/channels/"+f.Channel, r.admin, nil, step.body, nil)
				if err != nil {
					status = "failed: " + err.Error()
				}
			}
			r.faults[i] = FaultStat{Fault: name, Status: status}
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
	due, done, p99 := r.rec.live(now)
	end := "  "
	if final {
		end = "  \n"
	}
	fmt.Fprintf(r.opts.Progress, "\r  t=%3.0fs %-24s due %5d/s  done %5d/s  p99 %7.1fms  in flight %4d  accepted %6d%s",
		t.Seconds(), strings.Join(active, "+"), due, done, p99, r.inflight.Load(), r.accepted.Load(), end)
}

func (r *replay) result() *ReplayResult {
	res := &ReplayResult{
		Scenario: r.sc.Name, Target: r.opts.Target, StartedAt: r.start, ElapsedS: time.Since(r.start).Seconds(),
		Users: len(r.users), Phases: r.phases, Faults: r.faults,
		Endpoints: r.rec.endpointStats(), Seconds: r.rec.seconds(), Stock: r.rec.stockSeries(), Payments: r.rec.paymentCounts(),
		Capacity: r.rec.capacity(r.opts.CapacityWindow, float64(r.opts.CapacityP99.Microseconds())/1000),
		Sales:    map[string]*BurstResult{}, Regular: r.regular, UsersList: r.users, limits: map[string]int64{},
	}
	r.followMu.Lock()
	res.FollowUps = r.fu
	r.followMu.Unlock()
	for _, p := range probes {
		res.Features = append(res.Features, r.features[p.name])
	}
	for _, a := range r.sc.Catalog.Activities {
		st := r.acts[a.Key]
		sale := r.ledgers[a.Key].result(a.PerUserLimit)
		st.Accepted = len(sale.Orders)
		res.Sales[a.Key] = sale
		res.limits[a.Key] = a.PerUserLimit
		res.Activities = append(res.Activities, *st)
	}
	return res
}
