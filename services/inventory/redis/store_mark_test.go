package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// MustMark marks orders of act and fails the test on an error.
func MustMark(tb testing.TB, s *invredis.Store, act int64, orders ...int64) []inventory.MarkOutcome {
	tb.Helper()
	refs := make([]inventory.OrderRef, len(orders))
	for i, o := range orders {
		refs[i] = inventory.OrderRef{ActivityID: act, OrderID: o}
	}
	got, err := s.MarkOrdered(context.Background(), refs)
	if err != nil {
		tb.Fatalf("mark %v of activity %d: %v", orders, act, err)
	}
	return got
}

// MustRelease releases order of act, as unpublished or not, and fails the
// test on an error.
func MustRelease(tb testing.TB, s *invredis.Store, act, order int64, unpublished bool) {
	tb.Helper()
	release := s.Release
	if unpublished {
		release = s.ReleaseUnpublished
	}
	if _, err := release(context.Background(), act, order); err != nil {
		tb.Fatalf("release order %d of activity %d (unpublished %v): %v", order, act, unpublished, err)
	}
}

// MustConfirm confirms order of act.
func MustConfirm(tb testing.TB, s *invredis.Store, act, order int64) {
	tb.Helper()
	if err := s.Confirm(context.Background(), act, order); err != nil {
		tb.Fatalf("confirm order %d of activity %d: %v", order, act, err)
	}
}

func TestReleaseUnpublishedAndTheOrderedMark(t *testing.T) {
	// Every case reserves 2 of 5 units for order 1 unless setup says
	// otherwise, then releases order 1 (as unpublished or not).
	type want struct {
		released    bool
		err         error
		unchanged   bool // nothing in Redis changes
		stock       int64
		status      inventory.Status
		ordered     bool
		unpublished bool
	}
	reserve := func(t *testing.T, s *invredis.Store, act int64) { MustReserve(t, s, request(act, 1, 2, 1, "k")) }
	tests := []struct {
		name        string
		setup       func(t *testing.T, s *invredis.Store, act int64)
		unpublished bool
		want        want
	}{
		{
			name: "unpublished release of an unmarked reservation releases and records it", unpublished: true,
			setup: reserve,
			want:  want{released: true, stock: 5, status: inventory.StatusReleased, unpublished: true},
		},
		{
			name: "unpublished release is refused once the reservation is marked ordered", unpublished: true,
			setup: func(t *testing.T, s *invredis.Store, act int64) { reserve(t, s, act); MustMark(t, s, act, 1) },
			want:  want{err: inventory.ErrAlreadyOrdered, unchanged: true, stock: 3, status: inventory.StatusReserved, ordered: true},
		},
		{
			name: "unpublished release is refused for a marked order released by expiry since", unpublished: true,
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				reserve(t, s, act)
				MustMark(t, s, act, 1)
				MustRelease(t, s, act, 1, false)
			},
			want: want{err: inventory.ErrAlreadyOrdered, unchanged: true, stock: 5, status: inventory.StatusReleased, ordered: true},
		},
		{
			name: "unpublished release of a marked and paid order is refused as ordered", unpublished: true,
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				reserve(t, s, act)
				MustMark(t, s, act, 1)
				MustConfirm(t, s, act, 1)
			},
			want: want{err: inventory.ErrAlreadyOrdered, unchanged: true, stock: 3, status: inventory.StatusConfirmed, ordered: true},
		},
		{
			name: "unpublished release twice releases once", unpublished: true,
			setup: func(t *testing.T, s *invredis.Store, act int64) { reserve(t, s, act); MustRelease(t, s, act, 1, true) },
			want:  want{unchanged: true, stock: 5, status: inventory.StatusReleased, unpublished: true},
		},
		{
			// The caller tells its buyer the order failed, so a late
			// delivery of its event must be dropped, whoever released.
			name: "unpublished release after a plain one records it and moves no stock", unpublished: true,
			setup: func(t *testing.T, s *invredis.Store, act int64) { reserve(t, s, act); MustRelease(t, s, act, 1, false) },
			want:  want{stock: 5, status: inventory.StatusReleased, unpublished: true},
		},
		{
			name:  "plain release ignores the ordered mark",
			setup: func(t *testing.T, s *invredis.Store, act int64) { reserve(t, s, act); MustMark(t, s, act, 1) },
			want:  want{released: true, stock: 5, status: inventory.StatusReleased, ordered: true},
		},
		{
			name:  "plain release after an unpublished one changes nothing",
			setup: func(t *testing.T, s *invredis.Store, act int64) { reserve(t, s, act); MustRelease(t, s, act, 1, true) },
			want:  want{unchanged: true, stock: 5, status: inventory.StatusReleased, unpublished: true},
		},
	}
	s, rdb := MustStore(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := MustPreheat(t, s, 5, 2)
			tt.setup(t, s, act)
			before := snapshot(t, rdb, act)
			release := s.Release
			if tt.unpublished {
				release = s.ReleaseUnpublished
			}
			released, err := release(ctx, act, 1)
			if !errors.Is(err, tt.want.err) || (tt.want.err == nil && err != nil) {
				t.Fatalf("err: got %v, want %v", err, tt.want.err)
			}
			if released != tt.want.released {
				t.Errorf("released: got %v, want %v", released, tt.want.released)
			}
			if after := snapshot(t, rdb, act); (after == before) != tt.want.unchanged {
				t.Errorf("state changed: got %v, want %v\nbefore:\n%s\nafter:\n%s", after != before, !tt.want.unchanged, before, after)
			}
			if got := MustStock(t, s, act); got != tt.want.stock {
				t.Errorf("stock: got %d, want %d", got, tt.want.stock)
			}
			if tt.want.status == "" {
				return
			}
			r, err := s.Reservation(ctx, act, 1)
			if err != nil {
				t.Fatal(err)
			}
			got := want{released: tt.want.released, err: tt.want.err, unchanged: tt.want.unchanged, stock: tt.want.stock,
				status: r.Status, ordered: r.Ordered, unpublished: r.Unpublished}
			if got != tt.want {
				t.Errorf("reservation: got status %s ordered %v unpublished %v, want %s %v %v",
					r.Status, r.Ordered, r.Unpublished, tt.want.status, tt.want.ordered, tt.want.unpublished)
			}
		})
	}
}

func TestMarkOrderedOutcomes(t *testing.T) {
	reserve := func(t *testing.T, s *invredis.Store, act int64) { MustReserve(t, s, request(act, 1, 2, 1, "k")) }
	tests := []struct {
		name        string
		setup       func(t *testing.T, s *invredis.Store, act int64)
		want        inventory.MarkOutcome
		wantOrdered bool
		unchanged   bool // nothing in Redis changes
	}{
		{"a reservation is marked", reserve, inventory.MarkMarked, true, false},
		{"marking twice is harmless", func(t *testing.T, s *invredis.Store, act int64) {
			reserve(t, s, act)
			MustMark(t, s, act, 1)
		}, inventory.MarkMarked, true, true},
		{"a paid reservation is marked", func(t *testing.T, s *invredis.Store, act int64) {
			reserve(t, s, act)
			MustConfirm(t, s, act, 1)
		}, inventory.MarkMarked, true, false},
		{"released as unpublished: drop", func(t *testing.T, s *invredis.Store, act int64) {
			reserve(t, s, act)
			MustRelease(t, s, act, 1, true)
		}, inventory.MarkDrop, false, true},
		{"released plainly: still stored", func(t *testing.T, s *invredis.Store, act int64) {
			reserve(t, s, act)
			MustRelease(t, s, act, 1, false)
		}, inventory.MarkMarked, true, false},
		{"no reservation", func(*testing.T, *invredis.Store, int64) {}, inventory.MarkNotFound, false, true},
	}
	s, rdb := MustStore(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := MustPreheat(t, s, 5, 2)
			tt.setup(t, s, act)
			stock := MustStock(t, s, act)
			before := snapshot(t, rdb, act)
			if got := MustMark(t, s, act, 1); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("outcome: got %v, want [%s]", got, tt.want)
			}
			if after := snapshot(t, rdb, act); (after == before) != tt.unchanged {
				t.Errorf("state changed: got %v, want %v\nbefore:\n%s\nafter:\n%s", after != before, !tt.unchanged, before, after)
			}
			if got := MustStock(t, s, act); got != stock {
				t.Errorf("stock: got %d, want %d (marking never moves stock)", got, stock)
			}
			if tt.want == inventory.MarkNotFound {
				return
			}
			r, err := s.Reservation(ctx, act, 1)
			if err != nil || r.Ordered != tt.wantOrdered {
				t.Errorf("ordered: got %v (%v), want %v", r.Ordered, err, tt.wantOrdered)
			}
		})
	}
}

func TestMarkOrderedBatchMixesOutcomesInOneCall(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	a, b := MustPreheat(t, s, 10, 5), MustPreheat(t, s, 10, 5)
	MustReserve(t, s, request(a, 1, 1, 1, "reserved"))
	MustReserve(t, s, request(a, 2, 1, 2, "paid"))
	MustConfirm(t, s, a, 2)
	MustReserve(t, s, request(b, 3, 1, 3, "unpublished"))
	MustRelease(t, s, b, 3, true)
	MustReserve(t, s, request(b, 4, 1, 4, "expired"))
	MustRelease(t, s, b, 4, false)
	MustReserve(t, s, request(b, 5, 1, 5, "marked"))
	MustMark(t, s, b, 5)

	refs := []inventory.OrderRef{
		{ActivityID: a, OrderID: 1}, {ActivityID: a, OrderID: 2}, {ActivityID: b, OrderID: 3},
		{ActivityID: b, OrderID: 4}, {ActivityID: b, OrderID: 5}, {ActivityID: a, OrderID: 99},
		{ActivityID: b, OrderID: 1}, // order 1 is in a, not in b
		{ActivityID: a, OrderID: 1}, // twice in one batch
	}
	want := []inventory.MarkOutcome{
		inventory.MarkMarked, inventory.MarkMarked, inventory.MarkDrop,
		inventory.MarkMarked, inventory.MarkMarked, inventory.MarkNotFound,
		inventory.MarkNotFound,
		inventory.MarkMarked,
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.MarkOrdered(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes: got %v, want %v", got, want)
	}
	stats := rdb.Info(ctx, "commandstats").Val()
	if !strings.Contains(stats, fmt.Sprintf("cmdstat_evalsha:calls=%d,", len(refs))) || strings.Contains(stats, "cmdstat_eval:") {
		t.Errorf("want one EVALSHA per order and no EVAL, commandstats:\n%s", stats)
	}
	if sa, sb := MustStock(t, s, a), MustStock(t, s, b); sa != 8 || sb != 9 {
		t.Errorf("stock: got %d and %d, want 8 and 9 (marking never moves stock)", sa, sb)
	}
}

func TestMarkOrderedLoadsAFlushedScript(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 5)
	MustReserve(t, s, request(act, 1, 1, 1, "k"))
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if got := MustMark(t, s, act, 1, 2); fmt.Sprint(got) != fmt.Sprint([]inventory.MarkOutcome{inventory.MarkMarked, inventory.MarkNotFound}) {
		t.Fatalf("outcomes after SCRIPT FLUSH: got %v, want [MARKED NOT_FOUND]", got)
	}
}

func TestMarkOrderedRacesUnpublishedReleasesWithOneWinnerEach(t *testing.T) {
	const orders = 400
	s, _ := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, orders, 1)
	for o := int64(1); o <= orders; o++ {
		MustReserve(t, s, request(act, o, 1, o, "k"))
	}

	// For every order, the consumer marks it (in batches of ten) while the
	// placing service releases it as unpublished, all at once.
	released := make([]bool, orders+1)
	releaseErr := make([]error, orders+1)
	marked := make([]inventory.MarkOutcome, orders+1)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for o := int64(1); o <= orders; o++ {
		wg.Go(func() {
			<-start
			released[o], releaseErr[o] = s.ReleaseUnpublished(ctx, act, o)
		})
	}
	for first := int64(1); first <= orders; first += 10 {
		wg.Go(func() {
			<-start
			refs := make([]inventory.OrderRef, 10)
			for i := range refs {
				refs[i] = inventory.OrderRef{ActivityID: act, OrderID: first + int64(i)}
			}
			got, err := s.MarkOrdered(ctx, refs)
			if err != nil {
				t.Error(err)
				return
			}
			copy(marked[first:], got)
		})
	}
	close(start)
	wg.Wait()

	var stored int64
	for o := 1; o <= orders; o++ {
		switch {
		case marked[o] == inventory.MarkMarked && errors.Is(releaseErr[o], inventory.ErrAlreadyOrdered) && !released[o]:
			stored++
		case marked[o] == inventory.MarkDrop && releaseErr[o] == nil && released[o]:
		default:
			t.Fatalf("order %d: marked %s, release %v (%v); want MARKED and refused, or released and DROP", o, marked[o], released[o], releaseErr[o])
		}
	}
	if got := MustStock(t, s, act); got != orders-stored {
		t.Fatalf("stock: got %d, want %d (%d orders stored, the rest released once)", got, orders-stored, stored)
	}
}
