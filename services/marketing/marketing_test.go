package marketing_test

import (
	"errors"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/marketing"
)

func TestPromotionValidate(t *testing.T) {
	sd := skuDiscount(1, 9000, 5)
	fr := fullReduction(2, marketing.Tier{Threshold: 99_00, Off: 9_00})
	tests := []struct {
		name    string
		p       marketing.Promotion
		edit    func(*marketing.Promotion)
		wantErr bool
	}{
		{"valid SKU discount", sd, func(*marketing.Promotion) {}, false},
		{"valid full reduction on every SKU", fr, func(*marketing.Promotion) {}, false},
		{"full reduction on some SKUs", fr, func(p *marketing.Promotion) { p.SKUIDs = []int64{3} }, false},
		{"SKU discount without SKUs", sd, func(p *marketing.Promotion) { p.SKUIDs = nil }, true},
		{"rate 100%", sd, func(p *marketing.Promotion) { p.RateBP = marketing.BasisPoints }, true},
		{"rate 0", sd, func(p *marketing.Promotion) { p.RateBP = 0 }, true},
		{"SKU discount with tiers", sd, func(p *marketing.Promotion) { p.Tiers = fr.Tiers }, true},
		{"full reduction with a rate", fr, func(p *marketing.Promotion) { p.RateBP = 9000 }, true},
		{"full reduction without tiers", fr, func(p *marketing.Promotion) { p.Tiers = nil }, true},
		{"tier taking more than its threshold", fr, func(p *marketing.Promotion) { p.Tiers = []marketing.Tier{{10, 11}} }, true},
		{"tier taking nothing", fr, func(p *marketing.Promotion) { p.Tiers = []marketing.Tier{{10, 0}} }, true},
		{"bad SKU id", sd, func(p *marketing.Promotion) { p.SKUIDs = []int64{0} }, true},
		{"unknown kind", sd, func(p *marketing.Promotion) { p.Kind = "BOGO" }, true},
		{"coupon is not a promotion", sd, func(p *marketing.Promotion) { p.Kind = marketing.KindCoupon }, true},
		{"ends before it starts", sd, func(p *marketing.Promotion) { p.EndsAt = p.StartsAt.Add(-time.Second) }, true},
		{"already ended", sd, func(p *marketing.Promotion) { p.EndsAt = t0 }, true},
		{"no window", sd, func(p *marketing.Promotion) { p.StartsAt = time.Time{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			tt.edit(&p)
			err := p.Validate(t0)
			if got := errors.Is(err, marketing.ErrInvalid); got != tt.wantErr || (err != nil && !got) {
				t.Fatalf("Validate() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

func TestCouponTemplateValidate(t *testing.T) {
	from, until := window()
	valid := marketing.CouponTemplate{Threshold: 99_00, Amount: 10_00, Total: 1000, PerUserLimit: 1, ValidFrom: from, ValidUntil: until}
	tests := []struct {
		name    string
		edit    func(*marketing.CouponTemplate)
		wantErr bool
	}{
		{"valid", func(*marketing.CouponTemplate) {}, false},
		{"no threshold", func(c *marketing.CouponTemplate) { c.Threshold = 0 }, false},
		{"negative threshold", func(c *marketing.CouponTemplate) { c.Threshold = -1 }, true},
		{"zero amount", func(c *marketing.CouponTemplate) { c.Amount = 0 }, true},
		{"none issued", func(c *marketing.CouponTemplate) { c.Total = 0 }, true},
		{"too many issued", func(c *marketing.CouponTemplate) { c.Total = marketing.MaxCoupons + 1 }, true},
		{"zero per-user limit", func(c *marketing.CouponTemplate) { c.PerUserLimit = 0 }, true},
		{"expired", func(c *marketing.CouponTemplate) { c.ValidUntil = t0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.edit(&c)
			err := c.Validate(t0)
			if got := errors.Is(err, marketing.ErrInvalid); got != tt.wantErr || (err != nil && !got) {
				t.Fatalf("Validate() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

func TestCouponStatusAt(t *testing.T) {
	c := coupon(1, 0, 1)
	if got := c.StatusAt(t0); got != marketing.CouponAvailable {
		t.Errorf("inside the window: %s, want AVAILABLE", got)
	}
	if got := c.StatusAt(c.ValidUntil); got != marketing.CouponExpired {
		t.Errorf("at the window's end: %s, want EXPIRED", got)
	}
	c.Status = marketing.CouponUsed
	if got := c.StatusAt(c.ValidUntil); got != marketing.CouponUsed {
		t.Errorf("used, past the window: %s, want USED", got)
	}
}
