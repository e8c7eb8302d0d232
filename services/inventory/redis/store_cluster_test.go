package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// backend is a Redis the store must behave the same on.
type backend struct {
	name string
	rdb  goredis.UniversalClient
}

// MustBackends returns the single server and the cluster.
func MustBackends(tb testing.TB) []backend {
	tb.Helper()
	_, single := MustStore(tb)
	return []backend{{"single", single}, {"cluster", stack.RedisClusterClient(tb)}}
}

// nodeOf is the address of the cluster primary holding key.
func nodeOf(tb testing.TB, cc *goredis.ClusterClient, key string) string {
	tb.Helper()
	node, err := cc.MasterForKey(context.Background(), key)
	if err != nil {
		tb.Fatalf("primary of %s: %v", key, err)
	}
	return node.Options().Addr
}

// activitiesOnEveryNode returns perNode fresh activity ids for each
// primary of the cluster, so a test spans every node by construction
// rather than by the luck of the ids.
func activitiesOnEveryNode(tb testing.TB, cc *goredis.ClusterClient, perNode int) []int64 {
	tb.Helper()
	count := map[string]int{}
	var ids []int64
	for len(ids) < perNode*len(stack.RedisClusterAddrs) {
		id := newActivityID()
		node := nodeOf(tb, cc, "{act:"+strconv.FormatInt(id, 10)+"}")
		if count[node] < perNode {
			count[node]++
			ids = append(ids, id)
		}
	}
	return ids
}

// Activities land on different primaries, every key of one activity on
// its tag's primary, and the test's slot function agrees with the
// cluster's CLUSTER KEYSLOT.
func TestActivitiesSpreadOverClusterNodes(t *testing.T) {
	cc := stack.RedisClusterClient(t)
	s := invredis.NewStore(cc)
	ctx := context.Background()
	acts := activitiesOnEveryNode(t, cc, 2)
	nodes := map[string]bool{}
	for _, act := range acts {
		tag := "{act:" + strconv.FormatInt(act, 10) + "}"
		node := nodeOf(t, cc, tag)
		nodes[node] = true
		if _, err := s.Preheat(ctx, act, 10, 2, 1); err != nil {
			t.Fatal(err)
		}
		MustRunEveryScript(t, s, act)
		keys := append(invredis.ReserveKeys(act, 2), invredis.ClaimedKey(act))
		for _, k := range keys {
			slot, err := cc.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if uint16(slot) != keySlot(k) || keySlot(k) != keySlot(tag) {
				t.Errorf("key %s: CLUSTER KEYSLOT %d, keySlot %d, want the tag's slot %d", k, slot, keySlot(k), keySlot(tag))
			}
		}
		// Ask the primary itself: every key the scripts wrote is there.
		primary, err := cc.MasterForKey(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := primary.Keys(ctx, tag+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) < 8 {
			t.Errorf("activity %d: keys on its primary %s: %v, want meta, stock, bought, idem, four reservations and expiry", act, node, stored)
		}
	}
	if len(nodes) < 2 {
		t.Fatalf("activities %v all on %v, want at least two primaries", acts, nodes)
	}
}

// The store's rules hold on one server and on the cluster alike, with
// the activities of one test spread over every primary: reserve, replay,
// limit, sold out, release, confirm, and the multi-activity calls
// (MarkOrdered's pipeline, ClaimDue and SettleDue) that cross nodes.
func TestStoreRulesOnSingleNodeAndCluster(t *testing.T) {
	acts := activitiesOnEveryNode(t, stack.RedisClusterClient(t), 1)
	for _, b := range MustBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := invredis.NewStore(b.rdb)
			ctx := context.Background()
			var refs []inventory.OrderRef
			for _, act := range acts {
				if got, err := s.Preheat(ctx, act, 3, 2, 1); err != nil || got != 3 {
					t.Fatalf("preheat %d: got %d, %v; want 3", act, got, err)
				}
				first := MustReserve(t, s, request(act, 1, 2, 1, "k"))
				if first.Remaining != 1 || first.Replayed {
					t.Errorf("activity %d: first reserve %+v, want 1 left, fresh", act, first)
				}
				if again := MustReserve(t, s, request(act, 1, 2, 99, "k")); !again.Replayed || again.OrderID != 1 {
					t.Errorf("activity %d: replay %+v, want order 1 replayed", act, again)
				}
				if _, err := s.Reserve(ctx, request(act, 1, 1, 2, "other")); !errors.Is(err, inventory.ErrLimitExceeded) {
					t.Errorf("activity %d: beyond the limit: %v, want ErrLimitExceeded", act, err)
				}
				if _, err := s.Reserve(ctx, request(act, 2, 2, 3, "k")); !errors.Is(err, inventory.ErrSoldOut) {
					t.Errorf("activity %d: more than left: %v, want ErrSoldOut", act, err)
				}
				MustReserve(t, s, request(act, 2, 1, 4, "k"))
				if released, err := s.Release(ctx, act, 4); err != nil || !released {
					t.Errorf("activity %d: release: %v, %v; want released", act, released, err)
				}
				if got := MustStock(t, s, act); got != 1 {
					t.Errorf("activity %d: stock after release: got %d, want 1", act, got)
				}
				if err := s.Confirm(ctx, act, 1); err != nil {
					t.Errorf("activity %d: confirm: %v", act, err)
				}
				if _, err := s.Release(ctx, act, 1); !errors.Is(err, inventory.ErrAlreadyConfirmed) {
					t.Errorf("activity %d: release after confirm: %v, want ErrAlreadyConfirmed", act, err)
				}
				refs = append(refs, inventory.OrderRef{ActivityID: act, OrderID: 1}, inventory.OrderRef{ActivityID: act, OrderID: 4},
					inventory.OrderRef{ActivityID: act, OrderID: 404})
			}

			// One MarkOrdered call over every activity: one pipeline, split
			// per primary on the cluster, answers in the order of refs.
			got, err := s.MarkOrdered(ctx, refs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range refs {
				want := map[int64]inventory.MarkOutcome{1: inventory.MarkMarked, 4: inventory.MarkMarked, 404: inventory.MarkNotFound}[r.OrderID]
				if got[i] != want {
					t.Errorf("mark %+v: got %s, want %s", r, got[i], want)
				}
			}

			// Due entries of every activity are claimed in one call and
			// settled in one call.
			due := deadline()
			for _, act := range acts {
				MustReserve(t, s, request(act, 3, 1, 5, "due"))
			}
			claimed, err := s.ClaimDue(ctx, acts, due, 100, due.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) != len(acts) {
				t.Fatalf("claimed %v, want order 5 of each of %d activities", claimed, len(acts))
			}
			settled, err := s.SettleDue(ctx, claimed, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			for i, ok := range settled {
				if !ok {
					t.Errorf("entry %+v not settled", claimed[i])
				}
			}
			if again, err := s.ClaimDue(ctx, acts, due.Add(time.Hour), 100, due.Add(2*time.Hour)); err != nil || len(again) != 0 {
				t.Errorf("claim after settling: got %v, %v; want nothing", again, err)
			}
		})
	}
}

// MarkOrdered's pipeline reloads its script when Redis lost it; on the
// cluster the script must reach every primary the pipeline touches.
func TestMarkOrderedLoadsAFlushedScriptOnEveryNode(t *testing.T) {
	cc := stack.RedisClusterClient(t)
	s := invredis.NewStore(cc)
	ctx := context.Background()
	var refs []inventory.OrderRef
	for _, act := range activitiesOnEveryNode(t, cc, 1) {
		if _, err := s.Preheat(ctx, act, 5, 1, 1); err != nil {
			t.Fatal(err)
		}
		MustReserve(t, s, request(act, 1, 1, 1, "k"))
		refs = append(refs, inventory.OrderRef{ActivityID: act, OrderID: 1})
	}
	if _, err := s.MarkOrdered(ctx, refs); err != nil {
		t.Fatal(err)
	}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		return node.ScriptFlush(ctx).Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.MarkOrdered(ctx, refs)
	if err != nil {
		t.Fatalf("mark after SCRIPT FLUSH on every primary: %v", err)
	}
	for i, o := range got {
		if o != inventory.MarkMarked {
			t.Errorf("mark %+v: got %s, want MARKED", refs[i], o)
		}
	}
}

// A primary that lost the script (a restart, a failover) answers NOSCRIPT
// to the calls of a batch sent to it, and those did not run; the calls
// that went to the other primaries did. Only the lost ones are sent
// again, so every reservation is answered as fresh, none as a replay of
// itself.
func TestReserveBatchLoadsAScriptOneNodeLost(t *testing.T) {
	cc := stack.RedisClusterClient(t)
	s := invredis.NewStore(cc)
	ctx := context.Background()
	acts := activitiesOnEveryNode(t, cc, 1)
	var reqs []inventory.ReserveRequest
	for i, act := range acts {
		if _, err := s.Preheat(ctx, act, 5, 1, 1); err != nil {
			t.Fatal(err)
		}
		MustReserve(t, s, request(act, 1, 1, 1, "k")) // every primary has the script now
		reqs = append(reqs, request(act, 2, 1, int64(100+i), "k"))
	}
	lost, err := cc.MasterForKey(ctx, "{act:"+strconv.FormatInt(acts[0], 10)+"}")
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	answers, err := s.ReserveBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("batch after one primary lost the script: %v", err)
	}
	for i, a := range answers {
		if a.Err != nil || a.Result.Replayed || a.Result.OrderID != reqs[i].OrderID || a.Result.Remaining != 3 {
			t.Errorf("reserve %+v: got %+v, %v; want a fresh reservation of order %d with 3 left", reqs[i], a.Result, a.Err, reqs[i].OrderID)
		}
	}
}

// Thousands of concurrent buyers over activities on every primary: no
// activity sells more than its stock, none is left unsold while buyers
// remain, and no buyer holds more than the limit. The same run on one
// server shows the cluster changes nothing.
func TestConcurrentBuyersOverEveryNodeNeverOversell(t *testing.T) {
	for _, b := range MustBackends(t) {
		faces := []struct {
			name  string
			rdb   goredis.Cmdable
			batch int // reserveAtOnce's
		}{
			{b.name, b.rdb, 0},
			{b.name + " coalesced", redisclient.Coalesced(b.rdb), 0},
			{b.name + " batched", b.rdb, 40},
		}
		for _, face := range faces {
			t.Run(face.name, func(t *testing.T) {
				acts := activitiesOnEveryNode(t, stack.RedisClusterClient(t), 2)
				testBuyersOverEveryNode(t, invredis.NewStore(face.rdb), b.rdb, acts, face.batch)
			})
		}
	}
}

// testBuyersOverEveryNode runs the stampede through s; rdb is the plain
// client under it, for reading the store's state afterwards, and batch
// is reserveAtOnce's.
func testBuyersOverEveryNode(t *testing.T, s *invredis.Store, rdb goredis.UniversalClient, acts []int64, batch int) {
	const (
		stock  = 150
		limit  = 2
		users  = 400
		buyers = 4000
	)
	ctx := context.Background()
	for _, act := range acts {
		if _, err := s.Preheat(ctx, act, stock, limit, 1); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]inventory.ReserveRequest, buyers)
	for i := range reqs {
		act := acts[rng.IntN(len(acts))]
		reqs[i] = request(act, 1+rng.Int64N(users), 1+rng.Int64N(limit), int64(i+1), "k"+strconv.Itoa(i))
	}
	results, errs := reserveAtOnce(ctx, s, reqs, batch)

	sold := map[int64]int64{}          // activity -> units reserved
	held := map[string]int64{}         // "activity:user" -> units
	refusedSoldOut := map[int64]bool{} // activity -> a one-unit request was refused as sold out
	for i, r := range reqs {
		switch err := errs[i]; {
		case err == nil:
			if results[i].Replayed {
				t.Errorf("request %+v replayed with a fresh key", r)
			}
			sold[r.ActivityID] += r.Quantity
			held[fmt.Sprintf("%d:%d", r.ActivityID, r.UserID)] += r.Quantity
		case errors.Is(err, inventory.ErrSoldOut):
			refusedSoldOut[r.ActivityID] = refusedSoldOut[r.ActivityID] || r.Quantity == 1
		case errors.Is(err, inventory.ErrLimitExceeded):
		default:
			t.Fatalf("request %+v: %v", r, err)
		}
	}
	for _, act := range acts {
		left := MustStock(t, s, act)
		if sold[act] > stock || sold[act]+left != stock {
			t.Errorf("activity %d: %d units reserved and %d left, want at most %d reserved and the rest left", act, sold[act], left, stock)
		}
		if refusedSoldOut[act] && left != 0 {
			t.Errorf("activity %d: a one-unit request was refused as sold out with %d left", act, left)
		}
		bought, err := rdb.HGetAll(ctx, "{act:"+strconv.FormatInt(act, 10)+"}:bought").Result()
		if err != nil {
			t.Fatal(err)
		}
		var units int64
		for u, v := range bought {
			n, _ := strconv.ParseInt(v, 10, 64)
			if n > limit || n != held[fmt.Sprintf("%d:%s", act, u)] {
				t.Errorf("activity %d user %s: store holds %d units, answers gave %d, limit %d", act, u, n, held[fmt.Sprintf("%d:%s", act, u)], limit)
			}
			units += n
		}
		if units != sold[act] {
			t.Errorf("activity %d: buyers hold %d units, answers reserved %d", act, units, sold[act])
		}
	}
	for k, n := range held {
		if n > limit {
			t.Errorf("buyer %s reserved %d units, limit %d", k, n, limit)
		}
	}
}
