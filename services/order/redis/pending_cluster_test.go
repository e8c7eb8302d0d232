package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/services/order"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

// The pending records work the same on one server and on Redis Cluster,
// where one user's orders hash to different slots: Put's and Delete's
// pipelines and UserPending's reads cross primaries.
func TestPendingOnSingleNodeAndCluster(t *testing.T) {
	_, single := MustPending(t, time.Hour)
	cc := stack.RedisClusterClient(t)
	// Both backends use one prefix: they are different servers, and the
	// key names checked against the cluster's slots are the ones used.
	prefix := t.Name() + ":"
	const orders = 30
	ids := make([]int64, orders)
	nodes := map[string]bool{}
	for i := range ids {
		ids[i] = int64(1000 + i)
		node, err := cc.MasterForKey(context.Background(), prefix+"order:pending:"+strconv.FormatInt(ids[i], 10))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("the records of orders %v all live on %v; the test needs them on at least two primaries", ids, nodes)
	}
	// Each backend runs plain and on the auto-pipeliner the service uses;
	// a second run on one server finds the first's leftovers and must
	// give the same answers.
	for _, b := range []struct {
		name string
		rdb  goredis.Cmdable
	}{
		{"single", single}, {"cluster", cc},
		{"single coalesced", redisclient.Coalesced(single)}, {"cluster coalesced", redisclient.Coalesced(cc)},
	} {
		t.Run(b.name, func(t *testing.T) {
			s := orderredis.NewPending(b.rdb, prefix, time.Hour)
			ctx := context.Background()
			var placed []order.Placed
			for i, id := range ids {
				p := event(id, 7, at.Add(time.Duration(i)*time.Second))
				placed = append(placed, p)
				if err := s.Put(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Outcome(ctx, ids[0]); err != nil || got != order.OutcomePublished {
				t.Fatalf("outcome of %d: got %d (%v), want published", ids[0], got, err)
			}
			list, err := s.UserPending(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != orders || list[0].OrderID != ids[orders-1] || list[orders-1].OrderID != ids[0] {
				t.Fatalf("user pending: got %d records (first %v), want %d newest first", len(list), list[:min(len(list), 1)], orders)
			}
			if err := s.Delete(ctx, placed[:orders-1]...); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, ids[0]); !errors.Is(err, order.ErrNotFound) {
				t.Fatalf("deleted record: got %v, want ErrNotFound", err)
			}
			list, err = s.UserPending(ctx, 7)
			if err != nil || len(list) != 1 || list[0].OrderID != ids[orders-1] {
				t.Fatalf("user pending after delete: got %+v (%v), want only order %d", list, err, ids[orders-1])
			}
			// A placement whose publish failed, on whichever primary its
			// mark hashes to.
			failed := ids[orders-1] + 1
			if err := s.Released(ctx, failed); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Outcome(ctx, failed); err != nil || got != order.OutcomeReleased {
				t.Fatalf("outcome of %d after its release: got %d (%v), want released", failed, got, err)
			}
		})
	}
}
