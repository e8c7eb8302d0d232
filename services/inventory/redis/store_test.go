package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{RedisCluster: true}, func(s *localstack.Stack) { stack = s })
}

// nextActivity hands every test its own activity id, so tests share the
// Redis server without sharing keys.
var nextActivity atomic.Int64

func newActivityID() int64 { return 1000 + nextActivity.Add(1) }

// deadlineClock is the callers' clock: deadlines come from it, never from
// Redis.
var deadlineClock = clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))

func deadline() time.Time { return deadlineClock.Now().Add(15 * time.Minute) }

// MustStore returns a store and a raw client on the test Redis.
func MustStore(tb testing.TB) (*invredis.Store, *goredis.Client) {
	tb.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr, PoolSize: 64})
	tb.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redis: %v", err)
	}
	return invredis.NewStore(rdb), rdb
}

// MustPreheat preheats a fresh activity and returns its id.
func MustPreheat(tb testing.TB, s *invredis.Store, stock, limit int64) int64 {
	tb.Helper()
	id := newActivityID()
	got, err := s.Preheat(context.Background(), id, stock, limit, 1)
	if err != nil || got != stock {
		tb.Fatalf("preheat %d: got %d, %v; want %d", id, got, err, stock)
	}
	return id
}

// MustReserve reserves and fails the test on any error.
func MustReserve(tb testing.TB, s *invredis.Store, r inventory.ReserveRequest) inventory.ReserveResult {
	tb.Helper()
	res, err := s.Reserve(context.Background(), r)
	if err != nil {
		tb.Fatalf("reserve %+v: %v", r, err)
	}
	return res
}

func request(activity, user, qty, order int64, key string) inventory.ReserveRequest {
	return inventory.ReserveRequest{
		ActivityID: activity, UserID: user, Quantity: qty, OrderID: order,
		IdempotencyKey: key, ExpiresAt: deadline(),
	}
}

// MustStock returns the remaining stock of an activity.
func MustStock(tb testing.TB, s *invredis.Store, activity int64) int64 {
	tb.Helper()
	st, err := s.Stock(context.Background(), activity)
	if err != nil {
		tb.Fatalf("stock of %d: %v", activity, err)
	}
	return st.Remaining
}

// reserveAtOnce sends every request from a goroutine of its own, all
// released together so they race, and returns the answers in the order
// of reqs. With batch > 0 the requests go in ReserveBatch calls of that
// many instead, each call from a goroutine of its own.
func reserveAtOnce(ctx context.Context, s *invredis.Store, reqs []inventory.ReserveRequest, batch int) ([]inventory.ReserveResult, []error) {
	results := make([]inventory.ReserveResult, len(reqs))
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	if batch == 0 {
		for i, r := range reqs {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Reserve(ctx, r)
			})
		}
	}
	for first := 0; batch > 0 && first < len(reqs); first += batch {
		last := min(first+batch, len(reqs))
		wg.Go(func() {
			<-start
			answers, err := s.ReserveBatch(ctx, reqs[first:last])
			for i := first; i < last; i++ {
				if err != nil {
					errs[i] = err
					continue
				}
				results[i], errs[i] = answers[i-first].Result, answers[i-first].Err
			}
		})
	}
	close(start)
	wg.Wait()
	return results, errs
}

// snapshot renders every key of an activity and its value, to show that an
// operation changed nothing.
func snapshot(tb testing.TB, rdb *goredis.Client, activity int64) string {
	tb.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, fmt.Sprintf("{act:%d}*", activity)).Result()
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		var v any
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			v = rdb.Get(ctx, k).Val()
		case "hash":
			v = rdb.HGetAll(ctx, k).Val()
		case "zset":
			v = rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		default:
			tb.Fatalf("key %s has unexpected type %s", k, typ)
		}
		fmt.Fprintf(&b, "%s=%v\n", k, v)
	}
	return b.String()
}

func TestPreheatTwiceKeepsSoldStock(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 5)
	MustReserve(t, s, request(act, 1, 3, 1, "k"))

	remaining, err := s.Preheat(ctx, act, 50, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if remaining != 7 {
		t.Errorf("remaining after second preheat: got %d, want 7", remaining)
	}
	st, err := s.Stock(ctx, act)
	if err != nil {
		t.Fatal(err)
	}
	if want := (inventory.Stock{Remaining: 7, Total: 10}); st != want {
		t.Errorf("stock: got %+v, want %+v", st, want)
	}
	// The limit is the one setting a second preheat changes: user 2 may
	// now buy 2, not 3.
	if _, err := s.Reserve(ctx, request(act, 2, 3, 2, "k")); !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Errorf("reserve 3 under the new limit 2: got %v, want ErrLimitExceeded", err)
	}
	isMember, err := rdb.SIsMember(ctx, invredis.ActivitiesKey, act).Result()
	if err != nil || !isMember {
		t.Errorf("activity %d in %s: got %v (%v), want true", act, invredis.ActivitiesKey, isMember, err)
	}
}

func TestReserveRules(t *testing.T) {
	type want struct {
		err       error
		orderID   int64
		replayed  bool
		remaining int64
	}
	tests := []struct {
		name         string
		stock, limit int64
		before       []inventory.ReserveRequest // reserved successfully first
		req          func(act int64) inventory.ReserveRequest
		want         want
		wantStock    int64
	}{
		{
			name: "decrements stock", stock: 10, limit: 5,
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 3, 100, "k") },
			want:      want{orderID: 100, remaining: 7},
			wantStock: 7,
		},
		{
			name: "takes the last units", stock: 3, limit: 5,
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 3, 100, "k") },
			want:      want{orderID: 100, remaining: 0},
			wantStock: 0,
		},
		{
			name: "sold out when stock is short", stock: 2, limit: 5,
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 3, 100, "k") },
			want:      want{err: inventory.ErrSoldOut, orderID: 100, remaining: 2},
			wantStock: 2,
		},
		{
			name: "sold out when stock is gone", stock: 1, limit: 5,
			before:    []inventory.ReserveRequest{request(0, 1, 1, 1, "a")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 2, 1, 100, "k") },
			want:      want{err: inventory.ErrSoldOut, orderID: 100, remaining: 0},
			wantStock: 0,
		},
		{
			name: "limit within one request", stock: 10, limit: 2,
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 3, 100, "k") },
			want:      want{err: inventory.ErrLimitExceeded, orderID: 100, remaining: 10},
			wantStock: 10,
		},
		{
			name: "limit across orders and keys of one user", stock: 10, limit: 2,
			before:    []inventory.ReserveRequest{request(0, 1, 1, 1, "a"), request(0, 1, 1, 2, "b")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 1, 100, "c") },
			want:      want{err: inventory.ErrLimitExceeded, orderID: 100, remaining: 8},
			wantStock: 8,
		},
		{
			name: "limit is per user", stock: 10, limit: 1,
			before:    []inventory.ReserveRequest{request(0, 1, 1, 1, "a")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 2, 1, 100, "a") },
			want:      want{orderID: 100, remaining: 8},
			wantStock: 8,
		},
		{
			name: "limit is checked before stock", stock: 1, limit: 1,
			before:    []inventory.ReserveRequest{request(0, 1, 1, 1, "a")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 1, 100, "b") },
			want:      want{err: inventory.ErrLimitExceeded, orderID: 100, remaining: 0},
			wantStock: 0,
		},
		{
			name: "same key replays the first order", stock: 10, limit: 5,
			before:    []inventory.ReserveRequest{request(0, 1, 2, 1, "k")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 2, 100, "k") },
			want:      want{orderID: 1, replayed: true, remaining: 8},
			wantStock: 8,
		},
		{
			name: "same key replays even once sold out and at the limit", stock: 1, limit: 1,
			before:    []inventory.ReserveRequest{request(0, 1, 1, 1, "k")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 1, 100, "k") },
			want:      want{orderID: 1, replayed: true, remaining: 0},
			wantStock: 0,
		},
		{
			name: "same key of another user is a new purchase", stock: 10, limit: 5,
			before:    []inventory.ReserveRequest{request(0, 1, 2, 1, "k")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 2, 2, 100, "k") },
			want:      want{orderID: 100, remaining: 6},
			wantStock: 6,
		},
		{
			name: "same order id twice reserves once", stock: 10, limit: 5,
			before:    []inventory.ReserveRequest{request(0, 1, 2, 100, "a")},
			req:       func(a int64) inventory.ReserveRequest { return request(a, 1, 2, 100, "b") },
			want:      want{orderID: 100, replayed: true, remaining: 8},
			wantStock: 8,
		},
	}
	s, _ := MustStore(t)
	ctx := context.Background()
	// Each case runs twice: one Reserve after another, and as one
	// ReserveBatch of the earlier requests and the one under test, which
	// must decide each exactly as the calls in that order would.
	modes := []struct {
		name string
		run  func(t *testing.T, before []inventory.ReserveRequest, req inventory.ReserveRequest) (inventory.ReserveResult, error)
	}{
		{"one by one", func(t *testing.T, before []inventory.ReserveRequest, req inventory.ReserveRequest) (inventory.ReserveResult, error) {
			for _, b := range before {
				MustReserve(t, s, b)
			}
			return s.Reserve(ctx, req)
		}},
		{"in one batch", func(t *testing.T, before []inventory.ReserveRequest, req inventory.ReserveRequest) (inventory.ReserveResult, error) {
			answers, err := s.ReserveBatch(ctx, append(before, req))
			if err != nil {
				t.Fatalf("batch: %v", err)
			}
			for i, a := range answers[:len(before)] {
				if a.Err != nil {
					t.Fatalf("earlier request %+v in the batch: %v", before[i], a.Err)
				}
			}
			last := answers[len(before)]
			return last.Result, last.Err
		}},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				act := MustPreheat(t, s, tt.stock, tt.limit)
				before := make([]inventory.ReserveRequest, len(tt.before))
				for i, b := range tt.before {
					b.ActivityID = act
					before[i] = b
				}
				res, err := mode.run(t, before, tt.req(act))
				got := want{err: err, orderID: res.OrderID, replayed: res.Replayed, remaining: res.Remaining}
				if !errors.Is(err, tt.want.err) || (tt.want.err == nil && err != nil) {
					t.Fatalf("err: got %v, want %v", err, tt.want.err)
				}
				got.err = tt.want.err
				if got != tt.want {
					t.Errorf("result: got %+v, want %+v", got, tt.want)
				}
				if stock := MustStock(t, s, act); stock != tt.wantStock {
					t.Errorf("stock: got %d, want %d", stock, tt.wantStock)
				}
			})
		}
	}
}

func TestReserveUnknownActivity(t *testing.T) {
	s, rdb := MustStore(t)
	act := newActivityID()
	_, err := s.Reserve(context.Background(), request(act, 1, 1, 1, "k"))
	if !errors.Is(err, inventory.ErrNotPreheated) {
		t.Fatalf("reserve in unknown activity: got %v, want ErrNotPreheated", err)
	}
	if snap := snapshot(t, rdb, act); snap != "" {
		t.Errorf("reserve in an unknown activity wrote keys:\n%s", snap)
	}
	if _, err := s.Stock(context.Background(), act); !errors.Is(err, inventory.ErrNotPreheated) {
		t.Errorf("stock of unknown activity: got %v, want ErrNotPreheated", err)
	}
}

func TestReserveWritesRecordAndExpiryEntry(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 5)
	// A snowflake-sized id must survive the script (Lua numbers are
	// doubles and would round it).
	const order = int64(7_394_482_190_554_112_001)
	req := request(act, 42, 2, order, "key-1")
	MustReserve(t, s, req)

	got, err := s.Reservation(ctx, act, order)
	if err != nil {
		t.Fatal(err)
	}
	want := inventory.Reservation{
		ActivityID: act, OrderID: order, UserID: 42, Quantity: 2,
		Status: inventory.StatusReserved, IdempotencyKey: "key-1", ExpiresAt: req.ExpiresAt,
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("expires at: got %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
	got.ExpiresAt = want.ExpiresAt
	if got != want {
		t.Errorf("reservation: got %+v, want %+v", got, want)
	}
	score, err := rdb.ZScore(ctx, invredis.ExpiryKey(act), strconv.FormatInt(order, 10)).Result()
	if err != nil {
		t.Fatalf("expiry entry: %v", err)
	}
	if int64(score) != req.ExpiresAt.UnixMilli() {
		t.Errorf("expiry score: got %d, want the caller's deadline %d", int64(score), req.ExpiresAt.UnixMilli())
	}
	if _, err := s.Reservation(ctx, act, order+1); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Errorf("unknown reservation: got %v, want ErrReservationNotFound", err)
	}
}

func TestReleaseRestoresStockAndLimit(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 5, 2)
	MustReserve(t, s, request(act, 1, 2, 1, "k"))

	released, err := s.Release(ctx, act, 1)
	if err != nil || !released {
		t.Fatalf("release: got %v, %v; want true", released, err)
	}
	if got := MustStock(t, s, act); got != 5 {
		t.Errorf("stock after release: got %d, want 5", got)
	}
	if n := rdb.ZCard(ctx, invredis.ExpiryKey(act)).Val(); n != 0 {
		t.Errorf("expiry entries after release: got %d, want 0", n)
	}
	r, err := s.Reservation(ctx, act, 1)
	if err != nil || r.Status != inventory.StatusReleased {
		t.Errorf("status after release: got %q (%v), want RELEASED", r.Status, err)
	}
	// The buyer was told the order exists, so the key keeps naming it: a
	// repeat answers the first order and reserves nothing.
	res := MustReserve(t, s, request(act, 1, 2, 2, "k"))
	if want := (inventory.ReserveResult{OrderID: 1, Replayed: true, Remaining: 5}); res != want {
		t.Errorf("repeat after release: got %+v, want %+v", res, want)
	}
	// The buyer's limit is back: another key reserves afresh.
	res = MustReserve(t, s, request(act, 1, 2, 3, "k2"))
	if want := (inventory.ReserveResult{OrderID: 3, Remaining: 3}); res != want {
		t.Errorf("reserve with a new key after release: got %+v, want %+v", res, want)
	}
}

// An unpublished release (the buyer was told the order failed) forgets the
// key, so a retry with it reserves afresh.
func TestUnpublishedReleaseForgetsTheKey(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 5, 2)
	MustReserve(t, s, request(act, 1, 2, 1, "k"))
	if released, err := s.ReleaseUnpublished(ctx, act, 1); err != nil || !released {
		t.Fatalf("unpublished release: got %v, %v; want true", released, err)
	}
	res := MustReserve(t, s, request(act, 1, 2, 2, "k"))
	if want := (inventory.ReserveResult{OrderID: 2, Remaining: 3}); res != want {
		t.Errorf("retry after an unpublished release: got %+v, want %+v", res, want)
	}
}

// A release that finds no reservation changes nothing but leaves a
// tombstone, and the order's reservation, should it arrive after the
// release (it was on its way in a batch whose caller gave up), then takes
// neither stock nor the buyer's limit. The buyer's next attempt, a new
// order, reserves as usual.
func TestReleaseOfAnUnknownOrderLeavesATombstone(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 5, 1)
	before := snapshot(t, rdb, act)
	if _, err := s.Release(ctx, act, 1); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Fatalf("release of an unknown order: %v, want ErrReservationNotFound", err)
	}
	if released, err := s.ReleaseUnpublished(ctx, act, 2); err != nil || released {
		t.Fatalf("unpublished release of an unknown order: %v, %v; want false and no error (nothing is held)", released, err)
	}
	// Its value says whether the release was unpublished (mark_ordered.lua
	// drops the late event of such an order).
	tombs := fmt.Sprintf("{act:%d}:tomb:1=0\n{act:%d}:tomb:2=1\n", act, act)
	if after := snapshot(t, rdb, act); after != before+tombs {
		t.Errorf("the releases changed more than their tombstones:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ttl := rdb.PTTL(ctx, fmt.Sprintf("{act:%d}:tomb:2", act)).Val(); ttl <= 0 || ttl > invredis.TombstoneTTL {
		t.Errorf("tombstone lives %s, want up to %s", ttl, invredis.TombstoneTTL)
	}
	for _, order := range []int64{1, 2} {
		if _, err := s.Reserve(ctx, request(act, 7, 1, order, fmt.Sprint("k", order))); !errors.Is(err, inventory.ErrGivenUp) {
			t.Errorf("reservation of released order %d arriving late: %v, want ErrGivenUp", order, err)
		}
	}
	if after := snapshot(t, rdb, act); after != before+tombs {
		t.Errorf("the late reservations changed state:\nbefore:\n%s\nafter:\n%s", before+tombs, after)
	}
	if res := MustReserve(t, s, request(act, 7, 1, 3, "k3")); res.OrderID != 3 || res.Remaining != 4 {
		t.Errorf("the buyer's next attempt: %+v, want order 3 reserved with 4 left", res)
	}
}

func TestReleaseTransitions(t *testing.T) {
	tests := []struct {
		name         string
		setup        func(t *testing.T, s *invredis.Store, act int64)
		wantReleased bool
		wantErr      error
	}{
		{
			name: "double release is harmless",
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				MustReserve(t, s, request(act, 1, 1, 1, "k"))
				if ok, err := s.Release(context.Background(), act, 1); !ok || err != nil {
					t.Fatalf("first release: %v %v", ok, err)
				}
			},
			wantReleased: false,
		},
		{
			name: "release after confirm is refused",
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				MustReserve(t, s, request(act, 1, 1, 1, "k"))
				if err := s.Confirm(context.Background(), act, 1); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: inventory.ErrAlreadyConfirmed,
		},
	}
	s, rdb := MustStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := MustPreheat(t, s, 5, 2)
			tt.setup(t, s, act)
			before := snapshot(t, rdb, act)
			released, err := s.Release(context.Background(), act, 1)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			if released != tt.wantReleased {
				t.Errorf("released: got %v, want %v", released, tt.wantReleased)
			}
			if after := snapshot(t, rdb, act); after != before {
				t.Errorf("release changed state:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestConfirmTransitions(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, s *invredis.Store, act int64)
		wantErr    error
		wantStatus inventory.Status
	}{
		{
			name:       "confirm a reservation",
			setup:      func(t *testing.T, s *invredis.Store, act int64) { MustReserve(t, s, request(act, 1, 1, 1, "k")) },
			wantStatus: inventory.StatusConfirmed,
		},
		{
			name: "confirm twice is harmless",
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				MustReserve(t, s, request(act, 1, 1, 1, "k"))
				if err := s.Confirm(context.Background(), act, 1); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: inventory.StatusConfirmed,
		},
		{
			name: "confirm after release is refused",
			setup: func(t *testing.T, s *invredis.Store, act int64) {
				MustReserve(t, s, request(act, 1, 1, 1, "k"))
				if _, err := s.Release(context.Background(), act, 1); err != nil {
					t.Fatal(err)
				}
			},
			wantErr:    inventory.ErrAlreadyReleased,
			wantStatus: inventory.StatusReleased,
		},
		{
			name:    "confirm an unknown order",
			setup:   func(t *testing.T, s *invredis.Store, act int64) {},
			wantErr: inventory.ErrReservationNotFound,
		},
	}
	s, rdb := MustStore(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := MustPreheat(t, s, 5, 2)
			tt.setup(t, s, act)
			stockBefore := MustStock(t, s, act)
			err := s.Confirm(ctx, act, 1)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			if got := MustStock(t, s, act); got != stockBefore {
				t.Errorf("stock: got %d, want %d (confirm never moves stock)", got, stockBefore)
			}
			if tt.wantStatus == "" {
				return
			}
			r, err := s.Reservation(ctx, act, 1)
			if err != nil || r.Status != tt.wantStatus {
				t.Errorf("status: got %q (%v), want %q", r.Status, err, tt.wantStatus)
			}
			if n := rdb.ZCard(ctx, invredis.ExpiryKey(act)).Val(); n != 0 {
				t.Errorf("expiry entries: got %d, want 0 (a confirmed or released order never expires)", n)
			}
		})
	}
}

// keySlot is CLUSTER KEYSLOT, as the store computes it for the buckets'
// tags (TestKeySlotMatchesRedisCluster holds it to the specification).
func keySlot(key string) uint16 { return invredis.KeySlot(key) }

func TestKeySlotMatchesRedisCluster(t *testing.T) {
	// Slots published in the Redis Cluster specification and by CLUSTER
	// KEYSLOT on a cluster node.
	tests := []struct {
		key  string
		want uint16
	}{
		{"foo", 12182},
		{"bar", 5061},
		{"{foo}:anything", 12182},
		{"{bar}:res:1", 5061},
	}
	for _, tt := range tests {
		if got := keySlot(tt.key); got != tt.want {
			t.Errorf("keySlot(%q): got %d, want %d", tt.key, got, tt.want)
		}
	}
	if got := keySlot("123456789"); got != 0x31C3 {
		t.Errorf("CRC-16/XMODEM check value: got %#x, want 0x31c3", got)
	}
}

// MustRunEveryScript runs each of the store's scripts on act (preheated
// with at least four units and a limit of one or more): afterwards it
// holds meta, stock, bought, idem, four reservations and an expiry entry.
func MustRunEveryScript(tb testing.TB, s *invredis.Store, act int64) {
	tb.Helper()
	ctx := context.Background()
	MustReserve(tb, s, request(act, 1, 1, 1, "a"))
	MustReserve(tb, s, request(act, 2, 1, 2, "b"))
	if err := s.Confirm(ctx, act, 1); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Release(ctx, act, 2); err != nil {
		tb.Fatal(err)
	}
	MustReserve(tb, s, request(act, 3, 1, 3, "c"))
	if _, err := s.MarkOrdered(ctx, []inventory.OrderRef{{ActivityID: act, OrderID: 1}, {ActivityID: act, OrderID: 3}}); err != nil {
		tb.Fatal(err)
	}
	MustReserve(tb, s, request(act, 4, 1, 4, "d"))
	if _, err := s.ReleaseUnpublished(ctx, act, 4); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Stock(ctx, act); err != nil {
		tb.Fatal(err)
	}
}

func TestActivityKeysShareOneSlot(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 5)
	tag := fmt.Sprintf("{act:%d}", act)
	want := keySlot(tag)

	for _, k := range append(invredis.ReserveKeys(act, 1), invredis.ExpiryKey(act)) {
		if !strings.HasPrefix(k, tag+":") || keySlot(k) != want {
			t.Errorf("key %q: slot %d, want prefix %s and slot %d", k, keySlot(k), tag, want)
		}
	}
	// Run every script, then check every key they created in Redis.
	MustRunEveryScript(t, s, act)
	keys, err := rdb.Keys(ctx, fmt.Sprintf("*act:%d*", act)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 8 {
		t.Fatalf("keys of the activity: got %v, want at least meta, stock, bought, idem, four reservations and expiry", keys)
	}
	for _, k := range keys {
		if keySlot(k) != want {
			t.Errorf("key %q is in slot %d, want %d", k, keySlot(k), want)
		}
	}
}

func TestScriptsRunBySHA(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 5)
	MustReserve(t, s, request(act, 1, 1, 1, "a"))
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	MustReserve(t, s, request(act, 2, 1, 2, "b"))
	MustReserve(t, s, request(act, 3, 1, 3, "c"))
	stats := rdb.Info(ctx, "commandstats").Val()
	if !strings.Contains(stats, "cmdstat_evalsha:calls=2,") {
		t.Errorf("two reserves after the first: want two EVALSHA calls, commandstats:\n%s", stats)
	}
	if strings.Contains(stats, "cmdstat_eval:") {
		t.Errorf("a reserve sent the script body (EVAL) although Redis has it, commandstats:\n%s", stats)
	}
}

// A batch that cannot reach Redis fails as a whole: no answer may read
// as a refusal (SOLD_OUT) when nothing was decided.
// deadRedis returns a client of an address nothing listens on.
func deadRedis(t *testing.T) *goredis.Client {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestReserveBatchWithoutRedisFailsAsAWhole(t *testing.T) {
	answers, err := invredis.NewStore(deadRedis(t)).ReserveBatch(context.Background(), []inventory.ReserveRequest{
		request(1, 1, 1, 1, "a"), request(1, 2, 1, 2, "b"),
	})
	if err == nil || answers != nil {
		t.Fatalf("batch without Redis: got %+v, %v; want no answers and an error", answers, err)
	}
}

// pipelineSizes records the length of every pipeline a client sends.
type pipelineSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (p *pipelineSizes) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (p *pipelineSizes) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (p *pipelineSizes) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		p.mu.Lock()
		p.sizes = append(p.sizes, len(cmds))
		p.mu.Unlock()
		return next(ctx, cmds)
	}
}

// largest is the longest pipeline sent so far.
func (p *pipelineSizes) largest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Max(append(p.sizes, 0))
}

// The stampede runs twice: on a plain client (one round trip per
// reserve) and on the auto-pipeliner the service uses, where concurrent
// reserves leave together in one pipeline and must still each get their
// own, correct answer.
func TestReserveConcurrentBuyersNeverOversell(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		s, rdb := MustStore(t)
		testStampede(t, s, rdb, 0)
	})
	t.Run("coalesced", func(t *testing.T) {
		_, rdb := MustStore(t)
		var sizes pipelineSizes
		rdb.AddHook(&sizes)
		testStampede(t, invredis.NewStore(redisclient.Coalesced(rdb)), rdb, 0)
		if got := sizes.largest(); got < 2 {
			t.Errorf("largest pipeline of 5,000 concurrent reserves: got %d commands, want several", got)
		}
	})
	// Batches of 50 racing each other, as the order service sends them.
	t.Run("batched", func(t *testing.T) {
		s, rdb := MustStore(t)
		testStampede(t, s, rdb, 50)
	})
}

// testStampede races 5,000 requests for 1,000 units; batch is
// reserveAtOnce's.
func testStampede(t *testing.T, s *invredis.Store, rdb *goredis.Client, batch int) {
	const (
		stock   = 1000
		users   = 3000
		buyers  = 5000
		twiceTo = 1000 // users 1..1000 also buy with a second key
	)
	ctx := context.Background()
	act := MustPreheat(t, s, stock, 1)

	// Requests: every user buys once with key "first"; users 1..1000 buy
	// again with key "second"; users 1001..2000 replay "first" under a new
	// order id, as a client retrying a timed-out call would.
	reqs := make([]inventory.ReserveRequest, 0, buyers)
	for u := int64(1); u <= users; u++ {
		reqs = append(reqs, request(act, u, 1, u, "first"))
	}
	for u := int64(1); u <= twiceTo; u++ {
		reqs = append(reqs, request(act, u, 1, 10_000+u, "second"))
	}
	for u := int64(twiceTo + 1); u <= 2*twiceTo; u++ {
		reqs = append(reqs, request(act, u, 1, 20_000+u, "first"))
	}

	// Shuffle, so second purchases and replays race the first ones instead
	// of starting after them.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

	results, errs := reserveAtOnce(ctx, s, reqs, batch)

	fresh := map[int64]int{}       // user -> fresh reservations
	orders := map[string][]int64{} // "user:key" -> order ids answered
	freshByKey := map[string]int{} // "user:key" -> fresh answers
	var reserved int
	for i, r := range reqs {
		res, err := results[i], errs[i]
		if err != nil {
			if !errors.Is(err, inventory.ErrSoldOut) && !errors.Is(err, inventory.ErrLimitExceeded) {
				t.Fatalf("request %+v: unexpected error %v", r, err)
			}
			continue
		}
		if res.Remaining < 0 {
			t.Errorf("request %+v: remaining %d below zero", r, res.Remaining)
		}
		pair := fmt.Sprintf("%d:%s", r.UserID, r.IdempotencyKey)
		orders[pair] = append(orders[pair], res.OrderID)
		if !res.Replayed {
			reserved++
			fresh[r.UserID]++
			freshByKey[pair]++
			if res.OrderID != r.OrderID {
				t.Errorf("fresh reservation of %+v answered order %d", r, res.OrderID)
			}
		}
	}
	if reserved != stock {
		t.Errorf("fresh reservations: got %d, want %d", reserved, stock)
	}
	for u, n := range fresh {
		if n > 1 {
			t.Errorf("user %d reserved %d times, limit 1", u, n)
		}
	}
	for pair, ids := range orders {
		for _, id := range ids {
			if id != ids[0] {
				t.Errorf("key %s answered orders %v, want one order", pair, ids)
				break
			}
		}
		if freshByKey[pair] != 1 {
			t.Errorf("key %s: %d fresh answers among %d successes, want exactly 1", pair, freshByKey[pair], len(ids))
		}
	}

	// The store agrees: nothing left, nothing below zero, one unit per buyer.
	if got := MustStock(t, s, act); got != 0 {
		t.Errorf("stock left: got %d, want 0", got)
	}
	bought := rdb.HGetAll(ctx, fmt.Sprintf("{act:%d}:bought", act)).Val()
	var units int
	for u, v := range bought {
		n, _ := strconv.Atoi(v)
		if n != 1 {
			t.Errorf("user %s holds %s units, limit 1", u, v)
		}
		units += n
	}
	if units != stock {
		t.Errorf("units held: got %d, want %d", units, stock)
	}
	resKeys, err := rdb.Keys(ctx, fmt.Sprintf("{act:%d}:res:*", act)).Result()
	if err != nil {
		t.Fatal(err)
	}
	var qty int
	for _, k := range resKeys {
		n, _ := strconv.Atoi(rdb.HGet(ctx, k, "qty").Val())
		qty += n
	}
	if len(resKeys) != stock || qty != stock {
		t.Errorf("reservations: got %d records holding %d units, want %d and %d", len(resKeys), qty, stock, stock)
	}
	if n := rdb.ZCard(ctx, invredis.ExpiryKey(act)).Val(); n != stock {
		t.Errorf("expiry entries: got %d, want %d", n, stock)
	}
}

func BenchmarkReserve(b *testing.B) {
	s, _ := MustStore(b)
	act := MustPreheat(b, s, inventory.MaxStock, 1)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			if _, err := s.Reserve(context.Background(), request(act, n, 1, n, "k")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestReleaseBatchAnswersEachAsReleaseWould: one pipeline releases a
// reserved order, an already released one, a confirmed one and one never
// reserved, across two activities, and each answer and each effect is
// what Release alone would have given.
func TestReleaseBatchAnswersEachAsReleaseWould(t *testing.T) {
	ctx := context.Background()
	s, rdb := MustStore(t)
	a, b := MustPreheat(t, s, 5, 2), MustPreheat(t, s, 5, 2)
	MustReserve(t, s, request(a, 1, 2, 11, "k1"))
	MustReserve(t, s, request(a, 2, 1, 12, "k2"))
	if _, err := s.Release(ctx, a, 12); err != nil {
		t.Fatal(err)
	}
	MustReserve(t, s, request(b, 3, 1, 21, "k3"))
	if err := s.Confirm(ctx, b, 21); err != nil {
		t.Fatal(err)
	}
	sizes := &pipelineSizes{}
	rdb.AddHook(sizes)
	got, err := s.ReleaseBatch(ctx, []inventory.OrderRef{{ActivityID: a, OrderID: 11}, {ActivityID: a, OrderID: 12},
		{ActivityID: b, OrderID: 21}, {ActivityID: b, OrderID: 22}})
	if err != nil || len(got) != 4 {
		t.Fatalf("release batch: %v, %v", got, err)
	}
	want := []struct {
		released bool
		err      error
	}{{true, nil}, {false, nil}, {false, inventory.ErrAlreadyConfirmed}, {false, inventory.ErrReservationNotFound}}
	for i, w := range want {
		if got[i].Released != w.released || !errors.Is(got[i].Err, w.err) || (w.err == nil && got[i].Err != nil) {
			t.Errorf("answer %d = %+v, want released %v, err %v", i, got[i], w.released, w.err)
		}
	}
	if n := sizes.largest(); n != 4 {
		t.Errorf("largest pipeline %d commands, want the 4 releases in one", n)
	}
	if sa, sb := MustStock(t, s, a), MustStock(t, s, b); sa != 5 || sb != 4 {
		t.Errorf("stock after the batch: %d and %d, want 5 (both reservations back) and 4 (the paid unit stays sold)", sa, sb)
	}
	// The release of the order never reserved left its tombstone, as a
	// lone Release does: its reservation, arriving late, takes nothing.
	if _, err := s.Reserve(ctx, request(b, 4, 1, 22, "k4")); !errors.Is(err, inventory.ErrGivenUp) {
		t.Errorf("reservation after its release: %v, want ErrGivenUp", err)
	}
}

func TestReleaseBatchWithoutRedisFailsAsAWhole(t *testing.T) {
	answers, err := invredis.NewStore(deadRedis(t)).ReleaseBatch(context.Background(), []inventory.OrderRef{{ActivityID: 1, OrderID: 1}})
	if err == nil || answers != nil {
		t.Fatalf("batch without Redis: got %+v, %v; want no answers and an error", answers, err)
	}
}
