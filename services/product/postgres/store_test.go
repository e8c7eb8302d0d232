package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/ids"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/services/product"
	"github.com/flashsale/flashsale/services/product/postgres"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"products", "products_plans"}}, func(s *localstack.Stack) { stack = s })
}

// gen hands out ids distinct across the tests of this package.
var gen, _ = ids.NewGenerator(ids.SpaceProduct, 1, clock.Real{})

func newID() int64 { return gen.Next() }

// MustStore returns a store on the migrated test database.
func MustStore(tb testing.TB) (*postgres.Store, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	pool, err := pgplatform.Dial(ctx, stack.PostgresURL("products"), 60)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := pgplatform.Migrate(ctx, pool, postgres.Migrations); err != nil {
		tb.Fatal(err)
	}
	return postgres.New(pool), pool
}

// MustProduct creates a product with stock units.
func MustProduct(tb testing.TB, s *postgres.Store, stock int64) product.Product {
	tb.Helper()
	p := product.Product{SKUID: newID(), Title: "Phone", Price: 199_00, Stock: stock}
	if err := s.CreateProduct(context.Background(), p); err != nil {
		tb.Fatal(err)
	}
	return p
}

func activityOf(p product.Product, stock int64, starts time.Time) product.Activity {
	return product.Activity{ID: newID(), SKUID: p.SKUID, Price: 99_00, Stock: stock, PerUserLimit: 2,
		StartsAt: starts, EndsAt: starts.Add(time.Hour)}
}

func noPreheat(context.Context) error { return nil }

// MustStock returns the product's stock in the database.
func MustStock(tb testing.TB, s *postgres.Store, skuID int64) int64 {
	tb.Helper()
	p, err := s.Product(context.Background(), skuID)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Stock
}

func TestProductRoundTrip(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	want := MustProduct(t, s, 7)
	got, err := s.Product(ctx, want.SKUID)
	if err != nil || got != want {
		t.Fatalf("Product = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.Product(ctx, newID()); !errors.Is(err, product.ErrNotFound) {
		t.Fatalf("unknown product: err = %v, want ErrNotFound", err)
	}
}

func TestCreateActivityTakesStockAndRoundTrips(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	p := MustProduct(t, s, 100)
	a := activityOf(p, 40, time.Now().UTC().Truncate(time.Microsecond))
	a.ChallengeRequired = true
	preheated := 0
	if err := s.CreateActivity(ctx, a, func(context.Context) error { preheated++; return nil }); err != nil {
		t.Fatal(err)
	}
	if preheated != 1 {
		t.Fatalf("preheat called %d times, want 1", preheated)
	}
	if got := MustStock(t, s, p.SKUID); got != 60 {
		t.Fatalf("product stock = %d, want 60", got)
	}
	got, err := s.Activity(ctx, a.ID)
	want := a
	want.Title = p.Title
	if err != nil || got != want {
		t.Fatalf("Activity = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.Activity(ctx, newID()); !errors.Is(err, product.ErrNotFound) {
		t.Fatalf("unknown activity: err = %v, want ErrNotFound", err)
	}
}

func TestCreateActivityFailures(t *testing.T) {
	s, pool := MustStore(t)
	ctx := context.Background()
	errPreheat := errors.New("inventory down")
	tests := []struct {
		name    string
		sku     func(p product.Product) int64
		stock   int64
		preheat func(context.Context) error
		want    error
	}{
		{"more than the product has", func(p product.Product) int64 { return p.SKUID }, 11, noPreheat, product.ErrInsufficientStock},
		{"unknown product", func(product.Product) int64 { return newID() }, 1, noPreheat, product.ErrNotFound},
		{"preheat fails", func(p product.Product) int64 { return p.SKUID }, 5, func(context.Context) error { return errPreheat }, errPreheat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MustProduct(t, s, 10)
			a := activityOf(p, tt.stock, time.Now())
			a.SKUID = tt.sku(p)
			if err := s.CreateActivity(ctx, a, tt.preheat); !errors.Is(err, tt.want) {
				t.Fatalf("CreateActivity err = %v, want %v", err, tt.want)
			}
			if got := MustStock(t, s, p.SKUID); got != 10 {
				t.Fatalf("product stock = %d, want 10 (unchanged)", got)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM activities WHERE activity_id = $1`, a.ID).Scan(&n); err != nil || n != 0 {
				t.Fatalf("activity rows = %d (%v), want 0", n, err)
			}
		})
	}
}

// TestConcurrentCreateActivityNeverOversells races 50 activities of 30
// units each on a 1,000-unit product: exactly 33 fit.
func TestConcurrentCreateActivityNeverOversells(t *testing.T) {
	s, _ := MustStore(t)
	p := MustProduct(t, s, 1000)
	var ok, short atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := s.CreateActivity(context.Background(), activityOf(p, 30, time.Now()), noPreheat)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, product.ErrInsufficientStock):
				short.Add(1)
			default:
				t.Errorf("CreateActivity: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 33 || short.Load() != 17 {
		t.Fatalf("succeeded %d, insufficient %d; want 33 and 17", ok.Load(), short.Load())
	}
	if got := MustStock(t, s, p.SKUID); got != 10 {
		t.Fatalf("product stock = %d, want 10", got)
	}
}

func TestActivitiesOrderedByStart(t *testing.T) {
	s, pool := MustStore(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `TRUNCATE activities`); err != nil {
		t.Fatal(err)
	}
	p := MustProduct(t, s, 100)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Created out of order; the list is by start time.
	offsets := []time.Duration{3, 1, 4, 0, 2}
	for _, o := range offsets {
		if err := s.CreateActivity(ctx, activityOf(p, 1, base.Add(o*time.Hour)), noPreheat); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		limit int
		want  []time.Duration // start offsets, in order
	}{
		{10, []time.Duration{0, 1, 2, 3, 4}},
		{3, []time.Duration{2, 3, 4}}, // the latest starting ones
	}
	for _, tt := range tests {
		list, err := s.Activities(ctx, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Duration
		for _, a := range list {
			got = append(got, a.StartsAt.Sub(base)/time.Hour)
		}
		if !slices.Equal(got, tt.want) {
			t.Fatalf("limit %d: start offsets %v, want %v", tt.limit, got, tt.want)
		}
	}
}
