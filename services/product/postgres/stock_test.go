package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/platform/testing/pgcalls"
	"github.com/flashsale/flashsale/services/product"
	"github.com/flashsale/flashsale/services/product/postgres"
)

func TestConcurrentReservationsNeverOversell(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	const stock, orders = 25, 60
	a, b := MustProduct(t, s, stock), MustProduct(t, s, 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range orders {
		wg.Go(func() {
			// Lines listed in both orders, so locks are taken in id order
			// whatever the request's order.
			lines := []product.StockLine{{SKUID: b.SKUID, Quantity: 1}, {SKUID: a.SKUID, Quantity: 1}}
			if newID()%2 == 0 {
				lines[0], lines[1] = lines[1], lines[0]
			}
			_, err := s.ReserveStock(ctx, newID(), lines)
			switch {
			case err == nil:
				mu.Lock()
				taken++
				mu.Unlock()
			case !errors.Is(err, product.ErrSoldOut):
				t.Errorf("reserve: %v", err)
			}
		})
	}
	wg.Wait()
	if taken != stock {
		t.Fatalf("%d orders reserved %d units, want exactly %d", taken, taken, stock)
	}
	for _, want := range []struct {
		sku  int64
		left int64
	}{{a.SKUID, 0}, {b.SKUID, 1000 - stock}} {
		p, err := s.Product(ctx, want.sku)
		if err != nil || p.Stock != want.left {
			t.Fatalf("sku %d has %d left (%v), want %d: a sold-out order must take nothing", want.sku, p.Stock, err, want.left)
		}
	}
}

func TestReserveAndReleaseAreIdempotent(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	p := MustProduct(t, s, 10)
	order := newID()
	lines := []product.StockLine{{SKUID: p.SKUID, Quantity: 4}}
	steps := []struct {
		name      string
		do        func() (bool, error)
		wantFlag  bool
		wantStock int64
	}{
		{"reserve", func() (bool, error) { return s.ReserveStock(ctx, order, lines) }, false, 6},
		{"reserve again", func() (bool, error) { return s.ReserveStock(ctx, order, lines) }, true, 6},
		{"release", func() (bool, error) { return released(s.ReleaseStock(ctx, order)) }, true, 10},
		{"release again", func() (bool, error) { return released(s.ReleaseStock(ctx, order)) }, false, 10},
		{"release what was never reserved", func() (bool, error) { return released(s.ReleaseStock(ctx, newID())) }, false, 10},
	}
	for _, st := range steps {
		flag, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, _ := s.Product(ctx, p.SKUID)
		if flag != st.wantFlag || got.Stock != st.wantStock {
			t.Fatalf("%s: flag %v, stock %d; want %v, %d", st.name, flag, got.Stock, st.wantFlag, st.wantStock)
		}
	}
}

func TestReserveRefusals(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	p := MustProduct(t, s, 3)
	tests := []struct {
		name  string
		lines []product.StockLine
		want  error
	}{
		{"more than the stock", []product.StockLine{{SKUID: p.SKUID, Quantity: 4}}, product.ErrSoldOut},
		{"unknown sku", []product.StockLine{{SKUID: p.SKUID, Quantity: 1}, {SKUID: newID(), Quantity: 1}}, product.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ReserveStock(ctx, newID(), tt.lines); !errors.Is(err, tt.want) {
				t.Fatalf("reserve = %v, want %v", err, tt.want)
			}
			if got, _ := s.Product(ctx, p.SKUID); got.Stock != 3 {
				t.Fatalf("stock %d after a refused reservation, want 3", got.Stock)
			}
		})
	}
}

// A release that finds no reservation leaves a tombstone: the order's
// reserve, arriving after it (the caller gave the order up after an
// ambiguous reserve that was still running), takes nothing. Raced many
// times both ways round, every order ends either reserved and released or
// given up with nothing taken, and the stock is whole again.
func TestReleaseBeforeReserveTakesNothing(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	p := MustProduct(t, s, 1000)
	lines := []product.StockLine{{SKUID: p.SKUID, Quantity: 2}}

	late := newID()
	if released, err := released(s.ReleaseStock(ctx, late)); err != nil || released {
		t.Fatalf("release of an order never reserved: %v, %v; want false", released, err)
	}
	if _, err := s.ReserveStock(ctx, late, lines); !errors.Is(err, product.ErrGivenUp) {
		t.Fatalf("reserve after its release: %v, want ErrGivenUp", err)
	}
	if got, _ := s.Product(ctx, p.SKUID); got.Stock != 1000 {
		t.Fatalf("stock %d after a given-up reserve, want 1000", got.Stock)
	}

	const orders = 40
	var wg sync.WaitGroup
	for range orders {
		id := newID()
		wg.Go(func() {
			if _, err := s.ReserveStock(ctx, id, lines); err != nil && !errors.Is(err, product.ErrGivenUp) {
				t.Errorf("reserve %d: %v", id, err)
			}
		})
		wg.Go(func() {
			if _, err := s.ReleaseStock(ctx, id); err != nil {
				t.Errorf("release %d: %v", id, err)
			}
		})
	}
	wg.Wait()
	if got, _ := s.Product(ctx, p.SKUID); got.Stock != 1000 {
		t.Errorf("stock %d after %d reserves raced with their releases, want all 1000 back", got.Stock, orders)
	}
}

// released says whether a release gave back any lines.
func released(lines []product.StockLine, err error) (bool, error) { return len(lines) > 0, err }

// A product's row is hot: every checkout of the product updates it. Each
// store method that takes or gives back its stock must do it in one
// statement, whose transaction begins and ends inside the database: a
// transaction that went back to the service between statements would keep
// the row locked for that round trip, and every other checkout of the
// product waiting behind it.
func TestHotRowWritersMakeOneRoundTrip(t *testing.T) {
	_, pool := MustStore(t)
	calls := pgcalls.New(pool)
	s := postgres.New(calls)
	ctx := context.Background()
	a, b := MustProduct(t, s, 10), MustProduct(t, s, 10)
	lines := []product.StockLine{{SKUID: b.SKUID, Quantity: 2}, {SKUID: a.SKUID, Quantity: 3}}
	order := newID()
	calls.Take()
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"reserve", func() error { _, err := s.ReserveStock(ctx, order, lines); return err }},
		{"replayed reserve", func() error { _, err := s.ReserveStock(ctx, order, lines); return err }},
		{"short reserve", func() error {
			_, err := s.ReserveStock(ctx, newID(), []product.StockLine{{SKUID: a.SKUID, Quantity: 8}})
			return ignore(err, product.ErrSoldOut)
		}},
		{"release", func() error { _, err := s.ReleaseStock(ctx, order); return err }},
		{"release of an order never reserved", func() error { _, err := s.ReleaseStock(ctx, newID()); return err }},
	} {
		if err := step.run(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := calls.Take(); len(got) != 1 || got[0] == "Begin" {
			t.Errorf("%s made %v, want one statement", step.name, got)
		}
	}
	if MustStock(t, s, a.SKUID) != 10 || MustStock(t, s, b.SKUID) != 10 {
		t.Fatalf("stock %d and %d after reserve and release, want 10 and 10", MustStock(t, s, a.SKUID), MustStock(t, s, b.SKUID))
	}
}

// ignore returns nil when err is want.
func ignore(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("no error, want %v", want)
	}
	return err
}

// A reserve refused for want of stock is refused without waiting for the
// product's row lock: the lines are checked once before the locks are
// taken. Here a transaction holds the row for the whole test; a reserve
// that waited for it would run out of its context.
func TestShortReserveDoesNotWaitForTheLock(t *testing.T) {
	s, pool := MustStore(t)
	p := MustProduct(t, s, 1)
	locker, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.Background())
	if _, err := locker.Exec(context.Background(), `SELECT 1 FROM products WHERE sku_id = $1 FOR UPDATE`, p.SKUID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.ReserveStock(ctx, newID(), []product.StockLine{{SKUID: p.SKUID, Quantity: 2}}); !errors.Is(err, product.ErrSoldOut) {
		t.Fatalf("reserve of 2 of 1, its row locked: %v, want ErrSoldOut at once", err)
	}
}

// ListHeldStock pages the orders that still hold stock and are old
// enough, by the time of their reservation and then by order id: a
// released order, a young one and another order's page position are left
// out, an order of two lines appears once, and the service refuses a page
// that would reach into running checkouts or is out of bounds.
func TestHeldStockPagesOldUnreleasedReservations(t *testing.T) {
	s, pool := MustStore(t)
	ctx := context.Background()
	a, b := MustProduct(t, s, 10), MustProduct(t, s, 10)
	one := []product.StockLine{{SKUID: a.SKUID, Quantity: 1}}
	held, released, twoLines, young := newID(), newID(), newID(), newID()
	for _, o := range []struct {
		id    int64
		lines []product.StockLine
	}{{held, one}, {released, one}, {twoLines, []product.StockLine{{SKUID: a.SKUID, Quantity: 1}, {SKUID: b.SKUID, Quantity: 2}}}, {young, one}} {
		if _, err := s.ReserveStock(ctx, o.id, o.lines); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReleaseStock(ctx, released); err != nil {
		t.Fatal(err)
	}
	// Old reservations, at instants no other test's reservation has: the
	// held order and the two-line one share theirs, so the order id
	// decides between them.
	start := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(newID()%500_000) * time.Minute) // within 2001-02
	for id, at := range map[int64]time.Time{held: start.Add(time.Second), released: start, twoLines: start.Add(time.Second)} {
		if _, err := pool.Exec(ctx, `UPDATE stock_reservations SET created_at = $2 WHERE order_id = $1`, id, at); err != nil {
			t.Fatal(err)
		}
	}
	// ours reads the page q asks for and keeps this test's orders.
	ours := func(q sweep.AgedQuery) []int64 {
		t.Helper()
		got, err := s.HeldStock(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, h := range got {
			if h.ReservedAt.Before(start.Add(time.Hour)) { // ours
				ids = append(ids, h.OrderID)
			}
		}
		return ids
	}
	page := func(after sweep.TimeKey, limit int) []int64 {
		t.Helper()
		return ours(sweep.AgedQuery{OlderThan: time.Hour, After: after, Limit: limit})
	}
	first, second := min(held, twoLines), max(held, twoLines)
	before := sweep.TimeKey{At: start.Add(-time.Nanosecond)}
	if got := page(before, 10); !slices.Equal(got, []int64{first, second}) {
		t.Fatalf("held stock after %v: %v, want %v (not the released %d, not the young %d)", before.At, got, []int64{first, second}, released, young)
	}
	if got := page(before, 1); !slices.Equal(got, []int64{first}) {
		t.Fatalf("a page of one: %v, want [%d]", got, first)
	}
	if got := page(sweep.TimeKey{At: start.Add(time.Second), ID: first}, 1); !slices.Equal(got, []int64{second}) {
		t.Fatalf("the page after %d: %v, want [%d]", first, got, second)
	}
	if got := page(sweep.TimeKey{At: start.Add(time.Second), ID: second}, 10); len(got) != 0 {
		t.Fatalf("the page after the last: %v, want none", got)
	}

	// Bounded by age on both sides: the same reservations, seen from a
	// window that ends an hour after them and from one that ends before.
	age := time.Since(start.Add(time.Second))
	for _, w := range []struct {
		younger time.Duration
		want    []int64
	}{{age + time.Hour, []int64{first, second}}, {age - time.Hour, nil}} {
		if ids := ours(sweep.AgedQuery{OlderThan: time.Hour, YoungerThan: w.younger, After: before, Limit: 10}); !slices.Equal(ids, w.want) {
			t.Fatalf("held stock younger than %s: %v, want %v", w.younger, ids, w.want)
		}
	}

	// The service holds a page to its bounds (sweep.AgedQuery, tested
	// there): younger than a second, or over a thousand, is refused.
	svc := product.NewService(product.Config{Store: s, Inventory: noInventory{t}, IDs: idGen{}, Clock: clock.Real{}})
	for _, bad := range []sweep.AgedQuery{{OlderThan: product.MinHeldAge - 1, Limit: 10}, {OlderThan: time.Hour, Limit: product.MaxHeldPage + 1}} {
		if _, err := svc.ListHeldStock(ctx, bad); !errors.Is(err, product.ErrInvalid) {
			t.Errorf("ListHeldStock(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
