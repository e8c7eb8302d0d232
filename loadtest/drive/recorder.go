package drive

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/flashsale/flashsale/loadtest/result"
)

// Endpoints of the replay, as the report names them.
const (
	EndpointProduct    = "GET product"
	EndpointActivity   = "GET activity"
	EndpointActivities = "GET activities"
	EndpointSeckill    = "POST seckill"
	EndpointOrder      = "GET order"
	EndpointPay        = "POST pay"
	EndpointWallet     = "POST wallet" // the buyer confirming at the channel's pay URL
	EndpointCancel     = "POST cancel"
	EndpointRefund     = "POST refund"
	EndpointPayment    = "GET payment"
	EndpointCheckout   = "POST checkout"
	EndpointChannel    = "PUT channel"
)

// histMax bounds recorded latencies (microseconds): a minute.
const histMax = 60_000_000

// statKey names one endpoint's outcome.
type statKey struct{ endpoint, outcome string }

// second holds what happened in one second of the replay: arrivals are
// counted at their scheduled time, completions when answered, and
// latencies under the second the request was due.
type second struct {
	arrivals, completions int
	all, seckill          *hdrhistogram.Histogram
	// answered holds the latencies of the answers received this second,
	// for the live display (all and seckill are by scheduled second,
	// which is only complete once the backlog has drained).
	recent *hdrhistogram.Histogram
	// answered counts seckill requests the platform answered (not
	// rate-limited, not failed) by scheduled second.
	answered int
	accepted int
	// admitted and refused split the seckill latencies by scheduled
	// second into answered buys and 429s, and soldOut holds the
	// SOLD_OUT answers among the admitted, for the phase table.
	admitted, refused, soldOut *hdrhistogram.Histogram
	// answers and failures count every endpoint's requests by scheduled
	// second, and of them the ones answered 5xx or not at all, for the
	// fault windows; failedBy splits the failures by endpoint.
	answers, failures int
	failedBy          map[string]int
}

// recorder collects the replay's measurements. Latency is always counted
// from the request's scheduled send time, so a request that waited for a
// connection or a late timer is charged the wait (no coordinated
// omission).
type recorder struct {
	mu       sync.Mutex
	start    time.Time
	hists    map[statKey]*hdrhistogram.Histogram
	secs     []*second
	stock    map[string][]result.StockPoint
	payments map[string]map[string]int
	// channels holds payment latencies by channel and step (pay, wallet).
	channels map[statKey]*hdrhistogram.Histogram
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, hists: map[statKey]*hdrhistogram.Histogram{},
		stock: map[string][]result.StockPoint{}, payments: map[string]map[string]int{}, channels: map[statKey]*hdrhistogram.Histogram{}}
}

func (r *recorder) sec(t time.Time) *second {
	i := max(int(t.Sub(r.start)/time.Second), 0)
	for len(r.secs) <= i {
		r.secs = append(r.secs, &second{all: hdrhistogram.New(1, histMax, 2), seckill: hdrhistogram.New(1, histMax, 2),
			recent: hdrhistogram.New(1, histMax, 2), admitted: hdrhistogram.New(1, histMax, 2), refused: hdrhistogram.New(1, histMax, 2),
			soldOut: hdrhistogram.New(1, histMax, 2)})
	}
	return r.secs[i]
}

// arrive counts a request due at scheduled.
func (r *recorder) arrive(scheduled time.Time) {
	r.mu.Lock()
	r.sec(scheduled).arrivals++
	r.mu.Unlock()
}

// done records an answer to a request due at scheduled.
func (r *recorder) done(endpoint, outcome string, scheduled, answered time.Time) {
	us := max(answered.Sub(scheduled).Microseconds(), 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = histOf(r.hists, statKey{endpoint, outcome}).RecordValue(us)
	a := r.sec(answered)
	a.completions++
	_ = a.recent.RecordValue(us)
	s := r.sec(scheduled)
	_ = s.all.RecordValue(us)
	s.answers++
	if serverFailure(outcome) {
		s.failures++
		if s.failedBy == nil {
			s.failedBy = map[string]int{}
		}
		s.failedBy[endpoint]++
	}
	if endpoint == EndpointSeckill {
		_ = s.seckill.RecordValue(us)
		switch {
		case result.Outcome(outcome).Refused():
			_ = s.refused.RecordValue(us)
		case !result.Outcome(outcome).Unknown():
			s.answered++
			_ = s.admitted.RecordValue(us)
		}
		switch result.Outcome(outcome) {
		case result.Accepted:
			s.accepted++
		case result.SoldOut:
			_ = s.soldOut.RecordValue(us)
		}
	}
}

// stockAt records an activity's remaining stock.
func (r *recorder) stockAt(activity string, t time.Time, remaining int64) {
	r.mu.Lock()
	r.stock[activity] = append(r.stock[activity], result.StockPoint{T: t.Sub(r.start).Seconds(), Remaining: remaining})
	r.mu.Unlock()
}

// payment counts a payment answer by channel and status.
func (r *recorder) payment(channel, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.payments[channel] == nil {
		r.payments[channel] = map[string]int{}
	}
	r.payments[channel][status]++
}

// Payment steps whose latency is kept per channel.
const (
	stepPay    = "pay"    // POST /api/v1/orders/{id}/pay, the trade created at the channel
	stepWallet = "wallet" // the buyer's confirmation at the channel's pay URL
)

// channelLatency records how long a payment step took on channel.
func (r *recorder) channelLatency(channel, step string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = histOf(r.channels, statKey{channel, step}).RecordValue(max(d.Microseconds(), 1))
}

// histOf returns m's histogram for k, made on first use; callers hold
// r.mu.
func histOf(m map[statKey]*hdrhistogram.Histogram, k statKey) *hdrhistogram.Histogram {
	h := m[k]
	if h == nil {
		h = hdrhistogram.New(1, histMax, 3)
		m[k] = h
	}
	return h
}

// live returns the last full second's arrivals, completions and the p99
// (ms) of its answers, for the progress line.
func (r *recorder) live(now time.Time) (arrivals, completions int, p99 float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(now.Sub(r.start)/time.Second) - 1
	if i < 0 || i >= len(r.secs) {
		return 0, 0, 0
	}
	s := r.secs[i]
	return s.arrivals, s.completions, ms(s.recent.ValueAtQuantile(99))
}

func ms(us int64) float64 { return float64(us) / 1000 }

func (r *recorder) endpointStats() []result.EndpointStat {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]result.EndpointStat, 0, len(r.hists))
	for k, h := range r.hists {
		out = append(out, result.EndpointStat{Endpoint: k.endpoint, Outcome: k.outcome, Count: h.TotalCount(),
			P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
			P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Endpoint != out[j].Endpoint {
			return out[i].Endpoint < out[j].Endpoint
		}
		return out[i].Count > out[j].Count
	})
	return out
}

func (r *recorder) seconds() []result.SecondStat {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]result.SecondStat, len(r.secs))
	for i, s := range r.secs {
		out[i] = result.SecondStat{T: i, Arrivals: s.arrivals, Completions: s.completions,
			P50: ms(s.all.ValueAtQuantile(50)), P99: ms(s.all.ValueAtQuantile(99)), P999: ms(s.all.ValueAtQuantile(99.9)),
			SeckillAnswered: s.answered, SeckillAccepted: s.accepted, SeckillP99: ms(s.seckill.ValueAtQuantile(99)), Failures: s.failures, FailedBy: s.failedBy}
	}
	return out
}

// phaseSeckill fills in what the flash-sale requests due within [from,
// to) seconds got: answered per second and their p99, the SOLD_OUT
// answers among them and theirs, and the 429s and theirs.
func (r *recorder) phaseSeckill(p *result.PhaseStat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, to := int(p.StartS), min(int(math.Ceil(p.EndS)), len(r.secs))
	if from >= to {
		return
	}
	admitted, refused, soldOut := hdrhistogram.New(1, histMax, 2), hdrhistogram.New(1, histMax, 2), hdrhistogram.New(1, histMax, 2)
	answered := 0
	for _, s := range r.secs[from:to] {
		admitted.Merge(s.admitted)
		refused.Merge(s.refused)
		soldOut.Merge(s.soldOut)
		answered += s.answered
	}
	p.AnsweredPerS = float64(answered) / (p.EndS - p.StartS)
	p.AnsweredP99 = ms(admitted.ValueAtQuantile(99))
	p.Refused = refused.TotalCount()
	p.RefusedP99 = ms(refused.ValueAtQuantile(99))
	p.SoldOut = soldOut.TotalCount()
	p.SoldOutP99 = ms(soldOut.ValueAtQuantile(99))
}

// capacity finds the best window of the flash-sale answers.
func (r *recorder) capacity(window int, p99Bound float64) result.Capacity {
	r.mu.Lock()
	defer r.mu.Unlock()
	best := result.Capacity{Window: window, P99Bound: p99Bound}
	for from := 0; from+window <= len(r.secs); from++ {
		h := hdrhistogram.New(1, histMax, 2)
		n := 0
		for _, s := range r.secs[from : from+window] {
			h.Merge(s.seckill)
			n += s.answered
		}
		rate, p99 := float64(n)/float64(window), ms(h.ValueAtQuantile(99))
		if h.TotalCount() > 0 && p99 <= p99Bound && rate > best.PerSec {
			best.PerSec, best.P99, best.From = rate, p99, from
		}
	}
	return best
}

func (r *recorder) stockSeries() map[string][]result.StockPoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]result.StockPoint, len(r.stock))
	for k, v := range r.stock {
		out[k] = append([]result.StockPoint(nil), v...)
	}
	return out
}

func (r *recorder) channelStats() []result.ChannelStat {
	r.mu.Lock()
	defer r.mu.Unlock()
	byName := map[string]*result.ChannelStat{}
	for k, h := range r.channels {
		c := byName[k.endpoint]
		if c == nil {
			c = &result.ChannelStat{Channel: k.endpoint}
			byName[k.endpoint] = c
		}
		p50, p99 := ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99))
		if k.outcome == stepPay {
			c.Opened, c.PayP50, c.PayP99 = h.TotalCount(), p50, p99
		} else {
			c.Confirmed, c.WalletP50, c.WalletP99 = h.TotalCount(), p50, p99
		}
	}
	out := make([]result.ChannelStat, 0, len(byName))
	for _, c := range byName {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out
}

func (r *recorder) paymentCounts() map[string]map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]map[string]int, len(r.payments))
	for ch, m := range r.payments {
		out[ch] = map[string]int{}
		for st, n := range m {
			out[ch][st] = n
		}
	}
	return out
}

// serverFailure says whether an outcome is the platform's failure: no
// answer, or a 5xx (UNAVAILABLE, INTERNAL), as opposed to an answer about
// the request (including 429s, which are the platform shedding load).
func serverFailure(outcome string) bool {
	return result.Outcome(outcome).Unknown() || outcome == "internal"
}

// recoverSeconds is how many consecutive seconds of requests must see
// no more than recoverShare failures for the platform to count as
// recovered from a fault.
const (
	recoverSeconds = 2
	recoverShare   = 0.01
)

// faultWindow fills in what the requests due while the fault was on got
// (count, failures, p99), and how long after its lift the platform took
// to recover: the start of the first run of recoverSeconds seconds, from
// the lift on, in which every second had requests and at most
// recoverShare of them failed. RecoveredS stays -1 when no such run came
// before the replay ended.
func (r *recorder) faultWindow(f *result.FaultStat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, to := int(f.OnS), min(int(math.Ceil(f.OffS)), len(r.secs))
	h := hdrhistogram.New(1, histMax, 2)
	for _, s := range r.secs[min(from, to):to] {
		h.Merge(s.all)
		f.Requests += s.answers
		f.Failures += s.failures
	}
	if f.Requests > 0 {
		f.FailureRate = float64(f.Failures) / float64(f.Requests)
		f.P99 = ms(h.ValueAtQuantile(99))
	}
	f.RecoveredS = -1
	healthy := func(s *second) bool {
		return s.answers > 0 && float64(s.failures) <= recoverShare*float64(s.answers)
	}
	run := 0
	for i := int(f.OffS); i < len(r.secs); i++ {
		if !healthy(r.secs[i]) {
			run = 0
			continue
		}
		if run++; run == recoverSeconds {
			f.RecoveredS = max(float64(i-recoverSeconds+1)-f.OffS, 0)
			return
		}
	}
}
