package inventory_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/inventory"
)

var deadline = time.Date(2026, 11, 11, 0, 15, 0, 0, time.UTC)

func validRequest() inventory.ReserveRequest {
	return inventory.ReserveRequest{
		ActivityID: 1, UserID: 2, Quantity: 1, OrderID: 3, IdempotencyKey: "key", ExpiresAt: deadline,
	}
}

func TestReserveRequestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *inventory.ReserveRequest)
		valid  bool
	}{
		{"valid", func(r *inventory.ReserveRequest) {}, true},
		{"zero activity", func(r *inventory.ReserveRequest) { r.ActivityID = 0 }, false},
		{"negative user", func(r *inventory.ReserveRequest) { r.UserID = -1 }, false},
		{"zero order", func(r *inventory.ReserveRequest) { r.OrderID = 0 }, false},
		{"zero quantity", func(r *inventory.ReserveRequest) { r.Quantity = 0 }, false},
		{"max quantity", func(r *inventory.ReserveRequest) { r.Quantity = inventory.MaxQuantity }, true},
		{"quantity above max", func(r *inventory.ReserveRequest) { r.Quantity = inventory.MaxQuantity + 1 }, false},
		{"empty key", func(r *inventory.ReserveRequest) { r.IdempotencyKey = "" }, false},
		{"128-char key", func(r *inventory.ReserveRequest) { r.IdempotencyKey = strings.Repeat("k", 128) }, true},
		{"129-char key", func(r *inventory.ReserveRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }, false},
		{"key with space and symbols", func(r *inventory.ReserveRequest) { r.IdempotencyKey = "a b:c/~" }, true},
		{"key with newline", func(r *inventory.ReserveRequest) { r.IdempotencyKey = "a\nb" }, false},
		{"key with non-ASCII", func(r *inventory.ReserveRequest) { r.IdempotencyKey = "ключ" }, false},
		{"missing deadline", func(r *inventory.ReserveRequest) { r.ExpiresAt = time.Time{} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.modify(&r)
			err := r.Validate()
			if got := err == nil; got != tt.valid {
				t.Fatalf("valid: got %v (%v), want %v", got, err, tt.valid)
			}
			if err != nil && !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("err: got %v, want ErrInvalid", err)
			}
		})
	}
}

// recordingStore counts the calls that reach it.
type recordingStore struct {
	calls    int
	reserved []inventory.ReserveRequest // what ReserveBatch was given
	released []inventory.OrderRef       // what ReleaseBatch was given
}

func (s *recordingStore) Preheat(context.Context, int64, int64, int64, int) (int64, error) {
	s.calls++
	return 0, nil
}

func (s *recordingStore) Reserve(context.Context, inventory.ReserveRequest) (inventory.ReserveResult, error) {
	s.calls++
	return inventory.ReserveResult{}, nil
}

// ReserveBatch answers each request with its own order id.
func (s *recordingStore) ReserveBatch(_ context.Context, rs []inventory.ReserveRequest) ([]inventory.ReserveAnswer, error) {
	s.calls++
	s.reserved = append(s.reserved, rs...)
	out := make([]inventory.ReserveAnswer, len(rs))
	for i, r := range rs {
		out[i].Result.OrderID = r.OrderID
	}
	return out, nil
}

func (s *recordingStore) Release(context.Context, int64, int64) (bool, error) {
	s.calls++
	return true, nil
}

func (s *recordingStore) ReleaseUnpublished(context.Context, int64, int64) (bool, error) {
	s.calls++
	return true, nil
}

func (s *recordingStore) ReleaseBatch(_ context.Context, refs []inventory.OrderRef) ([]inventory.ReleaseAnswer, error) {
	s.calls++
	s.released = append(s.released, refs...)
	out := make([]inventory.ReleaseAnswer, len(refs))
	for i := range out {
		out[i].Released = true
	}
	return out, nil
}

func (s *recordingStore) MarkOrdered(_ context.Context, refs []inventory.OrderRef) ([]inventory.MarkOutcome, error) {
	s.calls++
	return make([]inventory.MarkOutcome, len(refs)), nil
}

func (s *recordingStore) Confirm(context.Context, int64, int64) error {
	s.calls++
	return nil
}

func (s *recordingStore) Stock(context.Context, int64) (inventory.Stock, error) {
	s.calls++
	return inventory.Stock{}, nil
}

func (s *recordingStore) Reservation(context.Context, int64, int64) (inventory.Reservation, error) {
	s.calls++
	return inventory.Reservation{}, nil
}

func (s *recordingStore) RestoreLimit(context.Context, int64, int64, int64, int64) (bool, error) {
	s.calls++
	return true, nil
}

func (s *recordingStore) ClaimDue(context.Context, []int64, time.Time, int, time.Time) ([]inventory.DueEntry, error) {
	s.calls++
	return nil, nil
}

func (s *recordingStore) SettleDue(_ context.Context, entries []inventory.DueEntry, _ time.Time) ([]bool, error) {
	s.calls++
	return make([]bool, len(entries)), nil
}

func (s *recordingStore) Fenced(context.Context) ([]int64, error) {
	s.calls++
	return nil, nil
}

func (s *recordingStore) RebuildStock(context.Context, inventory.Rebuild) (inventory.RebuildResult, error) {
	s.calls++
	return inventory.RebuildResult{Rebuilt: true}, nil
}

// rebuild returns a valid rebuild of n orders, changed by edit.
func rebuild(n int, edit func(r *inventory.Rebuild)) inventory.Rebuild {
	r := inventory.Rebuild{ActivityID: 1, Total: 10, PerUserLimit: 2}
	for i := range n {
		r.Orders = append(r.Orders, inventory.HeldOrder{OrderID: int64(i + 1), UserID: 7, Quantity: 1,
			Status: inventory.StatusReserved, IdempotencyKey: "k" + strconv.Itoa(i), ExpiresAt: deadline})
	}
	if edit != nil {
		edit(&r)
	}
	return r
}

// dueEntries returns n valid claimed entries.
func dueEntries(n int) []inventory.DueEntry {
	out := make([]inventory.DueEntry, n)
	for i := range out {
		out[i] = inventory.DueEntry{ActivityID: 1, OrderID: int64(i + 1), DueAt: deadline, LeaseUntil: deadline.Add(time.Minute)}
	}
	return out
}

// refs returns n valid order references.
func refs(n int) []inventory.OrderRef {
	out := make([]inventory.OrderRef, n)
	for i := range out {
		out[i] = inventory.OrderRef{ActivityID: 1, OrderID: int64(i + 1)}
	}
	return out
}

func TestMarkOrderedOfNothingSkipsTheStore(t *testing.T) {
	store := &recordingStore{}
	got, err := inventory.NewService(store).MarkOrdered(context.Background(), nil)
	if err != nil || len(got) != 0 || store.calls != 0 {
		t.Fatalf("mark nothing: got %v, %v and %d store calls; want no outcomes, no error, no call", got, err, store.calls)
	}
}

// An invalid request in a batch is refused on its own: the store sees
// only the valid ones, and every answer stays at its request's place.
func TestReserveBatchRefusesInvalidRequestsAlone(t *testing.T) {
	reqs := make([]inventory.ReserveRequest, 4)
	for i := range reqs {
		reqs[i] = validRequest()
		reqs[i].OrderID = int64(100 + i)
	}
	reqs[1].Quantity = 0
	reqs[3].IdempotencyKey = ""
	store := &recordingStore{}
	got, err := inventory.NewService(store).ReserveBatch(context.Background(), reqs)
	if err != nil {
		t.Fatalf("batch with invalid requests: %v, want answers", err)
	}
	if len(store.reserved) != 2 || store.reserved[0].OrderID != 100 || store.reserved[1].OrderID != 102 {
		t.Fatalf("store got %+v, want the valid orders 100 and 102", store.reserved)
	}
	for i, a := range got {
		invalid := i == 1 || i == 3
		switch {
		case invalid && !errors.Is(a.Err, inventory.ErrInvalid):
			t.Errorf("answer %d: got %v, want ErrInvalid", i, a.Err)
		case !invalid && (a.Err != nil || a.Result.OrderID != reqs[i].OrderID):
			t.Errorf("answer %d: got %+v, want order %d", i, a, reqs[i].OrderID)
		}
	}
}

// An invalid reference in a release batch fails on its own, as in a
// reservation batch.
func TestReleaseBatchRefusesInvalidReferencesAlone(t *testing.T) {
	in := refs(4)
	in[2].ActivityID = 0
	store := &recordingStore{}
	got, err := inventory.NewService(store).ReleaseBatch(context.Background(), in)
	if err != nil {
		t.Fatalf("batch with an invalid reference: %v, want answers", err)
	}
	if len(store.released) != 3 || store.released[2] != in[3] {
		t.Fatalf("store got %+v, want the three valid references", store.released)
	}
	for i, a := range got {
		if invalid := i == 2; invalid != errors.Is(a.Err, inventory.ErrInvalid) || invalid == a.Released {
			t.Errorf("answer %d = %+v, want invalid %v", i, a, invalid)
		}
	}
}

func TestServiceValidatesBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func(s *inventory.Service) error
		valid bool
	}{
		{"preheat", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, 100, 1, 1); return err }, true},
		{"preheat zero stock", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, 0, 1, 1); return err }, true},
		{"preheat zero activity", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 0, 100, 1, 1); return err }, false},
		{"preheat negative stock", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, -1, 1, 1); return err }, false},
		{"preheat stock above max", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, inventory.MaxStock+1, 1, 1); return err }, false},
		{"preheat zero limit", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, 100, 0, 1); return err }, false},
		{"preheat in four buckets", func(s *inventory.Service) error { _, err := s.Preheat(ctx, 1, 100, 1, 4); return err }, true},
		{"preheat in too many buckets", func(s *inventory.Service) error {
			_, err := s.Preheat(ctx, 1, 100, 1, inventory.MaxBuckets+1)
			return err
		}, false},
		{"reserve", func(s *inventory.Service) error { _, err := s.Reserve(ctx, validRequest()); return err }, true},
		{"rebuild", func(s *inventory.Service) error { _, err := s.RebuildStock(ctx, rebuild(3, nil)); return err }, true},
		{"rebuild of nothing", func(s *inventory.Service) error { _, err := s.RebuildStock(ctx, rebuild(0, nil)); return err }, true},
		{"rebuild zero activity", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(1, func(r *inventory.Rebuild) { r.ActivityID = 0 }))
			return err
		}, false},
		{"rebuild zero limit", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(1, func(r *inventory.Rebuild) { r.PerUserLimit = 0 }))
			return err
		}, false},
		{"rebuild an order twice", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(2, func(r *inventory.Rebuild) { r.Orders[1].OrderID = 1 }))
			return err
		}, false},
		{"rebuild unknown status", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(1, func(r *inventory.Rebuild) { r.Orders[0].Status = "PAID" }))
			return err
		}, false},
		{"rebuild more restored than held", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(1, func(r *inventory.Rebuild) { r.Orders[0].Restored = 2 }))
			return err
		}, false},
		{"rebuild without key", func(s *inventory.Service) error {
			_, err := s.RebuildStock(ctx, rebuild(1, func(r *inventory.Rebuild) { r.Orders[0].IdempotencyKey = "" }))
			return err
		}, false},
		{"reserve invalid", func(s *inventory.Service) error {
			r := validRequest()
			r.Quantity = 0
			_, err := s.Reserve(ctx, r)
			return err
		}, false},
		{"reserve batch", func(s *inventory.Service) error {
			_, err := s.ReserveBatch(ctx, slices.Repeat([]inventory.ReserveRequest{validRequest()}, inventory.MaxReserveBatch))
			return err
		}, true},
		{"reserve batch too long", func(s *inventory.Service) error {
			_, err := s.ReserveBatch(ctx, slices.Repeat([]inventory.ReserveRequest{validRequest()}, inventory.MaxReserveBatch+1))
			return err
		}, false},
		{"reserve batch empty", func(s *inventory.Service) error { _, err := s.ReserveBatch(ctx, nil); return err }, false},
		{"release", func(s *inventory.Service) error { _, err := s.Release(ctx, 1, 2); return err }, true},
		{"release zero order", func(s *inventory.Service) error { _, err := s.Release(ctx, 1, 0); return err }, false},
		{"release batch", func(s *inventory.Service) error {
			_, err := s.ReleaseBatch(ctx, refs(inventory.MaxReleaseBatch))
			return err
		}, true},
		{"release batch too long", func(s *inventory.Service) error {
			_, err := s.ReleaseBatch(ctx, refs(inventory.MaxReleaseBatch+1))
			return err
		}, false},
		{"release batch empty", func(s *inventory.Service) error { _, err := s.ReleaseBatch(ctx, nil); return err }, false},
		{"release unpublished", func(s *inventory.Service) error { _, err := s.ReleaseUnpublished(ctx, 1, 2); return err }, true},
		{"release unpublished zero activity", func(s *inventory.Service) error { _, err := s.ReleaseUnpublished(ctx, 0, 2); return err }, false},
		{"mark ordered", func(s *inventory.Service) error {
			_, err := s.MarkOrdered(ctx, refs(inventory.MaxMarkOrdered))
			return err
		}, true},
		{"mark ordered too many", func(s *inventory.Service) error {
			_, err := s.MarkOrdered(ctx, refs(inventory.MaxMarkOrdered+1))
			return err
		}, false},
		{"mark ordered zero order id", func(s *inventory.Service) error {
			r := refs(3)
			r[2].OrderID = 0
			_, err := s.MarkOrdered(ctx, r)
			return err
		}, false},
		{"mark ordered negative activity", func(s *inventory.Service) error {
			r := refs(3)
			r[0].ActivityID = -1
			_, err := s.MarkOrdered(ctx, r)
			return err
		}, false},
		{"confirm", func(s *inventory.Service) error { return s.Confirm(ctx, 1, 2) }, true},
		{"confirm zero activity", func(s *inventory.Service) error { return s.Confirm(ctx, 0, 2) }, false},
		{"stock", func(s *inventory.Service) error { _, err := s.Stock(ctx, 1); return err }, true},
		{"stock negative activity", func(s *inventory.Service) error { _, err := s.Stock(ctx, -5); return err }, false},
		{"reservation", func(s *inventory.Service) error { _, err := s.Reservation(ctx, 1, 2); return err }, true},
		{"reservation zero order", func(s *inventory.Service) error { _, err := s.Reservation(ctx, 1, 0); return err }, false},
		{"restore limit", func(s *inventory.Service) error { _, err := s.RestoreLimit(ctx, 1, 2, 3, 1); return err }, true},
		{"restore limit zero refund", func(s *inventory.Service) error { _, err := s.RestoreLimit(ctx, 1, 2, 0, 1); return err }, false},
		{"restore limit zero quantity", func(s *inventory.Service) error { _, err := s.RestoreLimit(ctx, 1, 2, 3, 0); return err }, false},
		{"claim due", func(s *inventory.Service) error {
			_, err := s.ClaimDue(ctx, nil, deadline, inventory.MaxDueEntries, time.Minute)
			return err
		}, true},
		{"claim due in named activities", func(s *inventory.Service) error {
			_, err := s.ClaimDue(ctx, []int64{1, 2}, deadline, 1, time.Millisecond)
			return err
		}, true},
		{"claim due zero activity", func(s *inventory.Service) error {
			_, err := s.ClaimDue(ctx, []int64{1, 0}, deadline, 10, time.Minute)
			return err
		}, false},
		{"claim due without now", func(s *inventory.Service) error {
			_, err := s.ClaimDue(ctx, nil, time.Time{}, 10, time.Minute)
			return err
		}, false},
		{"claim due zero limit", func(s *inventory.Service) error { _, err := s.ClaimDue(ctx, nil, deadline, 0, time.Minute); return err }, false},
		{"claim due limit above max", func(s *inventory.Service) error {
			_, err := s.ClaimDue(ctx, nil, deadline, inventory.MaxDueEntries+1, time.Minute)
			return err
		}, false},
		{"claim due without lease", func(s *inventory.Service) error { _, err := s.ClaimDue(ctx, nil, deadline, 10, 0); return err }, false},
		{"ack due", func(s *inventory.Service) error {
			_, err := s.AckDue(ctx, dueEntries(inventory.MaxDueEntries))
			return err
		}, true},
		{"ack due too many", func(s *inventory.Service) error {
			_, err := s.AckDue(ctx, dueEntries(inventory.MaxDueEntries+1))
			return err
		}, false},
		{"ack due without lease", func(s *inventory.Service) error {
			e := dueEntries(2)
			e[1].LeaseUntil = time.Time{}
			_, err := s.AckDue(ctx, e)
			return err
		}, false},
		{"requeue due", func(s *inventory.Service) error { _, err := s.RequeueDue(ctx, dueEntries(3), deadline); return err }, true},
		{"requeue due zero order", func(s *inventory.Service) error {
			e := dueEntries(3)
			e[0].OrderID = 0
			_, err := s.RequeueDue(ctx, e, deadline)
			return err
		}, false},
		{"requeue due without due time", func(s *inventory.Service) error { _, err := s.RequeueDue(ctx, dueEntries(3), time.Time{}); return err }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recordingStore{}
			err := tt.call(inventory.NewService(store))
			wantCalls := 0
			if tt.valid {
				wantCalls = 1
			}
			if store.calls != wantCalls {
				t.Errorf("store calls: got %d, want %d", store.calls, wantCalls)
			}
			if tt.valid && err != nil {
				t.Errorf("err: got %v, want nil", err)
			}
			if !tt.valid && !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("err: got %v, want ErrInvalid", err)
			}
		})
	}
}
