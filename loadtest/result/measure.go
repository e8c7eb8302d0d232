package result

import "strings"

// EndpointBot names a bot's requests in the endpoints' table (a buy, or
// the challenge it solved for one): the bots check reads them, and the
// audit's other checks leave them out.
const EndpointBot = "POST bot buy"

// EndpointStat is the latency of one endpoint's outcome, in milliseconds.
type EndpointStat struct {
	Endpoint string  `json:"endpoint"`
	Outcome  string  `json:"outcome"`
	Count    int64   `json:"count"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	P999     float64 `json:"p999_ms"`
	Max      float64 `json:"max_ms"`
}

// SecondStat is one second of the replay.
type SecondStat struct {
	T           int     `json:"t"`
	Arrivals    int     `json:"arrivals"`
	Completions int     `json:"completions"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	// SeckillAnswered counts flash-sale buys due this second that the
	// platform answered (accepted, sold out, limited, not active).
	SeckillAnswered int     `json:"seckill_answered"`
	SeckillAccepted int     `json:"seckill_accepted"`
	SeckillP99      float64 `json:"seckill_p99_ms"`
	// Failures counts the requests due this second (any endpoint) that
	// were answered 5xx or not at all, and FailedBy splits them by
	// endpoint.
	Failures int            `json:"failures"`
	FailedBy map[string]int `json:"failed_by,omitempty"`
}

// StockPoint is an activity's remaining stock at T seconds.
type StockPoint struct {
	T         float64 `json:"t"`
	Remaining int64   `json:"remaining"`
}

// Capacity is the best flash-sale throughput the platform sustained with
// a tail latency within the bound: the highest rate of answered buys over
// any window of consecutive seconds whose p99 stayed within P99Bound.
type Capacity struct {
	Window   int     `json:"window_s"`
	P99Bound float64 `json:"p99_bound_ms"`
	// PerSec is answered buys per second in that window (0 when no
	// window qualified); P99 is its p99 and From its first second.
	PerSec float64 `json:"answered_per_s"`
	P99    float64 `json:"p99_ms"`
	From   int     `json:"from_s"`
}

// ChannelStat is one payment channel in the replay: how many payments
// the platform opened on it and buyers confirmed, the latencies of both
// steps (ms), and, after the audit, its payments' final statuses.
type ChannelStat struct {
	Channel   string  `json:"channel"`
	Opened    int64   `json:"opened"`
	Confirmed int64   `json:"confirmed"`
	PayP50    float64 `json:"pay_p50_ms"`
	PayP99    float64 `json:"pay_p99_ms"`
	WalletP50 float64 `json:"wallet_p50_ms"`
	WalletP99 float64 `json:"wallet_p99_ms"`
	// Final maps a payment status (SUCCEEDED, REFUNDED, FAILED, PAYING)
	// to the number of the channel's payments that ended in it.
	Final map[string]int `json:"final,omitempty"`
}

// CacheLevel is what one level of the catalogue caches did, summed over
// the services scraped and their caches, since they started: lookups,
// hits (for bloom, ids passed on to the database) and, for bloom,
// Refused (unknown ids answered without a read).
type CacheLevel struct {
	Level   string  `json:"level"`
	Lookups float64 `json:"lookups"`
	Hits    float64 `json:"hits"`
	Refused float64 `json:"refused,omitempty"`
}

// GatewayTimes is how long the gateway itself took to turn flash-sale
// buys away, from its own histogram over the whole run: Refused for the
// 429s (OVERLOADED, RATE_LIMITED), SoldOut for SOLD_OUT (the local flag's
// and the order service's). Each is nil when the gateway gave no such
// answer.
type GatewayTimes struct {
	Refused *Timing `json:"refused,omitempty"`
	SoldOut *Timing `json:"sold_out,omitempty"`
}

// Timing is a count of answers and the upper bounds of the histogram
// buckets that hold their p50 and p99 (the quantile is at most that; -1
// past the largest).
type Timing struct {
	Count uint64  `json:"count"`
	P50Ms float64 `json:"p50_at_most_ms"`
	P99Ms float64 `json:"p99_at_most_ms"`
}

// Ceiling is the redis-benchmark ceiling: the reservation script run by
// redis-benchmark straight on Redis, no Go and no network hop beyond
// Redis's own. Figures of a run are quoted as ratios to it, measured in
// the same run on the same machine.
type Ceiling struct {
	Name   string  `json:"name"`
	PerSec float64 `json:"per_s"`
}

// strangerPrefix names the endpoints a stranger tried on another buyer's
// order: they must be refused, never served.
const strangerPrefix = "stranger: "

// StrangerEndpoint is the name endpoint's requests by a stranger are
// recorded under.
func StrangerEndpoint(endpoint string) string { return strangerPrefix + endpoint }

// IsStrangerEndpoint says whether endpoint names a stranger's requests.
func IsStrangerEndpoint(endpoint string) bool { return strings.HasPrefix(endpoint, strangerPrefix) }
