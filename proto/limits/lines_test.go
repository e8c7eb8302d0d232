package limits_test

import (
	"testing"

	"github.com/flashsale/flashsale/proto/limits"
)

func TestCheckLines(t *testing.T) {
	type line struct{ sku, qty int64 }
	many := make([]line, limits.MaxLines+1)
	for i := range many {
		many[i] = line{int64(i + 1), 1}
	}
	tests := []struct {
		name  string
		lines []line
		want  string // "" for valid
	}{
		{"one line", []line{{1, 1}}, ""},
		{"the most lines", many[:limits.MaxLines], ""},
		{"the most units", []line{{1, 5}, {2, 1}}, ""},
		{"no lines", nil, "0 lines, want 1..100"},
		{"too many lines", many, "101 lines, want 1..100"},
		{"zero sku", []line{{0, 1}}, "sku id 0 is not positive"},
		{"negative sku", []line{{-3, 1}}, "sku id -3 is not positive"},
		{"sku twice", []line{{7, 1}, {8, 1}, {7, 2}}, "sku 7 listed twice"},
		{"zero quantity", []line{{7, 0}}, "quantity 0 of sku 7 outside 1..5"},
		{"quantity over the bound", []line{{7, 6}}, "quantity 6 of sku 7 outside 1..5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := limits.CheckLines(len(tt.lines), 5, func(i int) (int64, int64) { return tt.lines[i].sku, tt.lines[i].qty })
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckLines() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("CheckLines() = %v, want %q", err, tt.want)
			}
		})
	}
}
