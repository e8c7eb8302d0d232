package sweep

import (
	"context"
	"sync"

	"github.com/flashsale/flashsale/platform/shadow"
)

// Cursor is where a sweep's pass stands, one position per traffic class
// (platform/shadow): a sweep runs once per class, each over its own
// storage, and a marked pass's ids must not move the real pass (ids are
// unique across the classes, so sharing one position would skip real
// candidates). Its zero value starts at the beginning. It is safe for
// concurrent use.
type Cursor struct {
	mu    sync.Mutex
	after [2]int64
}

func class(ctx context.Context) int {
	if shadow.Is(ctx) {
		return 1
	}
	return 0
}

// After is the id the next page of ctx's class starts after: 0 at the
// start of a pass.
func (c *Cursor) After(ctx context.Context) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.after[class(ctx)]
}

// Read records a page of ctx's class of ids read in ascending order with
// the given limit: a full page moves the cursor past its last id, a short
// one (the end of the candidates) ends the pass.
func (c *Cursor) Read(ctx context.Context, ids []int64, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ids) < limit || len(ids) == 0 {
		c.after[class(ctx)] = 0
		return
	}
	c.after[class(ctx)] = ids[len(ids)-1]
}
