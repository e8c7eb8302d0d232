package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/marketing"
	"github.com/flashsale/flashsale/services/marketing/postgres"
)

// epochs counts the instants MustEpoch handed out.
var epochs atomic.Int64

// MustEpoch returns an instant of its own, 30 days from any other this
// package's tests use, so that the promotions live around it (the
// store-wide ones above all) cannot change another test's quote: every
// test shares one database.
func MustEpoch() time.Time {
	return now.Add(time.Duration(epochs.Add(1)) * 30 * 24 * time.Hour)
}

// MustService returns the marketing service on s whose clock stands at at.
func MustService(s *postgres.Store, at time.Time) *marketing.Service {
	return marketing.NewService(marketing.Config{Store: s, IDs: gen, Clock: clock.NewManual(at)})
}

// TestQuoteFindsThePromotionEndingLast is issue 11.3: with more than
// 1,000 live promotions, the one for the cart's SKU ending after the
// other 1,000 must still price the cart.
func TestQuoteFindsThePromotionEndingLast(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	at := MustEpoch()
	const others = 1000
	sku := gen.Next()
	for i := range others {
		// Other SKUs' discounts, all live at at and ending before ours.
		p := marketing.Promotion{ID: gen.Next(), Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku + 1 + int64(i)}, RateBP: 9000,
			StartsAt: at.Add(-time.Hour), EndsAt: at.Add(time.Hour + time.Duration(i)*time.Second)}
		if err := s.CreatePromotion(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	ours := marketing.Promotion{ID: gen.Next(), Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku}, RateBP: 8000,
		StartsAt: at.Add(-time.Hour), EndsAt: at.Add(48 * time.Hour)}
	if err := s.CreatePromotion(ctx, ours); err != nil {
		t.Fatal(err)
	}
	q, err := MustService(s, at).Quote(ctx, 1, []marketing.Line{{SKUID: sku, Quantity: 2, UnitPrice: 50_00}}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []marketing.Applied{{ID: ours.ID, Kind: marketing.KindSKUDiscount, Amount: 20_00}}
	if len(q.Applied) != 1 || q.Applied[0] != want[0] || q.Payable != 80_00 {
		t.Fatalf("quote with %d other live promotions: applied %+v, payable %d; want %+v, payable 8000", others, q.Applied, q.Payable, want)
	}
}

// storeWide is how many of a calendar's promotions are store-wide full
// reductions: a shop runs a handful at once, whatever its SKU discounts.
const storeWide = 10

// calendar returns n promotions live at at over a catalog of SKUs 1 to
// skus, shaped like a Double-11 calendar: storeWide full reductions on
// every SKU of 1 to 3 tiers, the rest SKU discounts naming 1 to 5 SKUs at
// 50% to 99%; each started up to two days before at and ends up to three
// days after it.
func calendar(r *rand.Rand, n int, skus int64, at time.Time) []marketing.Promotion {
	out := make([]marketing.Promotion, n)
	for i := range out {
		p := marketing.Promotion{ID: gen.Next(),
			StartsAt: at.Add(-time.Duration(r.IntN(48*3600)) * time.Second),
			EndsAt:   at.Add(time.Duration(1+r.IntN(72*3600)) * time.Second)}
		if i < storeWide {
			p.Kind = marketing.KindFullReduction
			threshold := int64(50_00 + r.IntN(100_00))
			for range 1 + r.IntN(3) {
				p.Tiers = append(p.Tiers, marketing.Tier{Threshold: threshold, Off: threshold / int64(5+r.IntN(15))})
				threshold *= 2
			}
		} else {
			p.Kind, p.RateBP = marketing.KindSKUDiscount, int64(5000+r.IntN(4900))
			for range 1 + r.IntN(5) {
				p.SKUIDs = append(p.SKUIDs, 1+r.Int64N(skus))
			}
		}
		out[i] = p
	}
	return out
}

// MustSeed records the promotions with COPY, and their SKUs in
// promotion_skus as CreatePromotion does: a calendar of 100,000 takes
// seconds, not the minutes of one INSERT each.
func MustSeed(tb testing.TB, pool *pgxpool.Pool, list []marketing.Promotion) {
	tb.Helper()
	ctx := context.Background()
	ids := make([]int64, len(list))
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"promotions"},
		[]string{"promotion_id", "kind", "sku_ids", "rate_bp", "tier_thresholds", "tier_offs", "starts_at", "ends_at"},
		pgx.CopyFromSlice(len(list), func(i int) ([]any, error) {
			p := list[i]
			ids[i] = p.ID
			skus, thresholds, offs := []int64{}, []int64{}, []int64{}
			skus = append(skus, p.SKUIDs...)
			for _, t := range p.Tiers {
				thresholds, offs = append(thresholds, t.Threshold), append(offs, t.Off)
			}
			return []any{p.ID, string(p.Kind), skus, p.RateBP, thresholds, offs, p.StartsAt, p.EndsAt}, nil
		}))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO promotion_skus (sku_id, ends_at, promotion_id)
		SELECT DISTINCT sku_id, p.ends_at, p.promotion_id
		FROM promotions p, unnest(p.sku_ids) AS sku_id WHERE p.promotion_id = ANY($1)`, ids); err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE promotions, promotion_skus`); err != nil {
		tb.Fatal(err)
	}
}

// randomCart is 1 to maxLines lines of distinct SKUs of 1 to skus.
func randomCart(r *rand.Rand, maxLines int, skus int64) []marketing.Line {
	n := 1 + r.IntN(maxLines)
	lines := make([]marketing.Line, 0, n)
	seen := map[int64]bool{}
	for len(lines) < n {
		sku := 1 + r.Int64N(skus)
		if !seen[sku] {
			seen[sku] = true
			lines = append(lines, marketing.Line{SKUID: sku, Quantity: 1 + r.Int64N(3), UnitPrice: 1_00 + r.Int64N(300_00)})
		}
	}
	return lines
}

// TestQuoteAt100kLivePromotions prices carts among 100,000 live
// promotions (and others that ended or have not started, with better
// rates on the same SKUs) exactly as Price does with every one of them in
// hand: the index finds all that apply and nothing else.
func TestQuoteAt100kLivePromotions(t *testing.T) {
	pool := MustPool(t)
	ctx := context.Background()
	at := MustEpoch()
	r := rand.New(rand.NewPCG(11, 3))
	const live = 100_000
	all := calendar(r, live, live, at)
	// Better rates on the same SKUs outside the window: one ended at at,
	// one starting just after it.
	for i := range 2_000 {
		p := all[i]
		if p.Kind != marketing.KindSKUDiscount {
			continue
		}
		p.ID, p.RateBP = gen.Next(), 1000
		if i%2 == 0 {
			p.EndsAt = at
		} else {
			p.StartsAt = at.Add(time.Microsecond)
		}
		all = append(all, p)
	}
	// The cart's best discount and the store's best full reduction both
	// end after every other live promotion; better rates for the SKU
	// ended at at or start just after it.
	const sku = 77_777
	last := at.Add(100 * time.Hour)
	best := marketing.Promotion{ID: gen.Next(), Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku}, RateBP: 2000, StartsAt: at.Add(-time.Hour), EndsAt: last}
	bestFR := marketing.Promotion{ID: gen.Next(), Kind: marketing.KindFullReduction,
		Tiers: []marketing.Tier{{Threshold: 1_00, Off: 1_00}, {Threshold: 400_00, Off: 100_00}}, StartsAt: at.Add(-time.Hour), EndsAt: last}
	ended, later := best, best
	ended.ID, ended.RateBP, ended.EndsAt = gen.Next(), 1000, at
	later.ID, later.RateBP, later.StartsAt, later.EndsAt = gen.Next(), 1000, at.Add(time.Microsecond), last.Add(time.Hour)
	all = append(all, best, bestFR, ended, later)
	MustSeed(t, pool, all)

	svc := MustService(postgres.New(pool), at)
	q, err := svc.Quote(ctx, 1, []marketing.Line{{SKUID: sku, Quantity: 10, UnitPrice: 200_00}}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 2,000.00 sold at 20% of its price is 400.00, which reaches the
	// reduction's second tier: 100.00 off, more than any other store-wide
	// reduction takes.
	want := []marketing.Applied{{ID: best.ID, Kind: marketing.KindSKUDiscount, Amount: 1_600_00}, {ID: bestFR.ID, Kind: marketing.KindFullReduction, Amount: 100_00}}
	if !reflect.DeepEqual(q.Applied, want) || q.Payable != 300_00 {
		t.Fatalf("quote among 100,000 live promotions: applied %+v, payable %d; want %+v, payable 30000", q.Applied, q.Payable, want)
	}
	// Price with every promotion in hand (about 102,000) is the slow
	// part of this test, so it checks a dozen random carts of up to ten
	// lines (each SKU is named by about three live promotions).
	applied := 0
	for range 12 {
		lines := randomCart(r, 10, live)
		got, err := svc.Quote(ctx, 1, lines, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, err := marketing.Price(lines, all, nil, at)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cart %+v:\n quoted %+v\nwant (every promotion in hand) %+v", lines, got, want)
		}
		applied += len(got.Applied)
	}
	if applied < 12 {
		t.Fatalf("the random carts applied %d promotions in all: the calendar does not reach them", applied)
	}
}

// BenchmarkQuote is a quote's latency (the service on this store, without
// gRPC) among 1,000, 10,000 and 100,000 live promotions, its median as a
// ratio to the median Postgres round trip (SELECT 1 on the same pool);
// docs/benchmarks.md reports it. Quotes and round trips take turns in
// blocks of 100, so that both see the same machine (on two shared cores,
// a baseline measured a few seconds apart moved by half) while neither
// runs right after the other (a round trip right after a quote that
// computed for a while waits longer for Postgres to wake). Each scale is a
// calendar of its own, live in a window of its own (the smaller ones
// have ended by then), over a catalog of as many SKUs as promotions, so
// that a SKU is named by about three live promotions at every scale:
// what changes is only how many other promotions are live. The quotes are
// random carts of 1 to 10 lines, one after the other.
//
//	go test -run '^$' -bench Quote -benchtime 10000x ./services/marketing/postgres/
func BenchmarkQuote(b *testing.B) {
	pool := MustPool(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, 3))
	for _, n := range []int{1_000, 10_000, 100_000} {
		at := MustEpoch()
		MustSeed(b, pool, calendar(r, n, int64(n), at))
		carts := make([][]marketing.Line, 1000)
		for i := range carts {
			carts[i] = randomCart(r, 10, int64(n))
		}
		store := &countingStore{Store: postgres.New(pool)}
		svc := marketing.NewService(marketing.Config{Store: store, IDs: gen, Clock: shifted(at.Sub(time.Now()))})
		b.Run(fmt.Sprintf("live=%d", n), func(b *testing.B) {
			store.found.Store(0)
			roundTrips, quotes := make([]time.Duration, b.N), make([]time.Duration, b.N)
			var one int
			for block := 0; block < b.N; block += 100 {
				end := min(block+100, b.N)
				for i := block; i < end; i++ {
					start := time.Now()
					if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
						b.Fatal(err)
					}
					roundTrips[i] = time.Since(start)
				}
				for i := block; i < end; i++ {
					start := time.Now()
					if _, err := svc.Quote(ctx, 1, carts[i%len(carts)], 0, 0); err != nil {
						b.Fatal(err)
					}
					quotes[i] = time.Since(start)
				}
			}
			b.StopTimer()
			slices.Sort(roundTrips)
			slices.Sort(quotes)
			p50 := func(d []time.Duration) float64 { return float64(d[len(d)/2]) }
			b.ReportMetric(p50(roundTrips)/1e3, "round-trip-p50-µs")
			b.ReportMetric(p50(quotes)/1e3, "p50-µs")
			b.ReportMetric(float64(quotes[len(quotes)*99/100])/1e3, "p99-µs")
			b.ReportMetric(p50(quotes)/p50(roundTrips), "p50-x-round-trip")
			b.ReportMetric(float64(store.found.Load())/float64(b.N), "found/quote")
		})
	}
}

// shifted is the wall clock moved by a duration: time passes as usual
// inside another window.
type shifted time.Duration

// Now implements clock.Clock.
func (d shifted) Now() time.Time { return time.Now().Add(time.Duration(d)) }

// countingStore counts the promotions the lookups found.
type countingStore struct {
	*postgres.Store
	found atomic.Int64
}

// LivePromotions implements marketing.Store.
func (c *countingStore) LivePromotions(ctx context.Context, skuIDs []int64, now time.Time) ([]marketing.Promotion, error) {
	list, err := c.Store.LivePromotions(ctx, skuIDs, now)
	c.found.Add(int64(len(list)))
	return list, err
}
