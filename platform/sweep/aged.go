package sweep

import (
	"errors"
	"fmt"
	"time"
)

// AgedQuery asks a service for a page of the candidates that came of
// age: those stamped at least OlderThan ago and, unless YoungerThan is
// zero, less than YoungerThan ago, by their time and then id
// (TimeKey), after After, at most Limit of them. The order service's
// sweep of holds taken for orders it never stored reads the product
// service's held stock and the marketing service's used coupons with it.
type AgedQuery struct {
	OlderThan, YoungerThan time.Duration
	After                  TimeKey
	Limit                  int
}

// ErrAgedQuery is an AgedQuery out of bounds.
var ErrAgedQuery = errors.New("aged query out of bounds")

// Validate checks the query against the youngest age a page may ask for
// (younger candidates belong to work still running) and the largest page.
func (q AgedQuery) Validate(minAge time.Duration, maxLimit int) error {
	switch {
	case q.OlderThan < minAge:
		return fmt.Errorf("%w: older than %s, want at least %s", ErrAgedQuery, q.OlderThan, minAge)
	case q.YoungerThan != 0 && q.YoungerThan <= q.OlderThan:
		return fmt.Errorf("%w: younger than %s, not above older than %s", ErrAgedQuery, q.YoungerThan, q.OlderThan)
	case q.Limit < 1 || q.Limit > maxLimit:
		return fmt.Errorf("%w: limit %d outside 1..%d", ErrAgedQuery, q.Limit, maxLimit)
	case q.After.ID < 0:
		return fmt.Errorf("%w: id %d is negative", ErrAgedQuery, q.After.ID)
	}
	return nil
}

// Bounds returns, for a store whose candidates are stamped by a clock
// that reads now, the time before which a candidate is old enough and
// the key its page starts after: the later of After and the start of the
// window (YoungerThan ago, before every id). A page that starts from one
// key reads from one index position, where a window applied as a filter
// would make a first page step over every candidate older than it.
func (q AgedQuery) Bounds(now time.Time) (before time.Time, after TimeKey) {
	after = q.After
	if q.YoungerThan > 0 {
		if start := now.Add(-q.YoungerThan); after.At.Before(start) {
			after = TimeKey{At: start}
		}
	}
	return now.Add(-q.OlderThan), after
}
