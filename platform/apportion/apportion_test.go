package apportion_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/flashsale/flashsale/platform/apportion"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name    string
		amount  int64
		weights []int64
		want    []int64
	}{
		// 10 off three equal lines: 3.33 each rounds down to 3, and the
		// cent left over goes to the first of the equal largest lines.
		{"10 over 10+10+10", 10_00, []int64{10_00, 10_00, 10_00}, []int64{3_34, 3_33, 3_33}},
		// 9 off 30+40+50: exact shares 2.25, 3.00, 3.75; rounded down
		// 2.25, 3.00, 3.75 are exact in cents, nothing left over.
		{"9 over 30+40+50", 9_00, []int64{30_00, 40_00, 50_00}, []int64{2_25, 3_00, 3_75}},
		// 10 off 30+40+50: 2.50, 3.33(3), 4.16(6) round down to 2.50,
		// 3.33, 4.16, and the one cent left goes to the 50 line.
		{"10 over 30+40+50", 10_00, []int64{30_00, 40_00, 50_00}, []int64{2_50, 3_33, 4_17}},
		{"largest line is not first", 1, []int64{1_00, 3_00, 2_00}, []int64{0, 1, 0}},
		{"nothing to split", 0, []int64{5, 7}, []int64{0, 0}},
		{"everything", 12, []int64{5, 7}, []int64{5, 7}},
		{"zero-weight lines get nothing", 7, []int64{0, 7, 0}, []int64{0, 7, 0}},
		// Shares round down to 0, 0, 0 and leave 2 cents; the first line
		// can take only 1 before it would go below zero, so the second
		// cent is carried to the next line.
		{"remainder carried past a full line", 2, []int64{1, 1, 1}, []int64{1, 1, 0}},
		{"carry follows weight order", 5, []int64{1, 3, 2}, []int64{0, 3, 2}},
		{"no lines, nothing to split", 0, nil, []int64{}},
		{"huge amounts do not overflow", math.MaxInt64 / 2, []int64{math.MaxInt64 / 2, math.MaxInt64 / 2},
			[]int64{math.MaxInt64/4 + 1, math.MaxInt64 / 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apportion.Split(tt.amount, tt.weights)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Split(%d, %v) = %v, want %v", tt.amount, tt.weights, got, tt.want)
			}
		})
	}
}

func TestSplitRefusesWhatCannotBeSplit(t *testing.T) {
	tests := []struct {
		name    string
		amount  int64
		weights []int64
	}{
		{"more than the lines are worth", 31, []int64{10, 10, 10}},
		{"negative amount", -1, []int64{10}},
		{"negative weight", 1, []int64{10, -1}},
		{"sum overflows", 1, []int64{math.MaxInt64, 1}},
		{"something over nothing", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := apportion.Split(tt.amount, tt.weights); !errors.Is(err, apportion.ErrInvalid) {
				t.Fatalf("Split(%d, %v) error = %v, want ErrInvalid", tt.amount, tt.weights, err)
			}
		})
	}
}

func TestUnits(t *testing.T) {
	tests := []struct {
		name                     string
		unitPrice, qty, discount int64
		want                     []int64
	}{
		// A line of 3 at 10.00 with 3.34 off: 1.11 each rounded down,
		// the leftover cent on the first unit.
		{"3 units, 3.34 off", 10_00, 3, 3_34, []int64{8_88, 8_89, 8_89}},
		{"no discount", 5_00, 2, 0, []int64{5_00, 5_00}},
		{"all free", 5_00, 2, 10_00, []int64{0, 0}},
		{"leftover larger than one unit's price", 1, 3, 2, []int64{0, 0, 1}},
		{"one unit", 7_77, 1, 77, []int64{7_00}},
		// 999.99 off 1,000 units of 100.00: 0.99 each and 999 leftover
		// cents, one each to the first 999 units, never all on the first
		// (which made the first refunded unit return 89.02: a review).
		{"many leftover cents", 100_00, 1000, 999_99, append(slices.Repeat([]int64{99_00}, 999), 99_01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apportion.Units(tt.unitPrice, tt.qty, tt.discount)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Units(%d, %d, %d) = %v, want %v", tt.unitPrice, tt.qty, tt.discount, got, tt.want)
			}
		})
	}
}

func TestRefund(t *testing.T) {
	// The 50 line of the 30+40+50 example with 10 off, bought as 5
	// units of 10.00: its share is 4.17, so it pays 45.83; each unit
	// takes 0.83 off and the first two a leftover cent each.
	const price, qty, discount = 10_00, 5, 4_17
	tests := []struct {
		name    string
		done, k int64
		want    int64
	}{
		{"first unit takes a leftover cent", 0, 1, 9_16},
		{"second unit too", 1, 1, 9_16},
		{"two units after one", 1, 2, 18_33},
		{"the rest after two", 2, 3, 27_51},
		{"all at once", 0, 5, 45_83},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apportion.Refund(price, qty, discount, tt.done, tt.k)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Refund(done=%d, k=%d) = %d, want %d", tt.done, tt.k, got, tt.want)
			}
		})
	}
	for _, bad := range []struct{ done, k int64 }{{0, 6}, {4, 2}, {-1, 1}, {0, 0}, {5, 1}} {
		if _, err := apportion.Refund(price, qty, discount, bad.done, bad.k); !errors.Is(err, apportion.ErrInvalid) {
			t.Errorf("Refund(done=%d, k=%d) error = %v, want ErrInvalid (over-refund)", bad.done, bad.k, err)
		}
	}
}

func TestScale(t *testing.T) {
	tests := []struct {
		name             string
		amount, num, den int64
		want             int64
		wantErr          bool
	}{
		{"10% of 19.99 rounds down", 19_99, 1000, 10000, 1_99, false},
		{"all", 5, 7, 7, 5, false},
		{"nothing", 5, 0, 7, 0, false},
		{"no overflow", math.MaxInt64, 9999, 10000, math.MaxInt64/10000*9999 + (math.MaxInt64%10000)*9999/10000, false},
		{"rate above one", 5, 8, 7, 0, true},
		{"negative amount", -5, 1, 2, 0, true},
		{"zero denominator", 5, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apportion.Scale(tt.amount, tt.num, tt.den)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Scale(%d, %d, %d) = %d, %v; want %d, error %v", tt.amount, tt.num, tt.den, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
