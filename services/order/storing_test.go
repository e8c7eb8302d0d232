package order_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/order"
)

// batchWorld is what StoreBatch runs against: an inventory that answers
// each order's outcome, a writer that stores by id and reports a key
// already held as a conflict, and the pending records.
type batchWorld struct {
	mu        sync.Mutex
	outcomes  map[int64]order.MarkOutcome // by order id; MarkStore when missing
	markFails int                         // how many MarkOrdered calls fail first
	marks     int
	keys      map[string]int64 // idempotency key -> stored order id
	stored    map[int64]order.Order
	deleted   []int64
	// unstorable: orders the store refuses (ErrInvalid), failing the
	// whole transaction that holds one.
	unstorable map[int64]bool
}

func newBatchWorld() *batchWorld {
	return &batchWorld{outcomes: map[int64]order.MarkOutcome{}, keys: map[string]int64{}, stored: map[int64]order.Order{}}
}

func (w *batchWorld) MarkOrdered(_ context.Context, ps []order.Placed) ([]order.MarkOutcome, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks++
	if w.markFails > 0 {
		w.markFails--
		return nil, errors.New("inventory unreachable")
	}
	out := make([]order.MarkOutcome, len(ps))
	for i, p := range ps {
		out[i] = order.MarkStore
		if o, ok := w.outcomes[p.OrderID]; ok {
			out[i] = o
		}
	}
	return out, nil
}

func (w *batchWorld) Insert(_ context.Context, orders []order.Order) (int, []order.Order, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range orders {
		if w.unstorable[o.ID] {
			return 0, nil, fmt.Errorf("insert orders: %w: new row violates check constraint", order.ErrInvalid)
		}
	}
	n := 0
	var conflicts []order.Order
	for _, o := range orders {
		if id, ok := w.keys[o.IdempotencyKey]; ok && id != o.ID {
			conflicts = append(conflicts, o)
			continue
		}
		if _, ok := w.stored[o.ID]; !ok {
			n++
		}
		w.keys[o.IdempotencyKey], w.stored[o.ID] = o.ID, o
	}
	return n, conflicts, nil
}

func (w *batchWorld) Delete(_ context.Context, ps ...order.Placed) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		w.deleted = append(w.deleted, p.OrderID)
	}
	return nil
}

func (w *batchWorld) storing() *order.Storing {
	return order.NewStoring(order.StoringConfig{Inventory: w, Orders: w, Pending: w,
		Retry: order.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
}

func placedOrder(id int64, key string) order.Placed {
	return order.Placed{OrderID: id, LineID: id + 1, UserID: 42, ActivityID: 7, SKUID: 70, Quantity: 1,
		UnitPrice: 990, IdempotencyKey: key, CreatedAt: start, ExpiresAt: start.Add(15 * time.Minute)}
}

func TestStoreBatchStoresWhatTheInventoryMarksAndRefusesTheRest(t *testing.T) {
	w := newBatchWorld()
	w.keys["taken"] = 99 // another order holds this key already
	w.outcomes[2] = order.MarkReleasedUnpublished
	w.outcomes[3] = order.MarkNoReservation
	batch := []order.Placed{placedOrder(1, "a"), placedOrder(2, "b"), placedOrder(3, "c"), placedOrder(4, "taken")}
	st := w.storing()
	ctx := context.Background()
	for round := range 2 { // a batch delivered again is stored once and refused the same way
		got, err := st.StoreBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 - round; got.Stored != want {
			t.Fatalf("round %d: stored %d, want %d", round, got.Stored, want)
		}
		var why []string
		for _, r := range got.Refused {
			why = append(why, r.Why.String()+"@"+r.Placed.IdempotencyKey)
		}
		want := []string{"reservation released as unpublished@b", "no reservation@c", "idempotency key of another order@taken"}
		if !slices.Equal(why, want) {
			t.Fatalf("round %d: refused %v, want %v", round, why, want)
		}
	}
	if o, ok := w.stored[1]; !ok || o.Status != order.StatusPendingPayment || len(w.stored) != 1 {
		t.Fatalf("stored %v, want only order 1 PENDING_PAYMENT", w.stored)
	}
	// Every event's pending record goes, stored or refused.
	if slices.Sort(w.deleted); !slices.Equal(w.deleted, []int64{1, 1, 2, 2, 3, 3, 4, 4}) {
		t.Fatalf("deleted pending records %v", w.deleted)
	}
}

// An event the store refuses whatever the retry (a value Postgres cannot
// hold, a CHECK it fails) does not hold back the orders of its batch, nor
// those behind it on its partition: the batch is stored one order at a
// time, and the bad one is refused as unstorable, for the dead-letter
// topic. From a review: the insert was retried until the process
// stopped, and the consumer stored nothing more.
func TestStoreBatchSetsAsideAnOrderTheStoreRefuses(t *testing.T) {
	w := newBatchWorld()
	w.unstorable = map[int64]bool{2: true}
	batch := []order.Placed{placedOrder(1, "a"), placedOrder(2, "b"), placedOrder(3, "c")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := w.storing().StoreBatch(ctx, batch)
	if err != nil {
		t.Fatalf("store batch: %v, want the good orders stored and the bad one refused", err)
	}
	if got.Stored != 2 || len(w.stored) != 2 || len(got.Refused) != 1 {
		t.Fatalf("stored %d (%v), refused %+v; want orders 1 and 3 stored, 2 refused", got.Stored, w.stored, got.Refused)
	}
	if r := got.Refused[0]; r.Placed.OrderID != 2 || r.Why != order.RefusedUnstorable || !errors.Is(r.Err, order.ErrInvalid) {
		t.Fatalf("refused %+v, want order 2 unstorable with the store's reason", r)
	}
}

func TestStoreBatchRetriesTheMarkAndStoresNothingUnmarked(t *testing.T) {
	w := newBatchWorld()
	w.markFails = 2
	got, err := w.storing().StoreBatch(context.Background(), []order.Placed{placedOrder(1, "a")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Stored != 1 || w.marks != 3 {
		t.Fatalf("stored %d after %d marks, want 1 after 3", got.Stored, w.marks)
	}

	// A stop while the inventory cannot mark fails the batch with nothing
	// stored and no pending record touched.
	w = newBatchWorld()
	w.markFails = 1 << 30
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := w.storing().StoreBatch(ctx, []order.Placed{placedOrder(1, "a")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the stop", err)
	}
	if len(w.stored)+len(w.deleted) != 0 {
		t.Fatalf("a batch that was never marked stored %d orders and deleted %d records", len(w.stored), len(w.deleted))
	}
}
