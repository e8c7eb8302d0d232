// Package drive drives a scenario's load at the gateway, as buyers,
// bots and an admin would, and measures what it sees: it signs the
// buyers in, creates the catalogue, sends each phase's arrivals on
// schedule (open loop), follows accepted orders up (pay, cancel, refund),
// puts the faults on and off, and records every answer from its scheduled
// send time (recorder.go). Run is the replay; RunBurst a plain burst of
// buys. It does not audit: loadtest/audit does, on the result.
package drive

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// Options adjust a replay.
type Options struct {
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
	// PressureTest says the gateway client is marked (client.Marked): the
	// replay runs as pressure-test traffic on a platform that may be
	// serving real buyers, so it leaves what the two classes share alone:
	// the payment channels' routing switches, the channel simulator's
	// behaviour and the platform's own parts. The scenario's channel
	// setup and faults are reported as skipped (skippedPressureTest).
	PressureTest bool
}

// skippedPressureTest is why a marked replay skips the channel setup and
// the faults: they would change what real buyers get.
const skippedPressureTest = "skipped: a pressure test leaves production's switches alone (channel routing, channel behaviour, the platform's parts)"

// Infrastructure puts a scenario's fault on one of the platform's own
// parts (Fault.Target) and returns what lifts it. Only a platform the
// replay started in this process has one (make demo: its local stack and
// services).
type Infrastructure interface {
	Fault(ctx context.Context, f scenario.Fault) (lift func(context.Context) error, err error)
}

// replay is one run in progress: what the setup made, and the state
// each part of the drive keeps (each with its own lock).
type replay struct {
	scenario *scenario.Scenario
	gateway  *client.Client
	opts     Options
	admin    string // the admin's token
	users    []client.User
	features map[string]result.Feature
	catalog  catalog
	rec      *recorder
	// start is the replay's t = 0, once the catalogue exists.
	start   time.Time
	load    load
	orders  *orderBook
	coupons *couponWallet
	buyers  *followUps
	faults  *faultSchedule
	bots    botFarm
	phases  []result.PhaseStat
}

// catalog is what the setup created, in the scenario's order.
type catalog struct {
	skus   []string // product sku ids
	prices []int64  // product prices
	// regularStock is each product's stock, by sku id, once the flash
	// sales took theirs: what the checkouts sell from.
	regularStock map[string]int64
	// sales and ledgers are the flash sales by scenario key, and the books
	// of their buy attempts.
	sales   map[string]*result.ActivityStat
	ledgers map[string]*saleLedger
}

// load counts the requests in progress: every arrival's, and the
// come-backs of buyers who got no answer.
type load struct {
	requests *pool
	inFlight atomic.Int64
	accepted atomic.Int64
}

// orderBook is what the replay did with the orders it placed, for the
// audit: a trail per accepted order and the regular checkouts' buyers.
type orderBook struct {
	mu        sync.Mutex
	trails    map[string]*result.Trail
	regular   map[string]int64 // order id → buyer
	checkouts atomic.Int64     // numbers the checkouts' idempotency keys
	// unknownUnits are the units, by sku id, of the checkouts whose
	// answer was unknown (503 or no answer): each may hold its stock
	// until the stray sweep gives it back.
	unknownUnits map[string]int64
}

// note records what the replay did with an order, for the audit.
func (b *orderBook) note(orderID string, u client.User, fn func(*result.Trail)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.trails[orderID]
	if t == nil {
		t = &result.Trail{User: u}
		b.trails[orderID] = t
	}
	fn(t)
}

// followUps is the buyers' work after an accepted order (paying,
// cancelling, refunds): it must be done by end, the last arrival plus the
// drain.
type followUps struct {
	end    time.Time
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts result.FollowUps
}

// count updates the follow-ups' counts.
func (f *followUps) count(fn func(*result.FollowUps)) {
	f.mu.Lock()
	fn(&f.counts)
	f.mu.Unlock()
}

// faultSchedule is what became of each of the scenario's faults, and
// which are on now, for the live display.
type faultSchedule struct {
	stats []result.FaultStat
	on    []atomic.Bool
}

// botFarm is the scripted accounts of the bots phases and what their
// requests were answered (nil without a bots phase).
type botFarm struct {
	accounts []*bot
	stats    *result.BotStats
}

// Run signs the scenario's users in, creates its catalog, drives
// its phases at their scheduled rates and returns the measurements. It
// does not audit: call audit.Replay once the platform has drained.
func Run(ctx context.Context, gateway *client.Client, script *scenario.Scenario, opts Options) (*result.Replay, error) {
	if opts.CapacityWindow <= 0 {
		opts.CapacityWindow = 5
	}
	if opts.CapacityP99 <= 0 {
		opts.CapacityP99 = 50 * time.Millisecond
	}
	r := &replay{scenario: script, gateway: gateway, opts: opts,
		catalog: catalog{sales: map[string]*result.ActivityStat{}, ledgers: map[string]*saleLedger{}, regularStock: map[string]int64{}},
		orders:  &orderBook{trails: map[string]*result.Trail{}, regular: map[string]int64{}, unknownUnits: map[string]int64{}},
		coupons: &couponWallet{held: map[int][]heldCoupon{}},
		buyers:  &followUps{},
		faults:  &faultSchedule{on: make([]atomic.Bool, len(script.Faults))},
		load:    load{requests: newPool(poolIdle)}}
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

// needs is the feature a phase kind depends on ("" when none).
func needs(kind string) string {
	if kind == scenario.PhaseCheckout {
		return result.FeatureCheckout
	}
	return ""
}

func (r *replay) run(ctx context.Context) {
	r.rec = newRecorder(r.start)
	stats := make([]result.PhaseStat, len(r.scenario.Phases))
	sent := make([]atomic.Int64, len(r.scenario.Phases))
	var dispatchers sync.WaitGroup
	if d := time.Until(r.start); d > 0 {
		time.Sleep(d)
	}
	// Follow-ups (payments, cancels) run until the drain time is up; a
	// follow-up still waiting then is cut off, so none outlives the
	// replay and races the audit.
	r.buyers.end = r.start.Add(r.scenario.End() + r.scenario.Drain.D())
	followCtx, cancelFollow := context.WithDeadline(ctx, r.buyers.end)
	defer cancelFollow()
	stopBackground := r.background(ctx)
	for i, p := range r.scenario.Phases {
		stats[i] = result.PhaseStat{Name: p.Name, Kind: p.Kind, Status: "ran", StartS: p.Start.D().Seconds(), EndS: p.End().Seconds(), PeakRPS: max(p.Rate, p.RateFrom)}
		if f := needs(p.Kind); f != "" && !r.features[f].Available {
			stats[i].Status = r.features[f].Reason
			continue
		}
		dispatchers.Go(func() { r.dispatch(followCtx, i, p, &sent[i]) })
	}
	faults := r.scheduleFaults(ctx)
	dispatchers.Wait()
	r.load.requests.wait()
	r.buyers.wg.Wait()
	faults()
	stopBackground()
	for i := range stats {
		stats[i].Sent = sent[i].Load()
		if stats[i].Kind == scenario.PhaseSeckill && stats[i].Status == "ran" {
			r.rec.phaseSeckill(&stats[i])
		}
	}
	r.phases = stats
	for i := range r.faults.stats {
		if r.faults.stats[i].Ran() {
			r.rec.faultWindow(&r.faults.stats[i])
		}
	}
}

func (r *replay) result() *result.Replay {
	res := &result.Replay{
		Scenario: r.scenario.Name, Target: r.opts.Target, StartedAt: r.start, ElapsedS: time.Since(r.start).Seconds(),
		Users: len(r.users), Phases: r.phases, Faults: r.faults.stats, Channels: r.rec.channelStats(), Trails: r.orders.trails,
		Endpoints: r.rec.endpointStats(), Seconds: r.rec.seconds(), Stock: r.rec.stockSeries(), Payments: r.rec.paymentCounts(),
		Capacity: r.rec.capacity(r.opts.CapacityWindow, float64(r.opts.CapacityP99.Microseconds())/1000),
		Sales:    map[string]*result.Sale{}, Regular: r.orders.regular, UsersList: r.users,
		RegularStock: result.RegularStock{Start: r.catalog.regularStock, Unknown: r.orders.unknownUnits},
		Bots:         r.bots.stats,
	}
	for _, b := range r.bots.accounts {
		res.BotsList = append(res.BotsList, b.user)
	}
	r.buyers.mu.Lock()
	res.FollowUps = r.buyers.counts
	r.buyers.mu.Unlock()
	r.coupons.mu.Lock()
	res.Coupons = r.coupons.stats
	r.coupons.mu.Unlock()
	for _, p := range probes {
		res.Features = append(res.Features, r.features[p.name])
	}
	for _, a := range r.scenario.Catalog.Activities {
		st := r.catalog.sales[a.Key]
		sale := r.catalog.ledgers[a.Key].result(a.PerUserLimit)
		st.Accepted = len(sale.Orders)
		res.Sales[a.Key] = sale
		res.Activities = append(res.Activities, *st)
	}
	return res
}
