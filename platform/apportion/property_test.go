package apportion_test

import (
	"math/big"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"testing/quick"

	"github.com/flashsale/flashsale/platform/apportion"
)

// cart is a random split problem: line amounts (some zero, some equal, a
// few large) and an amount between zero and their sum.
type cart struct {
	Amount  int64
	Weights []int64
}

// Generate implements quick.Generator.
func (cart) Generate(r *rand.Rand, _ int) reflect.Value {
	n := 1 + r.Intn(12)
	c := cart{Weights: make([]int64, n)}
	var sum int64
	for i := range c.Weights {
		switch r.Intn(6) {
		case 0:
			c.Weights[i] = 0
		case 1:
			c.Weights[i] = 1 + r.Int63n(3) // a few cents: rounding dominates
		case 2:
			c.Weights[i] = 1_000_000_000_000 + r.Int63n(1_000_000_000_000) // products overflow 64 bits
		default:
			c.Weights[i] = 1 + r.Int63n(100_000)
		}
		if i > 0 && r.Intn(4) == 0 {
			c.Weights[i] = c.Weights[r.Intn(i)] // ties
		}
		sum += c.Weights[i]
	}
	switch r.Intn(4) {
	case 0:
		c.Amount = sum // everything free
	case 1:
		c.Amount = max(0, sum-r.Int63n(4)) // nearly everything: the carry path
	default:
		c.Amount = r.Int63n(sum + 1)
	}
	return reflect.ValueOf(c)
}

// quickConfig runs enough random cases to reach the rare paths (carries,
// ties) many times, with a fixed seed so a failure repeats.
var quickConfig = &quick.Config{MaxCount: 20_000, Rand: rand.New(rand.NewSource(1))}

func TestSplitProperties(t *testing.T) {
	prop := func(c cart) bool {
		got, err := apportion.Split(c.Amount, c.Weights)
		if err != nil {
			t.Logf("%+v: %v", c, err)
			return false
		}
		again, _ := apportion.Split(c.Amount, c.Weights)
		if !slices.Equal(got, again) {
			t.Logf("%+v: not deterministic: %v then %v", c, got, again)
			return false
		}
		var sum int64
		for i, s := range got {
			if s < 0 || s > c.Weights[i] {
				t.Logf("%+v: share %d of line %d outside 0..%d", c, s, i, c.Weights[i])
				return false
			}
			sum += s
		}
		if sum != c.Amount {
			t.Logf("%+v: shares %v sum to %d", c, got, sum)
			return false
		}
		return checkRounding(t, c, got)
	}
	if err := quick.Check(prop, quickConfig); err != nil {
		t.Fatal(err)
	}
}

// checkRounding checks the shares against the exact proportions, computed
// with math/big: every line but the remainder line gets its exact share
// rounded down (so it is less than a cent off), and the remainder line
// gets the rest, unless the rest does not fit in it; then it is full and
// no line gets less than its rounded-down share.
func checkRounding(t *testing.T, c cart, got []int64) bool {
	var total big.Int
	for _, w := range c.Weights {
		total.Add(&total, big.NewInt(w))
	}
	floors := make([]int64, len(c.Weights))
	left := c.Amount
	remainder := 0
	for i, w := range c.Weights {
		if total.Sign() > 0 {
			var q big.Int
			q.Mul(big.NewInt(c.Amount), big.NewInt(w)).Quo(&q, &total)
			floors[i] = q.Int64()
		}
		left -= floors[i]
		if w > c.Weights[remainder] {
			remainder = i
		}
	}
	carried := left > c.Weights[remainder]-floors[remainder]
	for i, s := range got {
		switch {
		case i == remainder && !carried && s != floors[i]+left:
			t.Logf("%+v: remainder line %d got %d, want %d+%d", c, i, s, floors[i], left)
			return false
		case i == remainder && carried && s != c.Weights[i]:
			t.Logf("%+v: remainder line %d got %d, want it full (%d)", c, i, s, c.Weights[i])
			return false
		case i != remainder && !carried && s != floors[i]:
			t.Logf("%+v: line %d got %d, want its rounded-down share %d", c, i, s, floors[i])
			return false
		case s < floors[i]:
			t.Logf("%+v: line %d got %d, less than its rounded-down share %d", c, i, s, floors[i])
			return false
		}
	}
	return true
}

// line is a random line with a discount no larger than its amount.
type line struct {
	UnitPrice, Quantity, Discount int64
	// Steps are the sizes of successive partial refunds.
	Steps []int64
}

// Generate implements quick.Generator.
func (line) Generate(r *rand.Rand, _ int) reflect.Value {
	l := line{UnitPrice: r.Int63n(10_000), Quantity: 1 + r.Int63n(50)}
	if r.Intn(5) == 0 {
		l.UnitPrice = r.Int63n(4)
	}
	l.Discount = r.Int63n(l.UnitPrice*l.Quantity + 1)
	for left := l.Quantity; left > 0; {
		k := 1 + r.Int63n(left)
		l.Steps = append(l.Steps, k)
		left -= k
	}
	return reflect.ValueOf(l)
}

func TestRefundProperties(t *testing.T) {
	prop := func(l line) bool {
		payable := l.UnitPrice*l.Quantity - l.Discount
		units, err := apportion.Units(l.UnitPrice, l.Quantity, l.Discount)
		if err != nil {
			t.Logf("%+v: %v", l, err)
			return false
		}
		for i, u := range units {
			if u < 0 || u > l.UnitPrice {
				t.Logf("%+v: unit %d pays %d, outside 0..%d", l, i, u, l.UnitPrice)
				return false
			}
			// Within a cent of its exact share: price − discount/quantity.
			if exact := l.UnitPrice*l.Quantity - l.Discount; u*l.Quantity < exact-l.Quantity || u*l.Quantity > exact+l.Quantity {
				t.Logf("%+v: unit %d pays %d, more than a cent from %d/%d", l, i, u, exact, l.Quantity)
				return false
			}
		}
		var refunded, done int64
		for _, k := range l.Steps {
			amount, err := apportion.Refund(l.UnitPrice, l.Quantity, l.Discount, done, k)
			if err != nil {
				t.Logf("%+v: refund %d after %d: %v", l, k, done, err)
				return false
			}
			if again, _ := apportion.Refund(l.UnitPrice, l.Quantity, l.Discount, done, k); again != amount {
				t.Logf("%+v: refund %d after %d answered %d then %d", l, k, done, amount, again)
				return false
			}
			refunded += amount
			done += k
		}
		if refunded != payable {
			t.Logf("%+v: refunds add up to %d, the line pays %d", l, refunded, payable)
			return false
		}
		_, err = apportion.Refund(l.UnitPrice, l.Quantity, l.Discount, done, 1)
		return err != nil // nothing is left to refund
	}
	if err := quick.Check(prop, quickConfig); err != nil {
		t.Fatal(err)
	}
}
