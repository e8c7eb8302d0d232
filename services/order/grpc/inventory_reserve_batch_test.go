package grpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/order"
	ordergrpc "github.com/flashsale/flashsale/services/order/grpc"
	"github.com/flashsale/flashsale/services/order/internal/servicetest"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{}, func(s *localstack.Stack) { stack = s })
}

// nextActivity gives every test an activity of its own on the shared
// Redis.
var nextActivity atomic.Int64

func init() { nextActivity.Store(time.Now().UnixMicro()) }

// batchWatch sees every ReserveBatch the client sends and can hold them
// back: while gate is open (nil) calls pass at once; a test closes the
// gate to keep the batcher's slots busy.
type batchWatch struct {
	mu      sync.Mutex
	calls   int
	largest int
	gate    chan struct{} // calls wait for it to be closed, when set
	held    chan struct{} // receives once per call that is waiting at the gate
	fail    error         // answered instead of sending, when set
	// answered counts the calls the inventory has answered.
	answered int
}

func (w *batchWatch) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	batch, ok := req.(*inventoryv1.ReserveBatchRequest)
	if !ok {
		return invoke(ctx, method, req, reply, cc, opts...)
	}
	w.mu.Lock()
	w.calls++
	w.largest = max(w.largest, len(batch.GetReservations()))
	gate, held, fail := w.gate, w.held, w.fail
	w.mu.Unlock()
	if gate != nil {
		held <- struct{}{}
		<-gate
	}
	if fail != nil {
		return fail
	}
	err := invoke(ctx, method, req, reply, cc, opts...)
	w.mu.Lock()
	w.answered++
	w.mu.Unlock()
	return err
}

// MustInventory runs the real inventory service and returns the order
// service's client of it, whose ReserveBatch calls w sees, and a plain
// client for checking the inventory's state.
func MustInventory(tb testing.TB, w *batchWatch) (*ordergrpc.Inventory, inventoryv1.InventoryServiceClient) {
	tb.Helper()
	addr := servicetest.MustInventory(tb, stack.RedisAddr)
	cc, err := rpc.Dial(addr, grpc.WithChainUnaryInterceptor(w.intercept))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return ordergrpc.NewInventory(cc), inventoryv1.NewInventoryServiceClient(localstack.MustDial(tb, addr))
}

// MustPreheat preheats a fresh activity and returns its id.
func MustPreheat(tb testing.TB, inv inventoryv1.InventoryServiceClient, stock, limit int64) int64 {
	tb.Helper()
	id := nextActivity.Add(1)
	if _, err := inv.Preheat(context.Background(), &inventoryv1.PreheatRequest{ActivityId: id, Stock: stock, PerUserLimit: limit}); err != nil {
		tb.Fatal(err)
	}
	return id
}

func reservation(activity, user, orderID int64) order.Reservation {
	return order.Reservation{ActivityID: activity, UserID: user, Quantity: 1, OrderID: orderID,
		IdempotencyKey: "k", ExpiresAt: time.Now().Add(15 * time.Minute)}
}

// A stampede of buys shares calls, and each buy still gets its own
// answer: the stock's worth of fresh reservations under their own order
// ids, the rest sold out, nothing oversold.
func TestConcurrentReservesShareBatches(t *testing.T) {
	var w batchWatch
	inv, raw := MustInventory(t, &w)
	const stock, buyers = 300, 2000
	act := MustPreheat(t, raw, stock, 1)

	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]order.Reserved, buyers)
	errs := make([]error, buyers)
	for i := range buyers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = inv.Reserve(context.Background(), reservation(act, int64(i+1), int64(1_000_000+i)))
		})
	}
	close(start)
	wg.Wait()

	reserved := 0
	for i := range buyers {
		switch {
		case errs[i] == nil:
			reserved++
			if results[i].OrderID != int64(1_000_000+i) || results[i].Replayed {
				t.Errorf("buyer %d: got %+v, want a fresh reservation of its own order", i+1, results[i])
			}
		case !errors.Is(errs[i], order.ErrSoldOut):
			t.Fatalf("buyer %d: %v", i+1, errs[i])
		}
	}
	if reserved != stock {
		t.Errorf("reserved: got %d, want %d", reserved, stock)
	}
	left, err := raw.GetStock(context.Background(), &inventoryv1.GetStockRequest{ActivityId: act})
	if err != nil || left.GetRemaining() != 0 {
		t.Errorf("stock left: got %v, %v; want 0", left, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls >= buyers || w.largest < 2 {
		t.Errorf("%d buys went in %d calls, the largest of %d; want them to share calls", buyers, w.calls, w.largest)
	}
}

// holdBothSlots starts two buys (users 1 and 2, orders 100 and 101) that
// take both of the batcher's slots and returns once both are held at w's
// gate; their answers arrive on the channel when the gate opens.
func holdBothSlots(inv *ordergrpc.Inventory, w *batchWatch, act int64) <-chan error {
	onWire := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := inv.Reserve(context.Background(), reservation(act, int64(i+1), int64(100+i)))
			onWire <- err
		}()
		<-w.held
	}
	return onWire
}

// queueBuy starts a buy under ctx and returns the channel of its answer.
func queueBuy(ctx context.Context, inv *ordergrpc.Inventory, act, user, orderID int64) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := inv.Reserve(ctx, reservation(act, user, orderID))
		out <- err
	}()
	return out
}

// A buy whose caller gives up while it waits for a free slot is never
// sent, so nothing is reserved for an order its caller has already
// given back; the buys on the wire are answered as usual.
func TestReserveGivenUpBeforeItsBatchLeftIsNeverSent(t *testing.T) {
	w := batchWatch{gate: make(chan struct{}), held: make(chan struct{})}
	inv, raw := MustInventory(t, &w)
	act := MustPreheat(t, raw, 10, 1)
	ctx := context.Background()

	onWire := holdBothSlots(inv, &w, act)
	// A third waits for a slot, and its caller gives up.
	gone, giveUp := context.WithCancel(ctx)
	third := queueBuy(gone, inv, act, 3, 102)
	time.Sleep(50 * time.Millisecond) // let it queue; it must not leave
	giveUp()
	if err := <-third; !errors.Is(err, order.ErrUnavailable) {
		t.Fatalf("buy given up: got %v, want ErrUnavailable", err)
	}

	w.mu.Lock()
	gate := w.gate
	w.gate = nil
	w.mu.Unlock()
	close(gate)
	for range 2 {
		if err := <-onWire; err != nil {
			t.Errorf("buy on the wire: %v", err)
		}
	}
	_, err := raw.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: 102})
	if status.Code(err) != codes.NotFound {
		t.Errorf("reservation of the buy given up: got %v, want NOT_FOUND (never sent)", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls != 2 {
		t.Errorf("ReserveBatch calls: got %d, want 2 (the given-up buy never leaves)", w.calls)
	}
}

// Buys that arrive with their context already ended are refused without
// a call, and must not keep the slots they took: after more of them than
// there are slots, a live buy still goes out.
func TestEndedBuysLeaveTheSlotsFree(t *testing.T) {
	var w batchWatch
	inv, raw := MustInventory(t, &w)
	act := MustPreheat(t, raw, 10, 1)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 5 {
		if _, err := inv.Reserve(ended, reservation(act, int64(i+1), int64(300+i))); !errors.Is(err, order.ErrUnavailable) {
			t.Fatalf("buy with an ended context: got %v, want ErrUnavailable", err)
		}
	}
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if got, err := inv.Reserve(ctx, reservation(act, 9, 399)); err != nil || got.OrderID != 399 {
		t.Fatalf("live buy after ended ones: got %+v, %v; want order 399 reserved", got, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls != 1 {
		t.Errorf("ReserveBatch calls: got %d, want 1 (ended buys are never sent)", w.calls)
	}
}

// When the call fails as a whole, every buy in it hears the failure as
// one that may or may not have reserved (so the order service releases
// it), never as a refusal.
func TestFailedBatchFailsEveryBuyInIt(t *testing.T) {
	w := batchWatch{fail: status.Error(codes.Unavailable, "connection reset")}
	inv, raw := MustInventory(t, &w)
	act := MustPreheat(t, raw, 10, 1)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := inv.Reserve(context.Background(), reservation(act, int64(i+1), int64(200+i)))
			if !errors.Is(err, order.ErrUnavailable) {
				t.Errorf("buy %d in a failed call: got %v, want ErrUnavailable", i+1, err)
			}
		})
	}
	wg.Wait()
}

// The interleaving of issue 11.2: a buy waits for a free slot, its batch
// leaves (sent by the batcher, not by its caller), and while it is on the
// wire the buy's deadline passes; the buy gives up and releases its order
// as unpublished, and that release reaches Redis before the batch. The
// release finds nothing and leaves a tombstone, so the batch's
// reservation, landing after it, holds nothing: the unit stays for sale,
// the buyer's limit stays free and a new attempt reserves at once.
func TestReleaseThatOvertakesItsReservationLeavesNothingHeld(t *testing.T) {
	first := make(chan struct{})
	w := batchWatch{gate: first, held: make(chan struct{})}
	inv, raw := MustInventory(t, &w)
	act := MustPreheat(t, raw, 3, 1)
	ctx := context.Background()

	onWire := holdBothSlots(inv, &w, act)
	// A third waits for a slot.
	deadline, cancel := context.WithCancel(ctx)
	buy := queueBuy(deadline, inv, act, 7, 700)
	time.Sleep(50 * time.Millisecond) // let it queue
	// The first two land; the third's batch leaves and is held.
	second := make(chan struct{})
	w.mu.Lock()
	w.gate = second
	w.mu.Unlock()
	close(first)
	for range 2 {
		if err := <-onWire; err != nil {
			t.Fatalf("buy on the wire: %v", err)
		}
	}
	<-w.held
	cancel() // the third buyer's deadline passes while its batch is out
	if err := <-buy; !errors.Is(err, order.ErrUnavailable) {
		t.Fatalf("buy whose deadline passed: got %v, want ErrUnavailable", err)
	}
	if err := inv.ReleaseUnpublished(ctx, act, 700); err != nil {
		t.Fatalf("release as unpublished before the reservation arrived: %v, want success (nothing held)", err)
	}
	w.mu.Lock()
	w.gate = nil
	w.mu.Unlock()
	close(second) // now its batch lands
	waitForBatches(t, &w, 3)

	if _, err := raw.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: 700}); status.Code(err) != codes.NotFound {
		t.Errorf("reservation of the given-up order: %v, want NOT_FOUND", err)
	}
	left, err := raw.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: act})
	if err != nil || left.GetRemaining() != 1 {
		t.Errorf("stock after the late reservation: %v, %v; want 1 (3 less the 2 bought)", left, err)
	}
	// The buyer tries again (a new attempt, a new order id): its limit of
	// 1 is free.
	if res, err := inv.Reserve(ctx, reservation(act, 7, 701)); err != nil || res.OrderID != 701 || res.Replayed {
		t.Errorf("the buyer's next attempt: %+v, %v; want order 701 reserved", res, err)
	}
}

// waitForBatches waits until the inventory has answered n ReserveBatch
// calls.
func waitForBatches(tb testing.TB, w *batchWatch, n int) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		done := w.answered >= n
		w.mu.Unlock()
		if done {
			return
		}
	}
	tb.Fatalf("%d batches not answered within 10s", n)
}

// TestFencedSaleIsADefiniteRefusal: a reservation of a fenced sale (Redis
// restarted and its stock waits to be rebuilt) comes back as
// order.ErrSaleFenced, a definite answer, not as a failed call: the order
// service then does not release (and leave a tombstone for) an order
// that reserved nothing, once for every buy of a spike.
func TestFencedSaleIsADefiniteRefusal(t *testing.T) {
	inv, raw := MustInventory(t, &batchWatch{})
	act := MustPreheat(t, raw, 10, 1)
	rdb := goredis.NewClient(&goredis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Del(ctx, fmt.Sprintf("{act:%d}:live", act)).Err(); err != nil { // what a restart does
		t.Fatal(err)
	}
	_, err := inv.Reserve(ctx, reservation(act, 1, 100))
	if !errors.Is(err, order.ErrSaleFenced) || errors.Is(err, order.ErrUnavailable) {
		t.Fatalf("reserve from a fenced sale: %v, want ErrSaleFenced (and not the ambiguous ErrUnavailable)", err)
	}
}
