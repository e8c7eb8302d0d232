package sweep_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/shadow"
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
	ctx := context.Background()
	var c sweep.Cursor[int64]
	var seen []int64
	for range 3 {
		p := page(ids, c.After(ctx), 3)
		seen = append(seen, p...)
		c.Read(ctx, p, 3)
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("one pass of pages of 3 saw %v, want every candidate %v", seen, ids)
	}
	if c.After(ctx) != 0 {
		t.Errorf("after the short last page the cursor is at %d, want the start", c.After(ctx))
	}
	c.Read(ctx, page(ids, 0, 7), 7)
	if c.After(ctx) != 55 {
		t.Errorf("a full page leaves the cursor at %d, want its last id 55", c.After(ctx))
	}
	c.Read(ctx, nil, 7)
	if c.After(ctx) != 0 {
		t.Errorf("an empty page leaves the cursor at %d, want the start", c.After(ctx))
	}
}

// A marked (pressure-test) pass has a position of its own: its pages do
// not move the real pass, nor the real pages it.
func TestCursorKeepsAPositionPerTrafficClass(t *testing.T) {
	ctx := context.Background()
	marked := shadow.With(ctx)
	var c sweep.Cursor[int64]
	c.Read(ctx, []int64{3, 5, 8}, 3)
	c.Read(marked, []int64{100, 200, 300}, 3)
	if got := c.After(ctx); got != 8 {
		t.Fatalf("the real pass is at %d after a marked page, want 8", got)
	}
	if got := c.After(marked); got != 300 {
		t.Fatalf("the marked pass is at %d, want 300", got)
	}
	c.Read(ctx, nil, 3)
	if c.After(ctx) != 0 || c.After(marked) != 300 {
		t.Fatalf("ending the real pass moved the marked one: %d %d", c.After(ctx), c.After(marked))
	}
}

// A Mark never starts again from the beginning: a short page leaves it
// where its last finished candidate put it, it never moves back, and
// each class has its own.
func TestMarkMovesOnlyPastWhatWasDone(t *testing.T) {
	ctx := context.Background()
	marked := shadow.With(ctx)
	var m sweep.Mark
	if got := m.After(ctx); got != (sweep.TimeKey{}) {
		t.Fatalf("a new mark stands at %+v, want the zero key", got)
	}
	at := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	keys := []sweep.TimeKey{{At: at, ID: 3}, {At: at, ID: 5}, {At: at.Add(time.Millisecond), ID: 2}}
	for _, k := range keys { // a short page
		m.Done(ctx, k)
	}
	if got := m.After(ctx); got != keys[2] {
		t.Fatalf("after a short page the mark stands at %+v, want %+v (no new pass)", got, keys[2])
	}
	m.Done(ctx, keys[0]) // a late finisher of an older page
	if got := m.After(ctx); got != keys[2] {
		t.Fatalf("a late Done moved the mark back to %+v", got)
	}
	if got := m.After(marked); got != (sweep.TimeKey{}) {
		t.Fatalf("the marked class stands at %+v, want the zero key: the real pages did not move it", got)
	}
}

func TestAgedQuery(t *testing.T) {
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	for _, bad := range []sweep.AgedQuery{
		{OlderThan: 0, Limit: 10},
		{OlderThan: time.Second - 1, Limit: 10},
		{OlderThan: time.Hour, YoungerThan: time.Hour, Limit: 10},
		{OlderThan: time.Hour, Limit: 0},
		{OlderThan: time.Hour, Limit: 101},
		{OlderThan: time.Hour, After: sweep.TimeKey{ID: -1}, Limit: 10},
	} {
		if err := bad.Validate(time.Second, 100); !errors.Is(err, sweep.ErrAgedQuery) {
			t.Errorf("Validate(%+v) = %v, want ErrAgedQuery", bad, err)
		}
	}
	inside := sweep.TimeKey{At: now.Add(-90 * time.Minute), ID: 7}
	for _, tt := range []struct {
		name string
		q    sweep.AgedQuery
		want sweep.TimeKey
	}{
		{"no window: the mark", sweep.AgedQuery{OlderThan: time.Minute, After: inside}, inside},
		{"the mark inside the window", sweep.AgedQuery{OlderThan: time.Minute, YoungerThan: 2 * time.Hour, After: inside}, inside},
		{"the mark before the window: its start, before every id", sweep.AgedQuery{OlderThan: time.Minute, YoungerThan: time.Hour, After: inside},
			sweep.TimeKey{At: now.Add(-time.Hour)}},
	} {
		before, after := tt.q.Bounds(now)
		if !before.Equal(now.Add(-time.Minute)) || after != tt.want {
			t.Errorf("%s: Bounds = %v, %+v; want %v, %+v", tt.name, before, after, now.Add(-time.Minute), tt.want)
		}
	}
}
