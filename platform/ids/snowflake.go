// Package ids makes time-ordered 63-bit ids (the snowflake layout), so that
// order ids sort by creation time, fit a Postgres bigint and need no
// coordination beyond a distinct replica number per process of a service.
//
// The node field is split into the issuing service's id space and the
// replica, so ids of different services never collide even where they
// meet in one table (the payment ledger keeps its own refund ids and the
// order service's side by side).
package ids

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// Layout: 41 bits of milliseconds since Epoch, 10 bits of node (3 of id
// space, 7 of replica), 12 bits of sequence within the millisecond (4096
// ids per millisecond per node).
const (
	nodeBits    = 10
	replicaBits = 7
	seqBits     = 12
	maxSeq      = 1<<seqBits - 1
	// MaxReplica is the largest replica number of one service.
	MaxReplica = 1<<replicaBits - 1
)

// Space is the id space of the service that issues ids.
type Space int64

// The id spaces. Each service that issues ids has its own.
const (
	SpaceProduct Space = iota + 1
	SpaceOrder
	SpacePayment
	SpaceMarketing
	maxSpace = 1<<(nodeBits-replicaBits) - 1
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

// NewGenerator returns a generator for a replica (0..MaxReplica) of the
// service issuing ids in space.
func NewGenerator(space Space, replica int64, c clock.Clock) (*Generator, error) {
	if space < 1 || space > maxSpace {
		return nil, fmt.Errorf("ids: id space %d out of range 1..%d", space, maxSpace)
	}
	if replica < 0 || replica > MaxReplica {
		return nil, fmt.Errorf("ids: replica %d out of range 0..%d", replica, MaxReplica)
	}
	if c == nil {
		return nil, errors.New("ids: nil clock")
	}
	return &Generator{clock: c, node: int64(space)<<replicaBits | replica}, nil
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
