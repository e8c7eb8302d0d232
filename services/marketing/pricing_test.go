package marketing_test

import (
	"errors"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"testing/quick"
	"time"

	"github.com/flashsale/flashsale/platform/apportion"
	"github.com/flashsale/flashsale/services/marketing"
)

var t0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

// window is a validity window around t0.
func window() (time.Time, time.Time) { return t0.Add(-time.Hour), t0.Add(time.Hour) }

func fullReduction(id int64, tiers ...marketing.Tier) marketing.Promotion {
	from, until := window()
	return marketing.Promotion{ID: id, Kind: marketing.KindFullReduction, Tiers: tiers, StartsAt: from, EndsAt: until}
}

func skuDiscount(id, rateBP int64, skus ...int64) marketing.Promotion {
	from, until := window()
	return marketing.Promotion{ID: id, Kind: marketing.KindSKUDiscount, RateBP: rateBP, SKUIDs: skus, StartsAt: from, EndsAt: until}
}

func coupon(id, threshold, amount int64) *marketing.Coupon {
	from, until := window()
	return &marketing.Coupon{ID: id, Threshold: threshold, Amount: amount, ValidFrom: from, ValidUntil: until, Status: marketing.CouponAvailable}
}

// lineWant is a priced line's discount and payable amount.
type lineWant struct{ Discount, Payable int64 }

func TestPriceWorkedExamples(t *testing.T) {
	tests := []struct {
		name        string
		lines       []marketing.Line
		promotions  []marketing.Promotion
		coupon      *marketing.Coupon
		want        []lineWant
		wantApplied []marketing.Applied
	}{
		{
			name:        "10+10+10 with 10 off",
			lines:       []marketing.Line{{1, 1, 10_00}, {2, 1, 10_00}, {3, 1, 10_00}},
			coupon:      coupon(900, 0, 10_00),
			want:        []lineWant{{3_34, 6_66}, {3_33, 6_67}, {3_33, 6_67}},
			wantApplied: []marketing.Applied{{900, marketing.KindCoupon, 10_00}},
		},
		{
			name:        "30+40+50 with spend 99 take 9",
			lines:       []marketing.Line{{1, 1, 30_00}, {2, 1, 40_00}, {3, 1, 50_00}},
			promotions:  []marketing.Promotion{fullReduction(10, marketing.Tier{Threshold: 99_00, Off: 9_00})},
			want:        []lineWant{{2_25, 27_75}, {3_00, 37_00}, {3_75, 46_25}},
			wantApplied: []marketing.Applied{{10, marketing.KindFullReduction, 9_00}},
		},
		{
			name:  "quantities above 1 weigh by unit price times quantity",
			lines: []marketing.Line{{1, 3, 10_00}, {2, 2, 35_00}},
			promotions: []marketing.Promotion{fullReduction(10,
				marketing.Tier{Threshold: 50_00, Off: 5_00}, marketing.Tier{Threshold: 100_00, Off: 11_00})},
			// 30 + 70 = 100 reaches the second tier: 11 off, 3.30 and 7.70.
			want:        []lineWant{{3_30, 26_70}, {7_70, 62_30}},
			wantApplied: []marketing.Applied{{10, marketing.KindFullReduction, 11_00}},
		},
		{
			name:        "the best tier wins, not the first listed",
			lines:       []marketing.Line{{1, 1, 200_00}},
			promotions:  []marketing.Promotion{fullReduction(10, marketing.Tier{Threshold: 199_00, Off: 30_00}, marketing.Tier{Threshold: 99_00, Off: 10_00})},
			want:        []lineWant{{30_00, 170_00}},
			wantApplied: []marketing.Applied{{10, marketing.KindFullReduction, 30_00}},
		},
		{
			name:  "full reductions never stack: the larger one applies",
			lines: []marketing.Line{{1, 1, 120_00}},
			promotions: []marketing.Promotion{
				fullReduction(10, marketing.Tier{Threshold: 99_00, Off: 9_00}),
				fullReduction(11, marketing.Tier{Threshold: 100_00, Off: 15_00}),
			},
			want:        []lineWant{{15_00, 105_00}},
			wantApplied: []marketing.Applied{{11, marketing.KindFullReduction, 15_00}},
		},
		{
			// 7.00 of 7.01 splits 600:101 into 5.99(14) and 1.00(86),
			// rounded down to 5.99 and 1.00, the cent left over to the
			// larger line.
			name:        "a coupon larger than the order takes it to a cent, not below",
			lines:       []marketing.Line{{1, 2, 3_00}, {2, 1, 1_01}},
			coupon:      coupon(900, 0, 50_00),
			want:        []lineWant{{6_00, 0}, {1_00, 1}},
			wantApplied: []marketing.Applied{{900, marketing.KindCoupon, 7_00}},
		},
		{
			name:        "a full reduction of the whole order takes it to a cent",
			lines:       []marketing.Line{{1, 1, 10_00}},
			promotions:  []marketing.Promotion{fullReduction(10, marketing.Tier{Threshold: 10_00, Off: 10_00})},
			want:        []lineWant{{9_99, 1}},
			wantApplied: []marketing.Applied{{10, marketing.KindFullReduction, 9_99}},
		},
		{
			name:  "all three kinds stack in order: SKU discount, full reduction, coupon",
			lines: []marketing.Line{{1, 2, 50_00}, {2, 1, 20_00}},
			promotions: []marketing.Promotion{
				skuDiscount(20, 9000, 1),
				fullReduction(10, marketing.Tier{Threshold: 99_00, Off: 9_00}),
			},
			// 90% of 100 is 90 (10 off); 90 + 20 = 110 reaches spend 99
			// take 9: 9 × 90/110 = 7.36(36) and 9 × 20/110 = 1.63(63)
			// round down to 7.36 and 1.63, the cent left over goes to the
			// 90 line (7.37). The lines now cost 82.63 + 18.37 = 101,
			// which reaches the coupon's 100: its 5 off splits into
			// 4.09(06) and 0.90(94), rounded down to 4.09 and 0.90, the
			// cent left over again to the larger line (4.10).
			coupon:      coupon(900, 100_00, 5_00),
			want:        []lineWant{{10_00 + 7_37 + 4_10, 78_53}, {1_63 + 90, 17_47}},
			wantApplied: []marketing.Applied{{20, marketing.KindSKUDiscount, 10_00}, {10, marketing.KindFullReduction, 9_00}, {900, marketing.KindCoupon, 5_00}},
		},
		{
			name:        "SKU discount rounds the discount down to the cent",
			lines:       []marketing.Line{{1, 1, 19_99}, {2, 1, 5_00}},
			promotions:  []marketing.Promotion{skuDiscount(20, 9000, 1), skuDiscount(21, 8500, 1), skuDiscount(22, 9500, 3)},
			want:        []lineWant{{2_99, 17_00}, {0, 5_00}}, // 15% of 19.99 is 2.9985: the best rate (85%) only
			wantApplied: []marketing.Applied{{21, marketing.KindSKUDiscount, 2_99}},
		},
		{
			name:  "promotions outside their window do not apply",
			lines: []marketing.Line{{1, 1, 100_00}},
			promotions: []marketing.Promotion{{ID: 10, Kind: marketing.KindFullReduction, Tiers: []marketing.Tier{{1_00, 1_00}},
				StartsAt: t0.Add(time.Second), EndsAt: t0.Add(time.Hour)}},
			want: []lineWant{{0, 100_00}},
		},
		{
			name:        "a full reduction limited to some SKUs splits over those lines only",
			lines:       []marketing.Line{{1, 1, 60_00}, {2, 1, 60_00}},
			promotions:  []marketing.Promotion{{ID: 10, Kind: marketing.KindFullReduction, SKUIDs: []int64{2}, Tiers: []marketing.Tier{{50_00, 5_00}}, StartsAt: t0, EndsAt: t0.Add(time.Hour)}},
			want:        []lineWant{{0, 60_00}, {5_00, 55_00}},
			wantApplied: []marketing.Applied{{10, marketing.KindFullReduction, 5_00}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := marketing.Price(tt.lines, tt.promotions, tt.coupon, t0)
			if err != nil {
				t.Fatal(err)
			}
			var got []lineWant
			for _, l := range q.Lines {
				got = append(got, lineWant{l.Discount, l.Payable})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("lines (discount, payable) = %v, want %v", got, tt.want)
			}
			if !slices.Equal(q.Applied, tt.wantApplied) {
				t.Errorf("applied = %v, want %v", q.Applied, tt.wantApplied)
			}
			checkQuote(t, q)
		})
	}
}

func TestPriceRefusals(t *testing.T) {
	lines := []marketing.Line{{1, 1, 30_00}, {2, 1, 40_00}}
	expired := coupon(900, 0, 1_00)
	expired.ValidUntil = t0
	tests := []struct {
		name    string
		lines   []marketing.Line
		coupon  *marketing.Coupon
		wantErr error
	}{
		{"coupon below its threshold", lines, coupon(900, 70_01, 10_00), marketing.ErrCouponNotApplicable},
		{"coupon past its window", lines, expired, marketing.ErrCouponNotApplicable},
		// Used up for nothing: a review found the quote kept it.
		{"coupon on an order that comes to nothing", []marketing.Line{{1, 1, 0}}, coupon(900, 0, 1_00), marketing.ErrCouponNotApplicable},
		{"coupon on an order at the least it may come to", []marketing.Line{{1, 1, marketing.MinPayable}}, coupon(900, 0, 1_00), marketing.ErrCouponNotApplicable},
		{"no lines", nil, nil, marketing.ErrInvalid},
		{"sku twice", []marketing.Line{{1, 1, 1}, {1, 1, 1}}, nil, marketing.ErrInvalid},
		{"zero quantity", []marketing.Line{{1, 0, 1}}, nil, marketing.ErrInvalid},
		{"quantity too large", []marketing.Line{{1, marketing.MaxQuantity + 1, 1}}, nil, marketing.ErrInvalid},
		{"negative price", []marketing.Line{{1, 1, -1}}, nil, marketing.ErrInvalid},
		{"price too large", []marketing.Line{{1, 1, marketing.MaxUnitPrice + 1}}, nil, marketing.ErrInvalid},
		{"bad sku", []marketing.Line{{0, 1, 1}}, nil, marketing.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := marketing.Price(tt.lines, nil, tt.coupon, t0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Price error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	// At exactly the threshold the coupon applies.
	if _, err := marketing.Price(lines, nil, coupon(900, 70_00, 10_00), t0); err != nil {
		t.Fatalf("coupon at its threshold: %v", err)
	}
}

// checkQuote checks the invariants any client may check (docs/api.md) and that
// refunding every line unit by unit gives back exactly what was paid.
func checkQuote(t *testing.T, q marketing.Quote) {
	t.Helper()
	var total, discount, payable, applied, refunded int64
	for _, l := range q.Lines {
		var shares int64
		for _, s := range l.Shares {
			shares += s.Amount
		}
		if l.Amount != l.UnitPrice*l.Quantity || l.Discount != shares || l.Payable != l.Amount-l.Discount || l.Payable < 0 {
			t.Fatalf("line %+v breaks amount = price × quantity, discount = Σ shares, payable = amount − discount ≥ 0", l)
		}
		for k := range l.Quantity {
			r, err := apportion.Refund(l.UnitPrice, l.Quantity, l.Discount, k, 1)
			if err != nil {
				t.Fatal(err)
			}
			refunded += r
		}
		total, discount, payable = total+l.Amount, discount+l.Discount, payable+l.Payable
	}
	for _, a := range q.Applied {
		applied += a.Amount
	}
	if q.Total != total || q.Discount != discount || q.Payable != payable || q.Payable != q.Total-q.Discount || applied != discount {
		t.Fatalf("quote %+v: totals are not the sums over its lines and promotions", q)
	}
	if q.Total >= marketing.MinPayable && q.Payable < marketing.MinPayable {
		t.Fatalf("quote %+v: an order of %d comes to %d after its discounts, less than the least payable (%d)", q, q.Total, q.Payable, marketing.MinPayable)
	}
	if refunded != q.Payable {
		t.Fatalf("refunding every unit returns %d, the order paid %d", refunded, q.Payable)
	}
}

// randomCart is a cart with random promotions and maybe a coupon.
type randomCart struct {
	Lines      []marketing.Line
	Promotions []marketing.Promotion
	Coupon     *marketing.Coupon
}

// Generate implements quick.Generator.
func (randomCart) Generate(r *rand.Rand, _ int) reflect.Value {
	var c randomCart
	n := 1 + r.Intn(8)
	for i := range n {
		price := r.Int63n(100_00)
		if r.Intn(4) == 0 {
			price = r.Int63n(5) // a few cents: rounding dominates
		}
		c.Lines = append(c.Lines, marketing.Line{SKUID: int64(i + 1), Quantity: 1 + r.Int63n(5), UnitPrice: price})
	}
	for id := range int64(r.Intn(4)) {
		sku := 1 + r.Int63n(int64(n))
		c.Promotions = append(c.Promotions, skuDiscount(100+id, 1+r.Int63n(marketing.BasisPoints-1), sku))
	}
	for id := range int64(r.Intn(3)) {
		var tiers []marketing.Tier
		for range 1 + r.Intn(3) {
			threshold := 1 + r.Int63n(200_00)
			tiers = append(tiers, marketing.Tier{Threshold: threshold, Off: 1 + r.Int63n(threshold)})
		}
		c.Promotions = append(c.Promotions, fullReduction(200+id, tiers...))
	}
	if r.Intn(2) == 0 {
		c.Coupon = coupon(900, r.Int63n(50_00), 1+r.Int63n(100_00))
	}
	return reflect.ValueOf(c)
}

func TestPriceProperties(t *testing.T) {
	cfg := &quick.Config{MaxCount: 5000, Rand: rand.New(rand.NewSource(1))}
	prop := func(c randomCart) bool {
		cp := c.Coupon
		q, err := marketing.Price(c.Lines, c.Promotions, cp, t0)
		if errors.Is(err, marketing.ErrCouponNotApplicable) {
			cp = nil
			q, err = marketing.Price(c.Lines, c.Promotions, cp, t0)
		}
		if err != nil {
			t.Logf("%+v: %v", c, err)
			return false
		}
		if again, _ := marketing.Price(c.Lines, c.Promotions, cp, t0); !reflect.DeepEqual(q, again) {
			t.Logf("%+v: not deterministic: %+v then %+v", c, q, again)
			return false
		}
		seen := map[marketing.Kind]bool{}
		for _, a := range q.Applied {
			if a.Kind != marketing.KindSKUDiscount && seen[a.Kind] {
				t.Logf("%+v: %s applied twice", c, a.Kind)
				return false
			}
			seen[a.Kind] = true
		}
		checkQuote(t, q)
		return !t.Failed()
	}
	if err := quick.Check(prop, cfg); err != nil {
		t.Fatal(err)
	}
}
