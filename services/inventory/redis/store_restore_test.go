package redis_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flashsale/flashsale/services/inventory"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

func TestRestoreLimitLetsTheBuyerBuyAgain(t *testing.T) {
	s, rdb := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 10, 2)
	MustReserve(t, s, request(act, 7, 2, 1, "k1"))
	if err := s.Confirm(ctx, act, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, request(act, 7, 1, 2, "k2")); !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Fatalf("reserve over the limit before the refund: %v, want ErrLimitExceeded", err)
	}
	for i, want := range []bool{true, false} {
		restored, err := s.RestoreLimit(ctx, act, 1, 99, 2)
		if err != nil || restored != want {
			t.Fatalf("restore #%d: got %v, %v; want %v", i+1, restored, err, want)
		}
	}
	if n, err := rdb.HExists(ctx, "{act:"+strconv.FormatInt(act, 10)+"}:bought", "7").Result(); err != nil || n {
		t.Errorf("bought entry of the buyer after restoring everything: %v (%v), want none", n, err)
	}
	stockBefore := MustStock(t, s, act)
	res := MustReserve(t, s, request(act, 7, 2, 3, "k3"))
	if res.OrderID != 3 || res.Replayed {
		t.Errorf("reserve after the refund: got %+v, want a fresh reservation of order 3", res)
	}
	if got := MustStock(t, s, act); got != stockBefore-2 {
		t.Errorf("stock: got %d, want %d (a refund gives the limit back, not the stock)", got, stockBefore-2)
	}
}

func TestRestoreLimitRefusals(t *testing.T) {
	nothing := func(*testing.T, *invredis.Store, int64) {}
	confirm := func(t *testing.T, s *invredis.Store, act int64) {
		if err := s.Confirm(context.Background(), act, 1); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, s *invredis.Store, act int64)
		order   int64
		qty     int64
		wantErr error
	}{
		{"unknown order", nothing, 5, 1, inventory.ErrReservationNotFound},
		{"reserved, not paid", nothing, 1, 1, inventory.ErrNotConfirmed},
		{"more units than reserved", confirm, 1, 3, inventory.ErrRestoreTooMany},
		{"released by expiry", func(t *testing.T, s *invredis.Store, act int64) {
			if _, err := s.Release(context.Background(), act, 1); err != nil {
				t.Fatal(err)
			}
		}, 1, 1, inventory.ErrNotConfirmed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := MustStore(t)
			act := MustPreheat(t, s, 10, 5)
			MustReserve(t, s, request(act, 7, 2, 1, "k"))
			tt.setup(t, s, act)
			if _, err := s.RestoreLimit(context.Background(), act, tt.order, 42, tt.qty); !errors.Is(err, tt.wantErr) {
				t.Errorf("restore: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRestoreLimitConcurrentRefundsNeverRestoreMoreThanReserved(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	act := MustPreheat(t, s, 100, 5)
	MustReserve(t, s, request(act, 7, 5, 1, "k"))
	if err := s.Confirm(ctx, act, 1); err != nil {
		t.Fatal(err)
	}
	// 40 refunds of one unit each, every refund id sent twice: five of
	// them find units to restore, the rest are refused or repeats.
	var restored atomic.Int64
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() {
			ok, err := s.RestoreLimit(ctx, act, 1, int64(1+i/2), 1)
			switch {
			case ok:
				restored.Add(1)
			case err != nil && !errors.Is(err, inventory.ErrRestoreTooMany):
				t.Errorf("restore: %v", err)
			}
		})
	}
	wg.Wait()
	if got := restored.Load(); got != 5 {
		t.Errorf("units restored: got %d, want 5", got)
	}
	if _, err := s.Reserve(ctx, request(act, 7, 5, 2, "k2")); err != nil {
		t.Errorf("reserve the whole limit again: %v", err)
	}
}

// A rebuild after Redis lost writes restores a fully refunded order's
// limit from its REFUNDED status; the refund that completed the order,
// still finishing (its money was being returned), then restores the
// limit: that is a repeat, not more units than reserved. Before, it was
// refused and counted as books that disagree.
func TestRestoreAfterARebuildThatRestoredIsARepeat(t *testing.T) {
	ctx := context.Background()
	s, rdb := MustStore(t)
	act := MustPreheat(t, s, 10, 2)
	MustReserve(t, s, request(act, 7, 2, 1, "k1"))
	if err := s.Confirm(ctx, act, 1); err != nil {
		t.Fatal(err)
	}
	must(t, rdb.Del(ctx, key(act, "live")).Err()) // Redis restarted: the sale is fenced
	if _, err := s.RebuildStock(ctx, inventory.Rebuild{ActivityID: act, Total: 10, PerUserLimit: 2, Orders: []inventory.HeldOrder{
		{OrderID: 1, UserID: 7, Quantity: 2, Status: inventory.StatusConfirmed, IdempotencyKey: "k1", ExpiresAt: deadline(), Restored: 2},
	}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if restored, err := s.RestoreLimit(ctx, act, 1, 99, 2); err != nil || restored {
			t.Fatalf("restore #%d after the rebuild: %v, %v; want a repeat (false, nil)", i+1, restored, err)
		}
	}
	if _, err := s.RestoreLimit(ctx, act, 1, 100, 1); !errors.Is(err, inventory.ErrRestoreTooMany) {
		t.Errorf("another refund's unit after all were restored: %v, want ErrRestoreTooMany", err)
	}
	MustReserve(t, s, request(act, 7, 2, 2, "k2")) // the buyer's whole limit is back, once
	if _, err := s.Reserve(ctx, request(act, 7, 1, 3, "k3")); !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Errorf("a third unit: %v, want ErrLimitExceeded (the limit was given back once)", err)
	}
}
