package postgres_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/product"
	"github.com/flashsale/flashsale/services/product/postgres"
)

// countingStore counts the reads of single rows that reach Postgres.
type countingStore struct {
	*postgres.Store
	reads atomic.Int64
}

func (s *countingStore) Product(ctx context.Context, id int64) (product.Product, error) {
	s.reads.Add(1)
	return s.Store.Product(ctx, id)
}

func (s *countingStore) Activity(ctx context.Context, id int64) (product.Activity, error) {
	s.reads.Add(1)
	return s.Store.Activity(ctx, id)
}

// TestUnknownIDsCostNoPostgresRead: once the Bloom filters are built from
// Postgres, 10,000 distinct product ids and 10,000 activity ids that do
// not exist are answered not found with no read of Postgres (but a
// handful of false positives, 0.1 % of them); the ids that exist,
// including one created after the build, are still read and found.
func TestUnknownIDsCostNoPostgresRead(t *testing.T) {
	pg, _ := MustStore(t)
	store := &countingStore{Store: pg}
	ctx := context.Background()
	existing := MustProduct(t, pg, 10)
	svc := product.NewService(product.Config{Store: store, Inventory: noInventory{t}, IDs: idGen{}, Clock: clock.Real{},
		ActivityTTL: time.Minute, StockTTL: time.Second, CatalogTTL: time.Minute})
	if err := svc.RebuildFilters(ctx); err != nil {
		t.Fatal(err)
	}
	for range 10_000 {
		id := newID() // never stored
		if _, err := svc.GetProduct(ctx, id); !errors.Is(err, product.ErrNotFound) {
			t.Fatalf("GetProduct(unknown %d) = %v, want ErrNotFound", id, err)
		}
		if _, err := svc.GetActivity(ctx, id); !errors.Is(err, product.ErrNotFound) {
			t.Fatalf("GetActivity(unknown %d) = %v, want ErrNotFound", id, err)
		}
	}
	if n := store.reads.Load(); n > 40 {
		t.Fatalf("20,000 unknown ids cost %d Postgres reads; want about 20 (the filters' false positives)", n)
	}
	t.Logf("20,000 unknown ids: %d Postgres reads (false positives)", store.reads.Load())
	before := store.reads.Load()
	created, err := svc.CreateProduct(ctx, product.Product{Title: "New", Price: 100, Stock: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{existing.SKUID, created.SKUID} {
		if _, err := svc.GetProduct(ctx, id); err != nil {
			t.Fatalf("GetProduct(%d) = %v", id, err)
		}
	}
	if n := store.reads.Load() - before; n != 2 {
		t.Fatalf("two products that exist cost %d reads, want 2", n)
	}
}

// idGen hands out the package's ids to the service.
type idGen struct{}

func (idGen) Next() int64 { return newID() }

// noInventory fails the test if asked: no unknown activity gets as far
// as its stock.
type noInventory struct{ t *testing.T }

func (n noInventory) Preheat(context.Context, int64, int64, int64, int) error {
	n.t.Error("inventory asked to preheat")
	return nil
}

func (n noInventory) Remaining(_ context.Context, id int64) (int64, error) {
	n.t.Errorf("inventory asked for the stock of activity %d", id)
	return 0, nil
}
