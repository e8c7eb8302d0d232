package sweep

import (
	"context"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/shadow"
)

// Cursor is where a sweep's pass stands, one position per traffic class
// (platform/shadow): a sweep runs once per class, each over its own
// storage, and a marked pass's keys must not move the real pass (ids are
// unique across the classes, so sharing one position would skip real
// candidates). K is the key a sweep pages by, in the order its query
// reads: an id, or a (deadline, id) pair when the candidates are read by
// deadline. Its zero value starts at the beginning, and so does K's zero
// value. It is safe for concurrent use.
type Cursor[K comparable] struct {
	mu    sync.Mutex
	after [2]K
}

func class(ctx context.Context) int {
	if shadow.Is(ctx) {
		return 1
	}
	return 0
}

// After is the key the next page of ctx's class starts after: K's zero
// value at the start of a pass.
func (c *Cursor[K]) After(ctx context.Context) K {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.after[class(ctx)]
}

// Read records a page of ctx's class of keys read in ascending order with
// the given limit: a full page moves the cursor past its last key, a short
// one (the end of the candidates) ends the pass.
func (c *Cursor[K]) Read(ctx context.Context, keys []K, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(keys) < limit || len(keys) == 0 {
		var start K
		c.after[class(ctx)] = start
		return
	}
	c.after[class(ctx)] = keys[len(keys)-1]
}

// Mark is where a sweep that looks at each candidate once stands, one
// position per traffic class like Cursor: the sweep of candidates that
// come of age (holds taken past an age) reads each page after the last
// candidate it finished and never starts again from the beginning. Its
// zero value stands before every key. It only moves forward. It is safe
// for concurrent use.
type Mark struct {
	mu    sync.Mutex
	after [2]TimeKey
}

// After is the key ctx's class's next page starts after.
func (m *Mark) After(ctx context.Context) TimeKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.after[class(ctx)]
}

// Done moves ctx's class past k, a candidate it finished, unless it
// stands past k already.
func (m *Mark) Done(ctx context.Context, k TimeKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at := &m.after[class(ctx)]; at.Before(k) {
		*at = k
	}
}

// TimeKey is a candidate's key in a sweep that reads its candidates by a
// time (a deadline, a creation) and then by id among those at the same
// instant: the order of an index on (time, id), which lets each page read
// its own rows and no others, however many candidates wait behind it.
// The zero key comes before every candidate.
type TimeKey struct {
	At time.Time
	ID int64
}

// Before reports whether k comes before o in a sweep's order.
func (k TimeKey) Before(o TimeKey) bool {
	return k.At.Before(o.At) || (k.At.Equal(o.At) && k.ID < o.ID)
}

// Keys returns the key of each of a page's rows, in their order: what
// Read takes.
func Keys[T, K any](page []T, key func(T) K) []K {
	keys := make([]K, len(page))
	for i, row := range page {
		keys[i] = key(row)
	}
	return keys
}
