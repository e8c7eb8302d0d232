package redis_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/services/inventory"
)

// key names one of an activity's keys.
func key(activity int64, name string) string {
	return "{act:" + strconv.FormatInt(activity, 10) + "}:" + name
}

// A rebuild turns a sale whose Redis state lost writes into exactly what
// its stored orders say, and unfences it; a second rebuild changes
// nothing.
func TestRebuildWritesExactlyTheTruth(t *testing.T) {
	ctx := context.Background()
	s, rdb := MustStore(t)
	act := MustPreheat(t, s, 10, 3)
	d1, d3 := deadline(), deadline().Add(time.Second)
	MustReserve(t, s, request(act, 1, 2, 1, "k1"))
	MustReserve(t, s, request(act, 2, 1, 2, "k2"))
	if err := s.Confirm(ctx, act, 2); err != nil {
		t.Fatal(err)
	}
	r3 := request(act, 3, 1, 3, "k3")
	r3.ExpiresAt = d3
	MustReserve(t, s, r3)
	MustReserve(t, s, request(act, 9, 1, 9, "k9")) // never stored: its publish failed
	// What a restart from an AOF that missed the last second leaves:
	// order 3's reservation, entry and count gone, its decrement too,
	// order 9's decrement gone (its record is left).
	must(t, rdb.Del(ctx, key(act, "live"), key(act, "res:3")).Err())
	must(t, rdb.ZRem(ctx, key(act, "expiry"), "3").Err())
	must(t, rdb.HDel(ctx, key(act, "bought"), "3").Err())
	must(t, rdb.IncrBy(ctx, key(act, "stock"), 2).Err())

	if _, err := s.Reserve(ctx, request(act, 5, 1, 50, "k50")); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("reserve in a fenced sale: %v, want ErrFenced", err)
	}
	if fenced, err := s.Fenced(ctx); err != nil || !slices.Contains(fenced, act) {
		t.Fatalf("fenced: %v, %v; want %d among them", fenced, err, act)
	}

	truth := inventory.Rebuild{ActivityID: act, Total: 10, PerUserLimit: 3, Orders: []inventory.HeldOrder{
		{OrderID: 1, UserID: 1, Quantity: 2, Status: inventory.StatusReserved, IdempotencyKey: "k1", ExpiresAt: d1},
		{OrderID: 2, UserID: 2, Quantity: 1, Status: inventory.StatusConfirmed, IdempotencyKey: "k2", ExpiresAt: d1},
		{OrderID: 3, UserID: 3, Quantity: 1, Status: inventory.StatusReserved, IdempotencyKey: "k3", ExpiresAt: d3},
		// Expired in Postgres; the release was lost along with the order.
		{OrderID: 4, UserID: 1, Quantity: 1, Status: inventory.StatusReleased, IdempotencyKey: "k4", ExpiresAt: d1},
		// Paid and fully refunded: its unit stays sold, its limit is back.
		{OrderID: 5, UserID: 4, Quantity: 2, Status: inventory.StatusConfirmed, IdempotencyKey: "k5", ExpiresAt: d1, Restored: 2},
	}}
	got, err := s.RebuildStock(ctx, truth)
	if err != nil {
		t.Fatal(err)
	}
	want := inventory.RebuildResult{Rebuilt: true, StockBefore: 10 - 5 + 2, Stock: 10 - 6,
		Reservations: 3, UserCounts: 2, ExpiryEntries: 2} // users 3 (lost) and 9 (no order); entries 3 (lost) and 9
	if got != want {
		t.Fatalf("rebuild: got %+v, want %+v", got, want)
	}

	if v := rdb.Get(ctx, key(act, "stock")).Val(); v != "4" {
		t.Errorf("stock %q, want 4", v)
	}
	if v := rdb.HGetAll(ctx, key(act, "meta")).Val(); v["total"] != "10" || v["limit"] != "3" {
		t.Errorf("meta %v, want total 10 limit 3", v)
	}
	if v := rdb.HGetAll(ctx, key(act, "bought")).Val(); !maps.Equal(v, map[string]string{"1": "2", "2": "1", "3": "1"}) {
		t.Errorf("bought %v, want users 1:2 2:1 3:1 (4 refunded, 9 not stored)", v)
	}
	q := rdb.ZRangeWithScores(ctx, key(act, "expiry"), 0, -1).Val()
	wantQ := []goredis.Z{{Score: float64(d1.UnixMilli()), Member: "1"}, {Score: float64(d3.UnixMilli()), Member: "3"}}
	if !slices.Equal(q, wantQ) {
		t.Errorf("expiry %v, want %v", q, wantQ)
	}
	if n := rdb.Exists(ctx, key(act, "claimed")).Val(); n != 0 {
		t.Errorf("claimed set left behind")
	}
	for _, o := range truth.Orders {
		r, err := s.Reservation(ctx, act, o.OrderID)
		if err != nil {
			t.Fatalf("reservation %d: %v", o.OrderID, err)
		}
		if r.UserID != o.UserID || r.Quantity != o.Quantity || r.Status != o.Status || r.IdempotencyKey != o.IdempotencyKey ||
			!r.ExpiresAt.Equal(o.ExpiresAt) || !r.Ordered || r.Unpublished {
			t.Errorf("reservation %d: %+v, want %+v marked ordered", o.OrderID, r, o)
		}
		if v := rdb.HGet(ctx, key(act, "idem"), strconv.FormatInt(o.UserID, 10)+":"+o.IdempotencyKey).Val(); v != strconv.FormatInt(o.OrderID, 10) {
			t.Errorf("idempotency key of order %d names %q", o.OrderID, v)
		}
	}
	if v := rdb.HGet(ctx, key(act, "res:5"), "restored").Val(); v != "2" {
		t.Errorf("order 5 restored %q, want 2", v)
	}

	if again, err := s.RebuildStock(ctx, truth); err != nil || again.Rebuilt {
		t.Fatalf("second rebuild: %+v, %v; want a live sale left alone", again, err)
	}
	if fenced, err := s.Fenced(ctx); err != nil || slices.Contains(fenced, act) {
		t.Fatalf("fenced after rebuild: %v, %v", fenced, err)
	}
	// Sells again, from the rebuilt counts: user 1 holds 2 of 3, user 4's
	// refund gave its limit back.
	if _, err := s.Reserve(ctx, request(act, 1, 2, 60, "k60")); !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Fatalf("user 1 buying 2 more: %v, want ErrLimitExceeded", err)
	}
	if res := MustReserve(t, s, request(act, 4, 3, 61, "k61")); res.Remaining != 1 {
		t.Fatalf("user 4 buying 3: remaining %d, want 1", res.Remaining)
	}
}

// The live mark names the server run that wrote it: a mark from another
// run (an AOF rewrite copied it, then Redis restarted) fences the sale
// at the next check, and preheating again does not unfence it.
func TestFenceCheckDropsAMarkOfAnotherRun(t *testing.T) {
	ctx := context.Background()
	s, rdb := MustStore(t)
	act := MustPreheat(t, s, 5, 1)
	must(t, rdb.Set(ctx, key(act, "live"), "0123456789abcdef0123456789abcdef01234567", 0).Err())
	if _, err := s.Reserve(ctx, request(act, 1, 1, 1, "k1")); err != nil {
		t.Fatalf("reserve before the check: %v", err) // the mark still exists
	}
	if fenced, err := s.Fenced(ctx); err != nil || !slices.Contains(fenced, act) {
		t.Fatalf("fenced: %v, %v; want %d among them", fenced, err, act)
	}
	if _, err := s.Preheat(ctx, act, 5, 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, request(act, 2, 1, 2, "k2")); !errors.Is(err, inventory.ErrFenced) {
		t.Fatalf("reserve after the check and a preheat: %v, want ErrFenced", err)
	}
}

// In a fenced sale a missing reservation may be a lost write, so the
// consumer is told to store the order (the rebuild counts it); in a live
// sale it means no order.
func TestMarkOrderedTrustsTheLogInAFencedSale(t *testing.T) {
	ctx := context.Background()
	s, rdb := MustStore(t)
	act := MustPreheat(t, s, 5, 1)
	ref := []inventory.OrderRef{{ActivityID: act, OrderID: 77}}
	if got, err := s.MarkOrdered(ctx, ref); err != nil || got[0] != inventory.MarkNotFound {
		t.Fatalf("live sale: %v, %v; want NOT_FOUND", got, err)
	}
	must(t, rdb.Del(ctx, key(act, "live")).Err())
	if got, err := s.MarkOrdered(ctx, ref); err != nil || got[0] != inventory.MarkMarked {
		t.Fatalf("fenced sale: %v, %v; want MARKED", got, err)
	}
	if n := rdb.Exists(ctx, key(act, "res:77")).Val(); n != 0 {
		t.Fatal("marking wrote a partial reservation")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
