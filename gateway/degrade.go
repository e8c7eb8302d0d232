package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/sweep"
)

// Level is how much of the platform the gateway serves (降级: answering
// with less rather than not at all). Each level switches off what the one
// before it did, and more, in a fixed order: lists first, then regular
// checkout, then everything but the flash sale and payment.
type Level int32

// The degrade levels, from full service to the flash sale alone.
const (
	// LevelNormal serves everything.
	LevelNormal Level = iota
	// LevelProtect answers the activity list from the last copy this
	// gateway read (no product call) and switches off the buyer's lists
	// (orders, coupons): they are 503 with Retry-After.
	LevelProtect
	// LevelSurvive also switches off regular checkout, quotes and coupon
	// claims, and answers product and activity pages from the cache alone
	// (as the catalog_cache_only switch does).
	LevelSurvive
	// LevelClose also switches off cancel and refunds: only the flash
	// sale (buy, order status), payment and the admin routes are served.
	// The automatic controller never goes this far; an operator does.
	LevelClose
)

var levelNames = []string{"normal", "protect", "survive", "close"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("level(%d)", int32(l))
	}
	return levelNames[l]
}

// ParseLevel reads a level's name.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("not one of %s", strings.Join(levelNames, ", "))
}

// degradedRetryAfter is the Retry-After of a route switched off by the
// degrade level: levels move over seconds, not milliseconds.
const degradedRetryAfter = 5 * time.Second

// The automatic controller's rule, evaluated every second: a second is
// under pressure when at least half of the flash-sale route's requests
// (of at least pressureMinRequests) were refused by admission, or its
// p99 was over budget (more than slowShare of at least
// pressureMinRequests answers slower than Options.DegradeP99Budget), or a
// downstream's breaker is open; calm when under a tenth were refused, the
// p99 was within budget and no breaker is open. pressureSeconds in a row raise the level one step
// (up to LevelSurvive); calmSeconds in a row lower it one step. The gap
// between the two thresholds and the longer way down keep it from
// flapping (hysteresis).
const (
	pressureShare       = 0.5
	slowShare           = 0.01
	calmShare           = 0.1
	pressureMinRequests = 100
	pressureSeconds     = 3
	calmSeconds         = 10
	autoMax             = LevelSurvive
)

// degrader holds the level set by hand (Settings.Degrade) and the one the
// automatic controller chose; the effective level is the higher.
type degrader struct {
	manual, auto atomic.Int32
	// automatic says whether the controller may raise the level
	// (Settings.DegradeAuto); off, the automatic level is normal.
	automatic    atomic.Bool
	seckill      *admission
	breakersOpen func() int
	// budget is the flash-sale route's p99 budget; answers and slow
	// count the route's answers and those slower than it (observe).
	budget        time.Duration
	answers, slow atomic.Int64

	mu              sync.Mutex // guards the controller's state below
	admitted        int64
	refused         int64
	answered, late  int64
	pressured, calm int
}

// observe counts one answer of the flash-sale route that took elapsed.
func (d *degrader) observe(elapsed time.Duration) {
	d.answers.Add(1)
	if elapsed > d.budget {
		d.slow.Add(1)
	}
}

func newDegrader(seckill *admission, breakersOpen func() int, budget time.Duration, reg prometheus.Registerer) (*degrader, error) {
	d := &degrader{seckill: seckill, breakersOpen: breakersOpen, budget: budget}
	for source, v := range map[string]func() float64{
		"effective": func() float64 { return float64(d.level()) },
		"manual":    func() float64 { return float64(d.manual.Load()) },
		"auto":      func() float64 { return float64(d.auto.Load()) },
	} {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gateway_degrade_level",
			Help:        "The degrade level (0 normal, 1 protect, 2 survive, 3 close): effective, set by hand (manual) or by the automatic controller (auto).",
			ConstLabels: prometheus.Labels{"source": source},
		}, v)); err != nil {
			return nil, fmt.Errorf("gateway: register degrade metrics: %w", err)
		}
	}
	return d, nil
}

// level is the effective level.
func (d *degrader) level() Level {
	return Level(max(d.manual.Load(), d.auto.Load()))
}

// tick evaluates the last interval's signals and moves the automatic
// level at most one step.
func (d *degrader) tick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	admitted, refused := d.seckill.counts()
	da, dr := admitted-d.admitted, refused-d.refused
	d.admitted, d.refused = admitted, refused
	answered, late := d.answers.Load(), d.slow.Load()
	dn, dl := answered-d.answered, late-d.late
	d.answered, d.late = answered, late
	if !d.automatic.Load() {
		d.auto.Store(int32(LevelNormal))
		d.pressured, d.calm = 0, 0
		return
	}
	share := 0.0
	if da+dr > 0 {
		share = float64(dr) / float64(da+dr)
	}
	open := d.breakersOpen != nil && d.breakersOpen() > 0
	overBudget := dn >= pressureMinRequests && float64(dl) > slowShare*float64(dn)
	switch {
	case open || overBudget || (da+dr >= pressureMinRequests && share >= pressureShare):
		d.pressured, d.calm = d.pressured+1, 0
	case share < calmShare:
		d.pressured, d.calm = 0, d.calm+1
	default:
		d.pressured, d.calm = 0, 0
	}
	auto := Level(d.auto.Load())
	switch {
	case d.pressured >= pressureSeconds && auto < autoMax:
		d.auto.Store(int32(auto + 1))
		d.pressured = 0
	case d.calm >= calmSeconds && auto > LevelNormal:
		d.auto.Store(int32(auto - 1))
		d.calm = 0
	}
}

// RunDegrade runs the automatic degrade controller, one step a second,
// until ctx ends.
func (g *Gateway) RunDegrade(ctx context.Context) error {
	return sweep.Every(ctx, time.Second, func(context.Context) { g.degrade.tick() })
}

// Level returns the degrade level in force.
func (g *Gateway) Level() Level { return g.degrade.level() }

// degraded answers a route switched off at level off (LevelNormal: never)
// with 503 and Retry-After once the effective level reaches it.
func (g *Gateway) degraded(off Level) error {
	if off == LevelNormal || g.degrade.level() < off {
		return nil
	}
	return &Error{Code: errcode.Unavailable, Message: "switched off while the platform is degraded (" + g.degrade.level().String() + "), retry later",
		RetryAfter: degradedRetryAfter}
}

// listFallback answers the activity list from the last copy this gateway
// read, at LevelProtect and above; ok false means serve it normally.
func (g *Gateway) listFallback(w http.ResponseWriter, r *http.Request) (ok bool, err error) {
	if g.degrade.level() < LevelProtect {
		return false, nil
	}
	last := g.lastList.Load()
	if last == nil {
		return true, &Error{Code: errcode.Unavailable, Message: "the activity list is switched off while the platform is degraded, retry later",
			RetryAfter: degradedRetryAfter}
	}
	writeCatalog(w, r, *last)
	return true, nil
}
