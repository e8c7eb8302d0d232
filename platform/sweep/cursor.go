// Package sweep holds what the platform's background sweeps share.
//
// A sweep (refunds left pending, ended orders whose stock is not given
// back, payments stuck at a channel) reads its candidates a page at a
// time. Reading "the oldest page" every round starves: when the page's
// rows keep failing (a channel that refuses one trade, a SKU the catalogue
// lost), the same page comes back every round and the rows behind it are
// never tried. A Cursor walks the candidates in id order instead, one page
// per round, and starts again from the beginning after a short page, so
// every candidate is tried once per pass however many fail.
package sweep

import "sync"

// Cursor is where a sweep's pass stands. Its zero value starts at the
// beginning. It is safe for concurrent use.
type Cursor struct {
	mu    sync.Mutex
	after int64
}

// After is the id the next page starts after: 0 at the start of a pass.
func (c *Cursor) After() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.after
}

// Read records a page of ids read in ascending order with the given limit:
// a full page moves the cursor past its last id, a short one (the end of
// the candidates) ends the pass.
func (c *Cursor) Read(ids []int64, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ids) < limit || len(ids) == 0 {
		c.after = 0
		return
	}
	c.after = ids[len(ids)-1]
}
