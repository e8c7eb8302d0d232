package product_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/product"
)

var t0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func TestActivityStatus(t *testing.T) {
	a := product.Activity{Stock: 10, StartsAt: t0, EndsAt: t0.Add(time.Hour)}
	tests := []struct {
		name      string
		now       time.Time
		remaining int64
		want      product.Status
	}{
		{"before start", t0.Add(-time.Nanosecond), 10, product.StatusUpcoming},
		{"before start without stock", t0.Add(-time.Minute), 0, product.StatusUpcoming},
		{"at start", t0, 10, product.StatusActive},
		{"during with one left", t0.Add(30 * time.Minute), 1, product.StatusActive},
		{"during without stock", t0.Add(30 * time.Minute), 0, product.StatusSoldOut},
		{"just before end", t0.Add(time.Hour - time.Nanosecond), 3, product.StatusActive},
		{"at end", t0.Add(time.Hour), 3, product.StatusEnded},
		{"after end without stock", t0.Add(2 * time.Hour), 0, product.StatusEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := a
			a.Remaining = tt.remaining
			if got := a.Status(tt.now); got != tt.want {
				t.Fatalf("Status = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProductValidate(t *testing.T) {
	valid := product.Product{Title: "Phone", Price: 199_00, Stock: 1000}
	tests := []struct {
		name    string
		edit    func(*product.Product)
		wantErr bool
	}{
		{"valid", func(*product.Product) {}, false},
		{"zero stock", func(p *product.Product) { p.Stock = 0 }, false},
		{"max everything", func(p *product.Product) {
			p.Title, p.Price, p.Stock = strings.Repeat("界", product.MaxTitleRunes), product.MaxPrice, product.MaxStock
		}, false},
		{"empty title", func(p *product.Product) { p.Title = "" }, true},
		{"blank title", func(p *product.Product) { p.Title = "  \t" }, true},
		{"long title", func(p *product.Product) { p.Title = strings.Repeat("a", product.MaxTitleRunes+1) }, true},
		{"invalid utf-8 title", func(p *product.Product) { p.Title = "\xff" }, true},
		{"NUL in the title (Postgres refuses it: was a 500)", func(p *product.Product) { p.Title = "Phone\x00" }, true},
		{"a newline in the title", func(p *product.Product) { p.Title = "Phone\nX" }, true},
		{"zero price", func(p *product.Product) { p.Price = 0 }, true},
		{"negative price", func(p *product.Product) { p.Price = -1 }, true},
		{"huge price", func(p *product.Product) { p.Price = product.MaxPrice + 1 }, true},
		{"negative stock", func(p *product.Product) { p.Stock = -1 }, true},
		{"huge stock", func(p *product.Product) { p.Stock = product.MaxStock + 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid
			tt.edit(&p)
			err := p.Validate()
			if got := errors.Is(err, product.ErrInvalid); got != tt.wantErr || (err != nil && !got) {
				t.Fatalf("Validate() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

func TestActivityValidate(t *testing.T) {
	p := product.Product{SKUID: 1, Title: "Phone", Price: 199_00, Stock: 1000}
	now := t0
	valid := product.Activity{SKUID: 1, Price: 99_00, Stock: 100, PerUserLimit: 1, StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour)}
	tests := []struct {
		name    string
		edit    func(*product.Activity)
		wantErr bool
	}{
		{"valid", func(*product.Activity) {}, false},
		{"price equals the product's", func(a *product.Activity) { a.Price = p.Price }, false},
		{"already started", func(a *product.Activity) { a.StartsAt = now.Add(-time.Hour) }, false},
		{"max limit", func(a *product.Activity) { a.PerUserLimit = product.MaxPerUserLimit }, false},
		{"zero price", func(a *product.Activity) { a.Price = 0 }, true},
		{"price above the product's", func(a *product.Activity) { a.Price = p.Price + 1 }, true},
		{"zero stock", func(a *product.Activity) { a.Stock = 0 }, true},
		{"negative stock", func(a *product.Activity) { a.Stock = -5 }, true},
		{"limit 0", func(a *product.Activity) { a.PerUserLimit = 0 }, true},
		{"limit above max", func(a *product.Activity) { a.PerUserLimit = product.MaxPerUserLimit + 1 }, true},
		{"ends before starts", func(a *product.Activity) { a.EndsAt = a.StartsAt.Add(-time.Minute) }, true},
		{"ends when it starts", func(a *product.Activity) { a.EndsAt = a.StartsAt }, true},
		{"ends now", func(a *product.Activity) { a.StartsAt, a.EndsAt = now.Add(-time.Hour), now }, true},
		{"no start", func(a *product.Activity) { a.StartsAt = time.Time{} }, true},
		{"no end", func(a *product.Activity) { a.EndsAt = time.Time{} }, true},
		{"16 stock buckets", func(a *product.Activity) { a.StockBuckets = 16 }, false},
		{"17 stock buckets", func(a *product.Activity) { a.StockBuckets = 17 }, true},
		{"negative stock buckets", func(a *product.Activity) { a.StockBuckets = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := valid
			tt.edit(&a)
			err := a.Validate(p, now)
			if got := errors.Is(err, product.ErrInvalid); got != tt.wantErr || (err != nil && !got) {
				t.Fatalf("Validate() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    product.Status
		want string
	}{
		{product.StatusUpcoming, "UPCOMING"},
		{product.StatusActive, "ACTIVE"},
		{product.StatusSoldOut, "SOLD_OUT"},
		{product.StatusEnded, "ENDED"},
		{product.Status(9), "Status(9)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int(tt.s), got, tt.want)
		}
	}
}

func TestValidateStockLines(t *testing.T) {
	many := make([]product.StockLine, product.MaxStockLines+1)
	for i := range many {
		many[i] = product.StockLine{SKUID: int64(i + 1), Quantity: 1}
	}
	tests := []struct {
		name    string
		lines   []product.StockLine
		wantErr bool
	}{
		{"valid", []product.StockLine{{SKUID: 1, Quantity: 2}, {SKUID: 2, Quantity: product.MaxStock}}, false},
		{"no lines", nil, true},
		{"too many lines", many, true},
		{"sku twice", []product.StockLine{{SKUID: 1, Quantity: 1}, {SKUID: 1, Quantity: 1}}, true},
		{"zero quantity", []product.StockLine{{SKUID: 1, Quantity: 0}}, true},
		{"bad sku", []product.StockLine{{SKUID: -1, Quantity: 1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := product.ValidateStockLines(tt.lines)
			if got := errors.Is(err, product.ErrInvalid); got != tt.wantErr || (err != nil && !got) {
				t.Fatalf("ValidateStockLines() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}
