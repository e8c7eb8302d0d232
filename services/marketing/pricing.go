package marketing

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/flashsale/flashsale/platform/apportion"
	"github.com/flashsale/flashsale/proto/limits"
)

// Line is a cart line to price.
type Line struct {
	SKUID     int64
	Quantity  int64
	UnitPrice int64 // cents
}

// Share is the part of one promotion's discount that one line carries.
type Share struct {
	PromotionID int64 // the coupon's id for a coupon
	Kind        Kind
	Amount      int64
}

// PricedLine is a line with its discount: Amount is UnitPrice × Quantity,
// Discount the sum of Shares, Payable Amount − Discount (never negative).
type PricedLine struct {
	Line
	Amount   int64
	Discount int64
	Payable  int64
	Shares   []Share
}

// Applied is a promotion (or coupon) that took money off, and how much in
// all.
type Applied struct {
	ID     int64
	Kind   Kind
	Amount int64
}

// Quote is a priced cart. Total, Discount and Payable are the sums over
// Lines; Applied lists the promotions in stacking order, and their
// amounts add up to Discount.
type Quote struct {
	Lines    []PricedLine
	Applied  []Applied
	Total    int64
	Discount int64
	Payable  int64
	// CouponID is the coupon applied, zero for none.
	CouponID int64
}

// ValidateLines checks a cart: the lines every service checks
// (limits.CheckLines: 1..MaxLines lines, each SKU once, positive ids,
// quantities 1..MaxQuantity) and prices 0..MaxUnitPrice.
func ValidateLines(lines []Line) error {
	if err := limits.CheckLines(len(lines), MaxQuantity, func(i int) (int64, int64) { return lines[i].SKUID, lines[i].Quantity }); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, l := range lines {
		if l.UnitPrice < 0 || l.UnitPrice > MaxUnitPrice {
			return fmt.Errorf("%w: unit price %d of sku %d outside 0..%d", ErrInvalid, l.UnitPrice, l.SKUID, int64(MaxUnitPrice))
		}
	}
	return nil
}

// Price prices lines at now with the promotions and, when coupon is not
// nil, the coupon, stacked in the order of Kinds:
//
//  1. SKU discount: each line gets the lowest rate among the active SKU
//     discounts that name its SKU; its discount is the line amount times
//     (100% − rate), rounded down to the cent.
//  2. Full reduction: of the active full reductions, the one that takes
//     the most off (ties: the lowest id) applies, with its best tier
//     reached by the eligible lines' amounts after step 1; it takes at
//     most what those lines still cost, and leaves the order at least
//     MinPayable.
//  3. Coupon: when the order's payable amount after step 2 reaches its
//     threshold (else ErrCouponNotApplicable), it takes its amount off,
//     at most all but MinPayable of what the order still costs.
//
// Steps 2 and 3 apportion their discount over the lines they cover in
// proportion to what each line costs at that step (apportion.Split), so
// lines never go below zero and always add up exactly. Only one promotion
// of each kind applies to a line. Price checks the coupon's window but not
// its owner or status; the caller does.
func Price(lines []Line, promotions []Promotion, coupon *Coupon, now time.Time) (Quote, error) {
	if err := ValidateLines(lines); err != nil {
		return Quote{}, err
	}
	q := Quote{Lines: make([]PricedLine, len(lines))}
	for i, l := range lines {
		q.Lines[i] = PricedLine{Line: l, Amount: l.UnitPrice * l.Quantity}
		q.Lines[i].Payable = q.Lines[i].Amount
	}
	active := activeByID(promotions, now)
	if err := q.skuDiscounts(active); err != nil {
		return Quote{}, err
	}
	if err := q.fullReduction(active); err != nil {
		return Quote{}, err
	}
	if coupon != nil {
		if err := q.coupon(*coupon, now); err != nil {
			return Quote{}, err
		}
	}
	for _, l := range q.Lines {
		q.Total += l.Amount
		q.Discount += l.Discount
		q.Payable += l.Payable
	}
	return q, nil
}

// activeByID returns the promotions active at now ordered by id, so that
// ties are always broken the same way.
func activeByID(promotions []Promotion, now time.Time) []Promotion {
	var out []Promotion
	for _, p := range promotions {
		if p.ActiveAt(now) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Promotion) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// skuDiscounts applies step 1.
func (q *Quote) skuDiscounts(active []Promotion) error {
	byPromotion := make(map[int64]map[int]int64)
	for i, l := range q.Lines {
		var best *Promotion
		for j, p := range active {
			if p.Kind == KindSKUDiscount && p.AppliesTo(l.SKUID) && (best == nil || p.RateBP < best.RateBP) {
				best = &active[j]
			}
		}
		if best == nil {
			continue
		}
		off, err := apportion.Scale(l.Amount, BasisPoints-best.RateBP, BasisPoints)
		if err != nil {
			return fmt.Errorf("sku discount %d: %w", best.ID, err)
		}
		if byPromotion[best.ID] == nil {
			byPromotion[best.ID] = make(map[int]int64)
		}
		byPromotion[best.ID][i] = off
	}
	for _, p := range active {
		if shares, ok := byPromotion[p.ID]; ok {
			q.give(p.ID, KindSKUDiscount, shares)
		}
	}
	return nil
}

// MinPayable is the least an order comes to after its discounts: a
// payment channel opens no trade of nothing, so an order of 0.00 could
// never be paid (and every try would count against a channel's health).
// The field's rule: the buyer pays at least a cent.
const MinPayable = 1

// offLeft is what the discounts may still take off the order: all but
// MinPayable of what its lines still cost.
func (q *Quote) offLeft() int64 {
	var left int64
	for _, l := range q.Lines {
		left += l.Payable
	}
	return max(left-MinPayable, 0)
}

// fullReduction applies step 2.
func (q *Quote) fullReduction(active []Promotion) error {
	var (
		best     *Promotion
		bestOff  int64
		bestIdxs []int
	)
	limit := q.offLeft()
	for j, p := range active {
		if p.Kind != KindFullReduction {
			continue
		}
		var idxs []int
		var base int64
		for i, l := range q.Lines {
			if p.AppliesTo(l.SKUID) {
				idxs = append(idxs, i)
				base += l.Payable
			}
		}
		var off int64
		for _, t := range p.Tiers {
			if base >= t.Threshold {
				off = max(off, min(t.Off, base, limit))
			}
		}
		if off > bestOff {
			best, bestOff, bestIdxs = &active[j], off, idxs
		}
	}
	if best == nil {
		return nil
	}
	return q.apportion(best.ID, KindFullReduction, bestOff, bestIdxs)
}

// coupon applies step 3.
func (q *Quote) coupon(c Coupon, now time.Time) error {
	if !c.ValidAt(now) {
		return fmt.Errorf("coupon %d is valid %s..%s: %w", c.ID,
			c.ValidFrom.Format(time.RFC3339), c.ValidUntil.Format(time.RFC3339), ErrCouponNotApplicable)
	}
	idxs := make([]int, len(q.Lines))
	var base int64
	for i, l := range q.Lines {
		idxs[i] = i
		base += l.Payable
	}
	limit := q.offLeft()
	switch {
	case base < c.Threshold:
		return fmt.Errorf("coupon %d needs %d cents, the order comes to %d: %w", c.ID, c.Threshold, base, ErrCouponNotApplicable)
	case limit == 0:
		// Nothing left to take off: the coupon would be used up for a
		// discount of nothing.
		return fmt.Errorf("coupon %d: the order comes to %d cents after its promotions, the least it may: %w", c.ID, base, ErrCouponNotApplicable)
	}
	q.CouponID = c.ID
	return q.apportion(c.ID, KindCoupon, min(c.Amount, limit), idxs)
}

// apportion splits off over the lines at idxs in proportion to what they
// still cost.
func (q *Quote) apportion(id int64, kind Kind, off int64, idxs []int) error {
	weights := make([]int64, len(idxs))
	for k, i := range idxs {
		weights[k] = q.Lines[i].Payable
	}
	shares, err := apportion.Split(off, weights)
	if err != nil {
		return fmt.Errorf("%s %d: %w", kind, id, err)
	}
	byLine := make(map[int]int64, len(idxs))
	for k, i := range idxs {
		byLine[i] = shares[k]
	}
	q.give(id, kind, byLine)
	return nil
}

// give records the promotion's shares on the lines (zero shares are left
// out) and the promotion in Applied when it took anything off.
func (q *Quote) give(id int64, kind Kind, shares map[int]int64) {
	var sum int64
	for i := range q.Lines {
		s, ok := shares[i]
		if !ok || s == 0 {
			continue
		}
		l := &q.Lines[i]
		l.Shares = append(l.Shares, Share{PromotionID: id, Kind: kind, Amount: s})
		l.Discount += s
		l.Payable -= s
		sum += s
	}
	if sum > 0 {
		q.Applied = append(q.Applied, Applied{ID: id, Kind: kind, Amount: sum})
	}
}
