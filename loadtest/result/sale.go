package result

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome classifies one buy attempt.
type Outcome string

// The outcomes of a buy attempt.
const (
	Accepted      Outcome = "accepted"
	Replayed      Outcome = "replayed" // a repeated Idempotency-Key answered with the first order id
	SoldOut       Outcome = "sold_out"
	LimitExceeded Outcome = "limited"
	RateLimited   Outcome = "rate_limited"
	Overloaded    Outcome = "overloaded" // refused by the gateway's admission limit (429 OVERLOADED)
	NotActive     Outcome = "not_active"
	// Walled is a refusal by the flash-sale entry's bot wall (BLOCKED,
	// CHALLENGE_*): a buyer's is a finding, a bot's the point.
	Walled Outcome = "walled"
	// Unavailable is a 503 UNAVAILABLE after the quick retries: the
	// documented answer of a degraded platform (a fault, a fenced sale).
	// Failed is anything undocumented: a 500, a transport error, no
	// answer. After either, whether the attempt made an order is unknown.
	Unavailable Outcome = "unavailable"
	Failed      Outcome = "errors"
)

// Refused says whether the gateway turned the attempt away before it
// reached the sale (a 429: rate limited or overloaded).
func (o Outcome) Refused() bool { return o == RateLimited || o == Overloaded }

// Unknown says whether the attempt's fate is unknown: it got no answer
// about its key (503 or an error), so an order may or may not exist.
func (o Outcome) Unknown() bool { return o == Unavailable || o == Failed }

// Outcomes lists the outcomes in report order.
var Outcomes = []Outcome{Accepted, Replayed, SoldOut, LimitExceeded, RateLimited, Overloaded, NotActive, Walled, Unavailable, Failed}

// Sale is what one flash sale's buy attempts got, in a burst
// (drive.RunBurst) or in a replay (Replay.Sales): the outcomes and
// orders the audit holds against the stored books.
type Sale struct {
	Counts  map[Outcome]int
	Latency *hdrhistogram.Histogram // microseconds, every attempt
	Elapsed time.Duration
	// Orders maps each accepted order id to its buyer.
	Orders map[string]int64
	// ReplayMismatches counts keys answered with two different orders,
	// or refused after they had been accepted.
	ReplayMismatches int
	// DuplicateIDs counts order ids handed to two different keys.
	DuplicateIDs int
	// DemandUnits is what the users asked for, counting each user's
	// attempts that reached the sale (not rate-limited, not failed), capped
	// per user by limit: the units the sale could have sold with
	// unlimited stock.
	DemandUnits int64
	// ErrorSamples are a few of the unexpected errors.
	ErrorSamples []string
	// AskedAgain counts the attempts that had failed (no answer after
	// their retries) and were answered when their buyer came back with
	// the same key seconds later (drive's replay.comeBack): their outcome is what
	// that answer said.
	AskedAgain int
	// Answers holds, by user id and key, what each attempt with the key
	// was answered, in order (the audit explains an unexpected order by
	// its key's answers).
	Answers map[int64]map[string][]Outcome `json:"-"`
}

// Throughput is completed attempts per second.
func (r *Sale) Throughput() float64 {
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	return float64(total) / r.Elapsed.Seconds()
}
