package app_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	"github.com/flashsale/flashsale/services/order/postgres"
	orderredis "github.com/flashsale/flashsale/services/order/redis"
)

// seedIDs hands out activity, order and line ids that no service of the
// run makes (snowflakes are far larger) and no earlier run used.
var seedIDs atomic.Int64

func init() { seedIDs.Store(time.Now().UnixMicro()) }

// seeded is an activity whose orders were reserved (and, unless asked
// otherwise, stored as PENDING_PAYMENT) directly, all due at one instant.
type seeded struct {
	activity int64
	orders   []order.Placed
}

// MustSeedDue preheats a fresh activity with n units and reserves one for
// each of n orders of distinct users, all due at dueAt, through the real
// inventory service; with store set it also stores them as the order
// consumer would. It is the state n buyers leave behind when none pays.
func MustSeedDue(tb testing.TB, p *platform, n int, dueAt time.Time, store bool) seeded {
	tb.Helper()
	return mustSeedDueIn(tb, p, n, dueAt, store, 1)
}

// mustSeedDueIn is MustSeedDue for a sale whose stock is split into
// buckets.
func mustSeedDueIn(tb testing.TB, p *platform, n int, dueAt time.Time, store bool, buckets int32) seeded {
	tb.Helper()
	ctx := context.Background()
	s := seeded{activity: seedIDs.Add(1)}
	if _, err := p.inventory.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: s.activity, Stock: int64(n), PerUserLimit: 1,
		Buckets: buckets}); err != nil {
		tb.Fatal(err)
	}
	first := newUsers(int64(n))
	created := dueAt.Add(-time.Minute)
	for i := range n {
		id := seedIDs.Add(2)
		s.orders = append(s.orders, order.Placed{
			OrderID: id, LineID: id - 1, UserID: first + int64(i), ActivityID: s.activity, SKUID: 1,
			Quantity: 1, UnitPrice: 99_00, IdempotencyKey: "seed", CreatedAt: created, ExpiresAt: dueAt,
		})
	}
	work := make(chan order.Placed)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for o := range work {
				if _, err := p.inventory.Reserve(ctx, &inventoryv1.ReserveRequest{
					ActivityId: o.ActivityID, UserId: o.UserID, Quantity: 1, OrderId: o.OrderID,
					IdempotencyKey: o.IdempotencyKey, ExpiresAt: timestamppb.New(o.ExpiresAt),
				}); err != nil {
					tb.Error(err)
				}
			}
		})
	}
	for _, o := range s.orders {
		work <- o
	}
	close(work)
	wg.Wait()
	if store {
		MustStore(tb, p, s.orders...)
	}
	return s
}

// MustStore stores orders as PENDING_PAYMENT, as the order consumer does.
func MustStore(tb testing.TB, p *platform, ps ...order.Placed) {
	tb.Helper()
	for chunk := range slices.Chunk(ps, 1000) {
		orders := make([]order.Order, len(chunk))
		for i, o := range chunk {
			orders[i] = o.Order(order.StatusPendingPayment)
		}
		if _, _, err := postgres.NewStore(p.db).Insert(context.Background(), orders); err != nil {
			tb.Fatal(err)
		}
	}
}

// statusCounts counts the activity's stored orders by status.
func statusCounts(tb testing.TB, p *platform, activity int64) map[string]int {
	tb.Helper()
	rows, err := p.db.Query(context.Background(), `SELECT status, count(*) FROM orders WHERE activity_id = $1 GROUP BY status`, activity)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			tb.Fatal(err)
		}
		out[st] = n
	}
	return out
}

// MustEventually polls cond until it holds, failing the test with the
// last reason after timeout.
func MustEventually(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not after %s: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustRedis returns a client on the test Redis.
func MustRedis(tb testing.TB) *goredis.Client {
	tb.Helper()
	return MustRedisOn(tb, stack)
}

// MustRedisOn returns a client of s's Redis, closed when tb ends.
func MustRedisOn(tb testing.TB, s *localstack.Stack) *goredis.Client {
	tb.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: s.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// queued returns how many entries the activity's expiry queue holds, due
// and claimed.
func queued(tb testing.TB, rdb *goredis.Client, activity int64) (due, claimed int64) {
	tb.Helper()
	ctx := context.Background()
	return rdb.ZCard(ctx, invredis.ExpiryKey(activity)).Val(), rdb.ZCard(ctx, invredis.ClaimedKey(activity)).Val()
}

// mustExpireAll moves the clock to the seeded orders' deadline, waits
// until every one is EXPIRED, its stock back and the queue empty, and
// returns how late each order became EXPIRED (its row's updated_at after
// the wall time the clock reached the deadline) and when the last unit of
// stock was back.
func mustExpireAll(tb testing.TB, p *platform, s seeded, dueAt time.Time) (lateness []time.Duration, drained time.Duration) {
	tb.Helper()
	rdb := MustRedis(tb)
	n := len(s.orders)
	start := time.Now()
	p.clock.Set(dueAt)
	MustEventually(tb, 5*time.Minute, func() (bool, string) {
		due, claimed := queued(tb, rdb, s.activity)
		stock := MustStock(tb, p, s.activity)
		return stock == int64(n) && due+claimed == 0, fmt.Sprintf("stock %d of %d back, %d due and %d claimed entries left", stock, n, due, claimed)
	})
	drained = time.Since(start)
	if got := statusCounts(tb, p, s.activity); got["EXPIRED"] != n || len(got) != 1 {
		tb.Fatalf("statuses: got %v, want all %d EXPIRED", got, n)
	}
	rows, err := p.db.Query(context.Background(), `SELECT updated_at FROM orders WHERE activity_id = $1`, s.activity)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			tb.Fatal(err)
		}
		lateness = append(lateness, at.Sub(start))
	}
	slices.Sort(lateness)
	return lateness, drained
}

// expiryAtLoad is the order service's expiry setup under the 10,000-order
// load: the production batch and lease, two workers, a short poll.
func expiryAtLoad(c *app.Config) {
	c.ExpiryPoll = 20 * time.Millisecond
	c.ExpiryWorkers = 2
}

// The orders of a sale split into four buckets expire through the same
// workers: ClaimDue reads every bucket's queue, the release finds each
// order's bucket, and every unit comes back.
func TestOrdersOfABucketedSaleAllExpire(t *testing.T) {
	p := MustPlatform(t, expiryAtLoad)
	dueAt := p.clock.Now().Add(time.Minute)
	s := mustSeedDueIn(t, p, 200, dueAt, true, 4)
	if got := MustStock(t, p, s.activity); got != 0 {
		t.Fatalf("stock before the deadline: got %d, want 0", got)
	}
	mustExpireAll(t, p, s, dueAt)
}

func TestTenThousandOrdersDueAtOnceAllExpire(t *testing.T) {
	p := MustPlatform(t, expiryAtLoad)
	dueAt := p.clock.Now().Add(time.Minute)
	s := MustSeedDue(t, p, 10_000, dueAt, true)
	if got := MustStock(t, p, s.activity); got != 0 {
		t.Fatalf("stock before the deadline: got %d, want 0", got)
	}
	lateness, drained := mustExpireAll(t, p, s, dueAt)
	t.Logf("10,000 orders expired: lateness p50 %s, p99 %s, max %s; all stock back after %s",
		quantile(lateness, 0.5), quantile(lateness, 0.99), lateness[len(lateness)-1], drained)
}

// BenchmarkExpiryLateness measures how late 10,000 orders due at the same
// instant become EXPIRED (p50, p99, max of deadline → EXPIRED) and how
// long until all their stock is back, with the setup of expiryAtLoad.
//
//	go test -run '^$' -bench ExpiryLateness -benchtime 1x ./services/order/app/
func BenchmarkExpiryLateness(b *testing.B) {
	p := MustPlatform(b, expiryAtLoad)
	var all []time.Duration
	var drained time.Duration
	for b.Loop() {
		b.StopTimer()
		dueAt := p.clock.Now().Add(time.Minute)
		s := MustSeedDue(b, p, 10_000, dueAt, true)
		b.StartTimer()
		lateness, d := mustExpireAll(b, p, s, dueAt)
		all = append(all, lateness...)
		drained = max(drained, d)
	}
	slices.Sort(all)
	b.ReportMetric(float64(quantile(all, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(quantile(all, 0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(drained.Milliseconds()), "all-released-ms")
}

// quantile returns the q-quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// countingQueue counts the claims of each order and can run a hook right
// after a claim, before the worker acts on it.
type countingQueue struct {
	order.DueQueue
	mu         sync.Mutex
	claims     map[int64]int
	afterClaim func([]order.DueEntry)
}

func (q *countingQueue) Claim(ctx context.Context, acts []int64, now time.Time, limit int, lease time.Duration) ([]order.DueEntry, error) {
	got, err := q.DueQueue.Claim(ctx, acts, now, limit, lease)
	q.mu.Lock()
	for _, e := range got {
		q.claims[e.OrderID]++
	}
	q.mu.Unlock()
	if q.afterClaim != nil && len(got) > 0 {
		q.afterClaim(got)
	}
	return got, err
}

// countingStock counts the releases of each order.
type countingStock struct {
	order.ExpiryStock
	mu       sync.Mutex
	releases map[int64]int
}

func (s *countingStock) ReleaseBatch(ctx context.Context, orders []order.DueEntry) ([]error, error) {
	s.mu.Lock()
	for _, en := range orders {
		s.releases[en.OrderID]++
	}
	s.mu.Unlock()
	return s.ExpiryStock.ReleaseBatch(ctx, orders)
}

// worker is an expiry worker run in the test, with its counters.
type worker struct {
	*order.Expirer
	queue *countingQueue
	stock *countingStock
}

// newWorker returns an expiry worker on the platform's inventory and
// database, limited to activity; configure may change its settings.
func (p *platform) newWorker(activity int64, configure func(*order.ExpirerConfig)) *worker {
	w := &worker{
		queue: &countingQueue{DueQueue: ordergrpc.NewDueQueue(p.invConn), claims: map[int64]int{}},
		stock: &countingStock{ExpiryStock: ordergrpc.NewInventory(p.invConn), releases: map[int64]int{}},
	}
	cfg := order.ExpirerConfig{
		Queue: w.queue, Orders: postgres.NewStore(p.db), Stock: w.stock, Clock: p.clock,
		Marks:      p.marks,
		Activities: []int64{activity}, Poll: 5 * time.Millisecond,
	}
	if configure != nil {
		configure(&cfg)
	}
	w.Expirer = order.NewExpirer(cfg)
	return w
}

// MustRunOnce runs one batch and fails the test on an error.
func (w *worker) MustRunOnce(tb testing.TB) int {
	tb.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// MustSeededPlatform starts a platform whose order service runs no expiry
// worker, with n stored orders due a minute from its clock's now.
func MustSeededPlatform(tb testing.TB, n int) (*platform, seeded, time.Time) {
	tb.Helper()
	p := MustPlatform(tb, nil, app.WithoutExpiry())
	dueAt := p.clock.Now().Add(time.Minute)
	return p, MustSeedDue(tb, p, n, dueAt, true), dueAt
}

// runWorkers runs workers until the returned stop is called; stop waits
// for them to return.
func runWorkers(workers ...*worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func TestExpiryWorkersNeverProcessAnEntryTwice(t *testing.T) {
	p, s, dueAt := MustSeededPlatform(t, 2000)
	workers := make([]*worker, 4)
	for i := range workers {
		workers[i] = p.newWorker(s.activity, func(c *order.ExpirerConfig) { c.Batch = 50 })
	}
	stop := runWorkers(workers...)
	rdb := MustRedis(t)
	p.clock.Set(dueAt)
	MustEventually(t, 2*time.Minute, func() (bool, string) {
		due, claimed := queued(t, rdb, s.activity)
		return due+claimed == 0, fmt.Sprintf("%d due and %d claimed entries left", due, claimed)
	})
	stop()

	claims, releases := map[int64]int{}, map[int64]int{}
	busy := 0
	for _, w := range workers {
		for id, n := range w.queue.claims {
			claims[id] += n
		}
		for id, n := range w.stock.releases {
			releases[id] += n
		}
		if len(w.queue.claims) > 0 {
			busy++
		}
	}
	for _, o := range s.orders {
		if claims[o.OrderID] != 1 || releases[o.OrderID] != 1 {
			t.Fatalf("order %d: claimed %d and released %d times, want once each", o.OrderID, claims[o.OrderID], releases[o.OrderID])
		}
	}
	if got := statusCounts(t, p, s.activity); got["EXPIRED"] != len(s.orders) {
		t.Fatalf("statuses: got %v, want all %d EXPIRED", got, len(s.orders))
	}
	if got := MustStock(t, p, s.activity); got != int64(len(s.orders)) {
		t.Fatalf("stock: got %d, want %d", got, len(s.orders))
	}
	t.Logf("%d of %d workers took part", busy, len(workers))
}

// crashAfterUpdate is a worker's store that kills the worker right after
// its UPDATE committed: the orders are EXPIRED, their stock not released,
// their entries not acknowledged.
type crashAfterUpdate struct {
	order.Transitions
	crash context.CancelFunc
}

func (c crashAfterUpdate) EndUnpaid(ctx context.Context, ids []int64, to order.Status, at time.Time) ([]int64, error) {
	moved, err := c.Transitions.EndUnpaid(ctx, ids, to, at)
	c.crash()
	return moved, err
}

func TestAWorkerKilledMidBatchLosesNothing(t *testing.T) {
	const n = 300
	p, s, dueAt := MustSeededPlatform(t, n)
	rdb := MustRedis(t)
	p.clock.Set(dueAt)

	ctx, crash := context.WithCancel(context.Background())
	doomed := p.newWorker(s.activity, func(c *order.ExpirerConfig) {
		c.Orders = crashAfterUpdate{Transitions: c.Orders, crash: crash}
	})
	if _, err := doomed.RunOnce(ctx); err == nil {
		t.Fatal("the killed worker's batch: got no error, want its context's")
	}
	if due, claimed := queued(t, rdb, s.activity); due != 0 || claimed != n {
		t.Fatalf("after the crash: got %d due and %d claimed, want all %d claimed", due, claimed, n)
	}
	if got := MustStock(t, p, s.activity); got != 0 {
		t.Fatalf("stock after the crash: got %d, want 0 (nothing released)", got)
	}

	heir := p.newWorker(s.activity, nil)
	if got := heir.MustRunOnce(t); got != 0 {
		t.Fatalf("claim while the dead worker's lease holds: got %d entries, want 0", got)
	}
	p.clock.Advance(order.DefaultExpiryLease)
	if got := heir.MustRunOnce(t); got != n {
		t.Fatalf("claim after the lease lapsed: got %d entries, want %d", got, n)
	}
	if due, claimed := queued(t, rdb, s.activity); due+claimed != 0 {
		t.Fatalf("after the retry: got %d due and %d claimed, want none", due, claimed)
	}
	if got := MustStock(t, p, s.activity); got != n {
		t.Fatalf("stock after the retry: got %d, want %d", got, n)
	}
	if got := statusCounts(t, p, s.activity); got["EXPIRED"] != n {
		t.Fatalf("statuses: got %v, want all %d EXPIRED", got, n)
	}
	for _, o := range s.orders {
		if got := heir.stock.releases[o.OrderID]; got != 1 {
			t.Fatalf("order %d: released %d times by the heir, want once", o.OrderID, got)
		}
	}
}

func TestAnOrderNotYetStoredIsRequeuedThenExpired(t *testing.T) {
	p := MustPlatform(t, func(c *app.Config) { c.ExpiryPoll = 10 * time.Millisecond })
	dueAt := p.clock.Now().Add(time.Minute)
	s := MustSeedDue(t, p, 1, dueAt, false)
	o := s.orders[0]
	rdb := MustRedis(t)
	member := strconv.FormatInt(o.OrderID, 10)
	requeuedAt := dueAt.Add(order.DefaultExpiryRequeueDelay)

	p.clock.Set(dueAt)
	MustEventually(t, 30*time.Second, func() (bool, string) {
		score, err := rdb.ZScore(context.Background(), invredis.ExpiryKey(s.activity), member).Result()
		return err == nil && int64(score) == requeuedAt.UnixMilli(),
			fmt.Sprintf("entry scored %v (%v), want requeued at %d", int64(score), err, requeuedAt.UnixMilli())
	})
	if got := MustStock(t, p, s.activity); got != 0 {
		t.Fatalf("stock while the order is not stored: got %d, want 0 (still reserved)", got)
	}

	// The consumer catches up after the deadline has passed.
	MustStore(t, p, o)
	p.clock.Set(requeuedAt)
	MustEventually(t, 30*time.Second, func() (bool, string) {
		st := MustStatus(t, p, o.OrderID, o.UserID)
		stock := MustStock(t, p, s.activity)
		return st.String() == "ORDER_STATUS_EXPIRED" && stock == 1, fmt.Sprintf("status %s, stock %d", st, stock)
	})
}

func TestEntriesWithNoOrderToComeAreSettled(t *testing.T) {
	p := MustPlatform(t, nil, app.WithoutExpiry())
	ctx := context.Background()
	rdb := MustRedis(t)
	const orphanAfter = time.Minute
	tests := []struct {
		name string
		// before runs before the clock moves; afterClaim right after
		// the worker's claim.
		before, afterClaim func(s seeded)
		advance            time.Duration
		// want: the entry is gone (true) or queued again (false); and
		// the reservation's stock is back.
		wantGone, wantReleased bool
	}{
		{name: "consumer behind: requeued", advance: 0, wantGone: false, wantReleased: false},
		{name: "released as unpublished while claimed: acknowledged", advance: 0,
			afterClaim: func(s seeded) {
				if _, err := p.inventory.Release(ctx, &inventoryv1.ReleaseRequest{
					ActivityId: s.activity, OrderId: s.orders[0].OrderID, Unpublished: true}); err != nil {
					t.Error(err)
				}
			}, wantGone: true, wantReleased: true},
		{name: "never published: released as unpublished after the grace", advance: orphanAfter,
			wantGone: true, wantReleased: true},
		// Issue 11.4: an accepted (202) order whose consumer lags far
		// behind is never given up, however long after its deadline.
		{name: "published but not stored yet: parked, stock kept", advance: 100 * orphanAfter,
			before: func(s seeded) {
				if err := orderredis.NewPending(rdb, "", 0).Put(ctx, s.orders[0]); err != nil {
					t.Error(err)
				}
			}, wantGone: false, wantReleased: false},
		{name: "marked ordered but never stored: parked, stock kept", advance: orphanAfter,
			before: func(s seeded) {
				if _, err := p.inventory.MarkOrdered(ctx, &inventoryv1.MarkOrderedRequest{Orders: []*inventoryv1.OrderRef{
					{ActivityId: s.activity, OrderId: s.orders[0].OrderID}}}); err != nil {
					t.Error(err)
				}
			}, wantGone: false, wantReleased: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dueAt := p.clock.Now().Add(time.Minute)
			s := MustSeedDue(t, p, 1, dueAt, false)
			if tt.before != nil {
				tt.before(s)
			}
			w := p.newWorker(s.activity, func(c *order.ExpirerConfig) { c.OrphanAfter = orphanAfter })
			if tt.afterClaim != nil {
				w.queue.afterClaim = func([]order.DueEntry) { tt.afterClaim(s) }
			}
			p.clock.Set(dueAt.Add(tt.advance))
			if got := w.MustRunOnce(t); got != 1 {
				t.Fatalf("claimed: got %d, want 1", got)
			}
			due, claimed := queued(t, rdb, s.activity)
			if gone := due+claimed == 0; gone != tt.wantGone || claimed != 0 {
				t.Fatalf("queue: got %d due and %d claimed, want gone %v and nothing claimed", due, claimed, tt.wantGone)
			}
			if got := MustStock(t, p, s.activity) == 1; got != tt.wantReleased {
				t.Fatalf("stock back: got %v, want %v", got, tt.wantReleased)
			}
			if n := w.stock.releases[s.orders[0].OrderID]; n != 0 {
				t.Fatalf("plain releases of an order never stored: got %d, want 0", n)
			}
		})
	}
}
