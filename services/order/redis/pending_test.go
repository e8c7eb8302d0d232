package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/order"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{RedisCluster: true}, func(s *localstack.Stack) { stack = s })
}

// MustPending returns a pending store under a prefix of its own, on the
// auto-pipeliner the service uses, and the plain client under it.
func MustPending(tb testing.TB, ttl time.Duration) (*orderredis.Pending, *goredis.Client) {
	tb.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	// The keys live under the test's name; a run of the test before this
	// one (-count) left its own there, which must not answer for this one.
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, tb.Name()+":*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	return orderredis.NewPending(redisclient.Coalesced(rdb), tb.Name()+":", ttl), rdb
}

// The store gives the same answers on a plain client, where each
// command is a round trip of its own.
func TestPendingOnAPlainClient(t *testing.T) {
	_, rdb := MustPending(t, time.Hour)
	s := orderredis.NewPending(rdb, t.Name()+":", time.Hour)
	ctx := context.Background()
	if err := s.Put(ctx, event(50, 6, at)); err != nil {
		t.Fatal(err)
	}
	list, err := s.UserPending(ctx, 6)
	if err != nil || len(list) != 1 || list[0].OrderID != 50 {
		t.Fatalf("user 6 pending: got %+v %v, want order 50", list, err)
	}
}

var at = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func event(id, user int64, created time.Time) order.Placed {
	return order.Placed{OrderID: id, LineID: id + 1, UserID: user, ActivityID: 1, SKUID: 2, Quantity: 1,
		UnitPrice: 300, IdempotencyKey: "k", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
}

func TestPendingLifecycle(t *testing.T) {
	s, _ := MustPending(t, time.Hour)
	ctx := context.Background()
	first, second, other := event(10, 1, at), event(20, 1, at.Add(time.Second)), event(30, 2, at)
	for _, p := range []order.Placed{first, second, other} {
		if err := s.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(second.CreatedAt) || got.UserID != 1 || got.LineID != 21 || got.UnitPrice != 300 {
		t.Fatalf("get: got %+v, want %+v", got, second)
	}
	list, err := s.UserPending(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].OrderID != 20 || list[1].OrderID != 10 {
		t.Fatalf("user 1 pending: got %+v, want orders 20 then 10", list)
	}
	if err := s.Delete(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, 20); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("deleted record: got %v, want ErrNotFound", err)
	}
	list, err = s.UserPending(ctx, 1)
	if err != nil || len(list) != 1 || list[0].OrderID != 10 {
		t.Fatalf("user 1 pending after delete: got %+v %v, want order 10", list, err)
	}
}

func TestPendingForgetsExpiredRecords(t *testing.T) {
	s, rdb := MustPending(t, time.Hour)
	ctx := context.Background()
	if err := s.Put(ctx, event(40, 5, at)); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.TTL(ctx, t.Name()+":order:pending:user:5").Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("user set ttl: got %s (%v), want up to an hour", ttl, err)
	}
	// The record expires on its own (as it does an hour after a lost
	// delete); the user's list must not hold on to its id.
	if err := rdb.Del(ctx, t.Name()+":order:pending:40").Err(); err != nil {
		t.Fatal(err)
	}
	list, err := s.UserPending(ctx, 5)
	if err != nil || len(list) != 0 {
		t.Fatalf("got %+v %v, want no pending orders", list, err)
	}
	n, err := rdb.ZCard(ctx, t.Name()+":order:pending:user:5").Result()
	if err != nil || n != 0 {
		t.Fatalf("user set: got %d members (%v), want 0", n, err)
	}
}

func TestPendingMarksPlacements(t *testing.T) {
	s, rdb := MustPending(t, time.Minute)
	ctx := context.Background()
	outcome := func(id int64, want order.Outcome) {
		t.Helper()
		if got, err := s.Outcome(ctx, id); err != nil || got != want {
			t.Fatalf("order %d: got outcome %d (%v), want %d", id, got, err, want)
		}
	}
	outcome(50, order.OutcomeUnknown)
	if err := s.Put(ctx, event(50, 8, at)); err != nil {
		t.Fatal(err)
	}
	outcome(50, order.OutcomePublished)
	outcome(51, order.OutcomeUnknown)
	ttl, err := rdb.TTL(ctx, t.Name()+":order:published:50").Result()
	if err != nil || ttl <= time.Minute || ttl > orderredis.MarkTTL {
		t.Fatalf("mark ttl: got %s (%v), want MarkTTL (%s), outliving the records' minute", ttl, err, orderredis.MarkTTL)
	}
	// A placement whose publish failed: Put never ran for it, and its
	// mark tells a waiting replay the order will never exist.
	if err := s.Released(ctx, 51); err != nil {
		t.Fatal(err)
	}
	outcome(51, order.OutcomeReleased)
	ttl, err = rdb.TTL(ctx, t.Name()+":order:released:51").Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("released mark ttl: got %s (%v), want at most an hour", ttl, err)
	}
	outcome(50, order.OutcomePublished)
	// Should both marks be there, the released one wins.
	if err := rdb.Set(ctx, t.Name()+":order:published:51", 1, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	outcome(51, order.OutcomeReleased)
}

// A user's set keeps no id longer than a record can live: ids past the
// ones a list reads, created more than a record's lifetime before the
// newest, are trimmed when the list is read (a buy's Put no longer trims).
func TestPendingTrimsIdsPastTheirRecordsLifetime(t *testing.T) {
	s, rdb := MustPending(t, time.Hour)
	ctx := context.Background()
	uk := t.Name() + ":order:pending:user:6"
	// Five ids of a lost delete, two hours old, whose records are gone.
	for i := range int64(5) {
		if err := rdb.ZAdd(ctx, uk, goredis.Z{Score: float64(at.Add(-2 * time.Hour).UnixMilli()), Member: 500 + i}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range int64(orderredis.MaxUserPending) {
		if err := s.Put(ctx, event(600+i, 6, at.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.UserPending(ctx, 6)
	if err != nil || len(list) != orderredis.MaxUserPending {
		t.Fatalf("got %d orders (%v), want %d", len(list), err, orderredis.MaxUserPending)
	}
	if n, err := rdb.ZCard(ctx, uk).Result(); err != nil || n != orderredis.MaxUserPending {
		t.Fatalf("user set: %d members (%v), want %d: the old ids trimmed", n, err, orderredis.MaxUserPending)
	}
}
