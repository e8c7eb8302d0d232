// Package ids makes time-ordered 63-bit ids (the snowflake layout), so that
// order ids sort by creation time, fit a Postgres bigint and need no
// coordination beyond a distinct node number per process.
package ids

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// Layout: 41 bits of milliseconds since Epoch, 10 bits of node, 12 bits of
// sequence within the millisecond (4096 ids per millisecond per node).
const (
	nodeBits = 10
	seqBits  = 12
	maxNode  = 1<<nodeBits - 1
	maxSeq   = 1<<seqBits - 1
)

// Epoch is the zero of the id clock (2024-01-01 UTC), which gives the
// 41-bit millisecond field about 69 years.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Generator hands out ids for one node. It is safe for concurrent use.
type Generator struct {
	mu    sync.Mutex
	clock clock.Clock
	node  int64
	last  int64 // milliseconds since Epoch of the last id
	seq   int64
}

// NewGenerator returns a generator for node (0..1023).
func NewGenerator(node int64, c clock.Clock) (*Generator, error) {
	if node < 0 || node > maxNode {
		return nil, fmt.Errorf("ids: node %d out of range 0..%d", node, maxNode)
	}
	if c == nil {
		return nil, errors.New("ids: nil clock")
	}
	return &Generator{clock: c, node: node}, nil
}

// Next returns a new id, larger than every id this generator returned
// before. If the clock steps backwards, ids keep counting from the last
// millisecond seen rather than repeating.
func (g *Generator) Next() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.clock.Now().Sub(Epoch).Milliseconds()
	if ms < g.last {
		ms = g.last
	}
	if ms == g.last {
		g.seq++
		if g.seq > maxSeq {
			// The sequence is spent for this millisecond: borrow the
			// next one. A later real millisecond catches up.
			ms++
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.last = ms
	return ms<<(nodeBits+seqBits) | g.node<<seqBits | g.seq
}
