package drive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// BurstConfig describes a flash-sale burst: every user tries at least once,
// the remaining attempts go to random users, all fired by Concurrency
// workers as fast as the gateway answers.
type BurstConfig struct {
	ActivityID  string
	Users       []client.User
	Attempts    int
	Concurrency int
	Quantity    int64
	// ReplayShare of the attempts repeat the user's previous
	// Idempotency-Key, as a client retrying after a timeout would.
	ReplayShare float64
	Seed        uint64
	// Progress, when set, receives a one-line live display.
	Progress io.Writer
}

type attempt struct {
	user   int
	replay bool
}

func (c BurstConfig) schedule() []attempt {
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	n := max(c.Attempts, len(c.Users))
	plan := make([]attempt, 0, n)
	for i := range c.Users {
		plan = append(plan, attempt{user: i})
	}
	for len(plan) < n {
		plan = append(plan, attempt{user: r.IntN(len(c.Users)), replay: r.Float64() < c.ReplayShare})
	}
	r.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return plan
}

// userState is one virtual user's memory across its attempts on one sale.
// Attempts of one user may run concurrently, so it is guarded.
type userState struct {
	mu      sync.Mutex
	keys    int               // keys used so far
	orders  map[string]string // Idempotency-Key → the order it was answered with
	answers map[string][]result.Outcome
	reached int64 // units asked in attempts that reached the sale
}

// retries is how often an attempt that failed (a transport error or a
// 5xx) is repeated with the same key, as a client that got no answer
// would: its order may exist, and only a retry tells.
const retries = 3

// saleLedger remembers one flash sale's buy attempts across users: which
// key each attempt used, what each key was answered, and the result the
// audit checks. The burst and the replay both keep their books in it.
type saleLedger struct {
	users  []client.User
	states []userState
	mu     sync.Mutex // guards res
	res    *result.Sale
}

func newSaleLedger(users []client.User) *saleLedger {
	return &saleLedger{users: users, states: make([]userState, len(users)),
		res: &result.Sale{Counts: map[result.Outcome]int{}, Orders: map[string]int64{}}}
}

// nextKey returns the Idempotency-Key of user's next attempt: the
// previous one again when replay is asked and there is one.
func (l *saleLedger) nextKey(user int, replay bool) (key string, replayed bool) {
	u := &l.states[user]
	u.mu.Lock()
	defer u.mu.Unlock()
	replayed = replay && u.keys > 0
	if !replayed {
		u.keys++
	}
	return "k" + strconv.FormatInt(l.users[user].ID, 10) + "-" + strconv.Itoa(u.keys), replayed
}

// buy sends one attempt, repeating it with the same key after a failure.
// A 429 to a repeat says only that the gateway did not look this time:
// the try that failed before it may have made an order, so the attempt
// stays failed (unknown) and its buyer comes back later.
func buy(ctx context.Context, gateway *client.Client, token, activityID string, quantity int64, key string, headers map[string]string) (api.SeckillAccepted, error) {
	var order api.SeckillAccepted
	var err, failure error
	for try := 0; try <= retries; try++ {
		order, err = gateway.Seckill(ctx, token, activityID, quantity, key, headers)
		out := classify(err)
		if out.Refused() && failure != nil {
			return order, failure
		}
		if !out.Unknown() || ctx.Err() != nil {
			break
		}
		failure = err
		time.Sleep(time.Duration(50<<try) * time.Millisecond)
	}
	return order, err
}

// settle books an attempt's answer and returns its outcome: Replayed
// when the key had already been answered with this order.
func (l *saleLedger) settle(user int, key string, replayed bool, quantity int64, order api.SeckillAccepted, err error) result.Outcome {
	out := classify(err)
	u := &l.states[user]
	u.mu.Lock()
	known := u.orders[key]
	mismatch := false
	switch {
	case out == result.Accepted && known == "":
		if u.orders == nil {
			u.orders = map[string]string{}
		}
		u.orders[key] = order.OrderID
	case out == result.Accepted && known == order.OrderID:
		out = result.Replayed
	case out == result.Accepted:
		mismatch = true // one key, two orders
	case known != "" && !out.Refused() && !out.Unknown():
		mismatch = true // an accepted key refused on retry
	}
	if !replayed && (out == result.Accepted || out == result.SoldOut || out == result.LimitExceeded) {
		u.reached += quantity
	}
	u.mu.Unlock()
	l.heard(user, key, out)

	l.mu.Lock()
	defer l.mu.Unlock()
	res := l.res
	res.Counts[out]++
	if out == result.Accepted {
		if _, dup := res.Orders[order.OrderID]; dup {
			res.DuplicateIDs++
		}
		res.Orders[order.OrderID] = l.users[user].ID
	}
	if mismatch {
		res.ReplayMismatches++
	}
	if out == result.Failed && len(res.ErrorSamples) < 5 {
		res.ErrorSamples = append(res.ErrorSamples, err.Error())
	}
	return out
}

// heard notes an answer to a come-back that said nothing about the key
// (503 or 429 again), for the key's history; it counts nothing.
func (l *saleLedger) heard(user int, key string, out result.Outcome) {
	u := &l.states[user]
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.answers == nil {
		u.answers = map[string][]result.Outcome{}
	}
	u.answers[key] = append(u.answers[key], out)
}

// answeredLater books the answer an attempt whose fate was unknown (first
// booked as was) got when its buyer came back with the same key
// (replay.comeBack): the attempt counts as what that answer says instead.
func (l *saleLedger) answeredLater(user int, key string, replayed bool, quantity int64, was result.Outcome, order api.SeckillAccepted, err error) result.Outcome {
	l.mu.Lock()
	l.res.Counts[was]--
	l.res.AskedAgain++
	l.mu.Unlock()
	return l.settle(user, key, replayed, quantity, order, err)
}

// result closes the books: each user's demand counts up to limit.
func (l *saleLedger) result(limit int64) *result.Sale {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.DemandUnits = 0
	l.res.Answers = make(map[int64]map[string][]result.Outcome, len(l.states))
	for i := range l.states {
		l.states[i].mu.Lock()
		l.res.DemandUnits += min(l.states[i].reached, limit)
		l.res.Answers[l.users[i].ID] = l.states[i].answers
		l.states[i].mu.Unlock()
	}
	return l.res
}

// RunBurst fires the burst and classifies every answer.
func RunBurst(ctx context.Context, gateway *client.Client, cfg BurstConfig, limit int64) (*result.Sale, error) {
	if len(cfg.Users) == 0 || cfg.Concurrency <= 0 || cfg.Quantity <= 0 {
		return nil, errors.New("burst: need users, concurrency and quantity")
	}
	plan := cfg.schedule()
	ledger := newSaleLedger(cfg.Users)
	var done atomic.Int64
	next := make(chan attempt)
	hists := make([]*hdrhistogram.Histogram, cfg.Concurrency)

	start := time.Now()
	stopProgress := progress(cfg.Progress, &done, len(plan), start)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		h := hdrhistogram.New(1, 60_000_000, 3)
		hists[w] = h
		wg.Go(func() {
			for a := range next {
				key, replayed := ledger.nextKey(a.user, a.replay)
				t0 := time.Now()
				order, err := buy(ctx, gateway, cfg.Users[a.user].Token, cfg.ActivityID, cfg.Quantity, key, nil)
				_ = h.RecordValue(max(time.Since(t0).Microseconds(), 1))
				ledger.settle(a.user, key, replayed, cfg.Quantity, order, err)
				done.Add(1)
			}
		})
	}
	for _, a := range plan {
		select {
		case next <- a:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	res := ledger.result(limit)
	res.Elapsed = time.Since(start)
	stopProgress()

	res.Latency = hdrhistogram.New(1, 60_000_000, 3)
	for _, h := range hists {
		res.Latency.Merge(h)
	}
	return res, ctx.Err()
}

func classify(err error) result.Outcome {
	if err == nil {
		return result.Accepted
	}
	var api *client.APIError
	if !errors.As(err, &api) {
		return result.Failed
	}
	switch api.Code {
	case "SOLD_OUT":
		return result.SoldOut
	case "LIMIT_EXCEEDED":
		return result.LimitExceeded
	case "RATE_LIMITED":
		return result.RateLimited
	case "OVERLOADED":
		return result.Overloaded
	case "ACTIVITY_NOT_ACTIVE":
		return result.NotActive
	case "UNAVAILABLE":
		return result.Unavailable
	}
	if api.Code == "BLOCKED" || strings.HasPrefix(api.Code, "CHALLENGE_") {
		return result.Walled
	}
	return result.Failed
}

// progress prints "done/total rate" on one line every 250ms until stopped.
func progress(w io.Writer, done *atomic.Int64, total int, start time.Time) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				n := done.Load()
				fmt.Fprintf(w, "\r  %d/%d attempts  %.0f req/s  \n", n, total, float64(n)/time.Since(start).Seconds())
				return
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(w, "\r  %d/%d attempts  %.0f req/s  ", n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop); <-finished }
}
