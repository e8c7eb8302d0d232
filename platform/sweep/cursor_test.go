package sweep_test

import (
	"slices"
	"testing"

	"github.com/flashsale/flashsale/platform/sweep"
)

// page is a sweep's query over candidate ids: those after after, in
// order, at most limit.
func page(ids []int64, after int64, limit int) []int64 {
	var out []int64
	for _, id := range ids {
		if id > after && len(out) < limit {
			out = append(out, id)
		}
	}
	return out
}

// TestCursorReachesEveryCandidate: rows that never leave the candidates
// (their work keeps failing) do not hide the rows behind them; a pass
// visits each once and the next pass starts again.
func TestCursorReachesEveryCandidate(t *testing.T) {
	ids := []int64{3, 5, 8, 13, 21, 34, 55}
	var c sweep.Cursor
	var seen []int64
	for range 3 {
		p := page(ids, c.After(), 3)
		seen = append(seen, p...)
		c.Read(p, 3)
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("one pass of pages of 3 saw %v, want every candidate %v", seen, ids)
	}
	if c.After() != 0 {
		t.Errorf("after the short last page the cursor is at %d, want the start", c.After())
	}
	c.Read(page(ids, 0, 7), 7)
	if c.After() != 55 {
		t.Errorf("a full page leaves the cursor at %d, want its last id 55", c.After())
	}
	c.Read(nil, 7)
	if c.After() != 0 {
		t.Errorf("an empty page leaves the cursor at %d, want the start", c.After())
	}
}
