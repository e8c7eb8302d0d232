package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
)

// Filter is a Bloom filter (布隆过滤器) of the ids that exist, in front of
// the read of an id from the database: an id it has never been told of
// surely does not exist, so the read is answered "not found" without
// asking the database (缓存穿透: a scan of made-up ids costs nothing); an
// id it was told of, or a rare false positive (FalsePositiveRate), goes on
// to the read.
//
// Until its first Rebuild it passes every id. Rebuild loads every id
// from the database into a new filter, sized for twice as many, and
// swaps it in; ids added meanwhile are kept. Add must be called for
// every id created, on every replica, before anyone can read it
// (Invalidations carries a replica's creates to the others).
type Filter struct {
	mu    sync.RWMutex
	bloom *bloom.BloomFilter // nil until the first Rebuild
	added uint64
	// during is non-nil while a Rebuild runs: the ids added meanwhile,
	// for the new filter.
	during []int64

	passed, rejected atomic.Int64
}

// FalsePositiveRate is the share of ids that do not exist which a Filter
// lets through to the database.
const FalsePositiveRate = 0.001

// minFilterIDs is the least a Filter is sized for, so that the creates
// between two rebuilds keep the false-positive rate.
const minFilterIDs = 1 << 16

// NewFilter returns a Filter that passes every id until its first
// Rebuild.
func NewFilter() *Filter { return &Filter{} }

func key(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// MayExist says whether id may exist: false means it surely does not.
func (f *Filter) MayExist(id int64) bool {
	f.mu.RLock()
	ok := f.bloom == nil || f.bloom.Test(key(id))
	f.mu.RUnlock()
	if ok {
		f.passed.Add(1)
	} else {
		f.rejected.Add(1)
	}
	return ok
}

// Add records that id exists.
func (f *Filter) Add(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.during != nil {
		f.during = append(f.during, id)
	}
	if f.bloom != nil {
		f.bloom.Add(key(id))
		f.added++
	}
}

// Rebuild replaces the filter with one of the ids all returns (every id
// that exists) and those added while it ran.
func (f *Filter) Rebuild(ctx context.Context, all func(context.Context) ([]int64, error)) error {
	f.mu.Lock()
	if f.during != nil {
		f.mu.Unlock()
		return fmt.Errorf("bloom filter: a rebuild is already running")
	}
	f.during = []int64{}
	f.mu.Unlock()
	ids, err := all(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	during := f.during
	f.during = nil
	if err != nil {
		return fmt.Errorf("bloom filter: %w", err)
	}
	ids = append(ids, during...)
	b := bloom.NewWithEstimates(uint(max(2*len(ids), minFilterIDs)), FalsePositiveRate)
	for _, id := range ids {
		b.Add(key(id))
	}
	f.bloom, f.added = b, uint64(len(ids))
	return nil
}

// Stats returns f's counts: Hits (ids that may exist, passed on),
// Negative (ids that surely do not, answered without a read) and Entries
// (ids added since the last rebuild, with those it loaded).
func (f *Filter) Stats() Stats {
	f.mu.RLock()
	n := f.added
	f.mu.RUnlock()
	return Stats{Level: Bloom, Hits: f.passed.Load(), Negative: f.rejected.Load(), Entries: int(n)}
}
