// Package apportion splits an amount of money over weighted parts exactly:
// an order-level discount over the order's lines in proportion to their
// amounts, and a line's discount over its units. It is pure integer
// arithmetic on int64 cents, with 128-bit intermediate products, so the
// result never depends on floating point and never overflows.
//
// The rule over lines (docs/marketing.md): every part gets its exact
// proportional share rounded down to the cent; the cents that rounding
// left over go to the part with the largest weight (ties: the first such
// part). A part never gets more than its own weight, so a discounted line
// never goes below zero: what would push it under is carried to the next
// part in the same order (largest weight first, ties by position). The
// shares always add up to the amount exactly. Over a line's units (Units)
// the leftover cents go one each to the first units instead.
package apportion

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// ErrInvalid reports an amount or weights that cannot be split: negative
// numbers, an amount larger than the weights' sum, or a sum that
// overflows int64.
var ErrInvalid = errors.New("apportion: invalid input")

// Sum returns the sum of values, failing with ErrInvalid when one is
// negative or the sum overflows int64.
func Sum(values []int64) (int64, error) {
	var total int64
	for i, v := range values {
		if v < 0 {
			return 0, fmt.Errorf("%w: value %d at %d is negative", ErrInvalid, v, i)
		}
		if total > (1<<63-1)-v {
			return 0, fmt.Errorf("%w: sum overflows int64", ErrInvalid)
		}
		total += v
	}
	return total, nil
}

// Split divides amount over parts in proportion to weights and returns
// each part's share (see the package comment for the rule). It fails with
// ErrInvalid when amount is negative or exceeds the sum of weights, since
// then some part would have to go below zero.
func Split(amount int64, weights []int64) ([]int64, error) {
	sum, err := Sum(weights)
	if err != nil {
		return nil, err
	}
	if amount < 0 || amount > sum {
		return nil, fmt.Errorf("%w: amount %d outside 0..%d (the weights' sum)", ErrInvalid, amount, sum)
	}
	shares := make([]int64, len(weights))
	if amount == 0 {
		return shares, nil
	}
	left := amount
	for i, w := range weights {
		shares[i] = mulDiv(amount, w, sum)
		left -= shares[i]
	}
	// The rounded-down shares leave fewer cents than there are parts.
	// Hand them out largest weight first, each part up to its weight.
	for _, i := range byWeight(weights) {
		if left == 0 {
			break
		}
		extra := min(left, weights[i]-shares[i])
		shares[i] += extra
		left -= extra
	}
	return shares, nil
}

// Scale returns amount×num/den rounded down, for a rate num/den between 0
// and 1 (a percentage in basis points is Scale(amount, bp, 10000)). The
// product is computed in 128 bits, so it cannot overflow.
func Scale(amount, num, den int64) (int64, error) {
	if amount < 0 || num < 0 || den <= 0 || num > den {
		return 0, fmt.Errorf("%w: scaling %d by %d/%d", ErrInvalid, amount, num, den)
	}
	return mulDiv(num, amount, den), nil
}

// mulDiv returns a×w/sum rounded down, for 0 <= a <= sum and 0 <= w,
// sum > 0. The product is computed in 128 bits; the quotient is at most
// w, so it fits.
func mulDiv(a, w, sum int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(w))
	q, _ := bits.Div64(hi, lo, uint64(sum))
	return int64(q)
}

// byWeight returns the parts' indexes, largest weight first and, among
// equal weights, in their original order.
func byWeight(weights []int64) []int {
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case weights[a] > weights[b]:
			return -1
		case weights[a] < weights[b]:
			return 1
		}
		return 0
	})
	return order
}

// MaxUnits bounds the quantity of a line that Units splits, which bounds
// the memory a split takes.
const MaxUnits = 100_000

// Units splits a line's discount over its quantity units of unitPrice each
// and returns each unit's payable amount: unit price minus its share of
// the discount. Every unit takes the discount's exact share rounded down,
// and the cents that rounding left over go one each to the first units,
// so every unit is within a cent of its exact share. (Split's rule, all
// the leftover on one part, would put up to quantity−1 cents on the first
// unit: 999.99 off 1,000 units of 100.00 made the first refunded unit
// return 89.02 instead of 99.00.) The result is the same for the same
// line every time, and it sums to the line's payable amount.
func Units(unitPrice, quantity, discount int64) ([]int64, error) {
	if quantity < 1 || quantity > MaxUnits {
		return nil, fmt.Errorf("%w: quantity %d outside 1..%d", ErrInvalid, quantity, MaxUnits)
	}
	if unitPrice < 0 {
		return nil, fmt.Errorf("%w: unit price %d is negative", ErrInvalid, unitPrice)
	}
	if hi, lo := bits.Mul64(uint64(unitPrice), uint64(quantity)); hi != 0 || lo > 1<<63-1 {
		return nil, fmt.Errorf("%w: %d units of %d overflow int64", ErrInvalid, quantity, unitPrice)
	}
	if discount < 0 || discount > unitPrice*quantity {
		return nil, fmt.Errorf("%w: discount %d outside 0..%d (the line's amount)", ErrInvalid, discount, unitPrice*quantity)
	}
	share, left := discount/quantity, discount%quantity
	units := make([]int64, quantity)
	for i := range units {
		units[i] = unitPrice - share
		if int64(i) < left {
			units[i]--
		}
	}
	return units, nil
}

// Refund returns what refunding k more units of a line costs when done
// units of it are already refunded: the payable amounts of units
// done..done+k-1 of Units. Refunds take units in a fixed order, so
// refunding a line piece by piece in any steps adds up to exactly the
// line's payable amount, and asking again for the same step answers the
// same amount.
func Refund(unitPrice, quantity, discount, done, k int64) (int64, error) {
	if done < 0 || k < 1 || done+k > quantity {
		return 0, fmt.Errorf("%w: refunding %d units after %d of %d", ErrInvalid, k, done, quantity)
	}
	units, err := Units(unitPrice, quantity, discount)
	if err != nil {
		return 0, err
	}
	return Sum(units[done : done+k])
}
