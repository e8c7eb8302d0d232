package limits

import "fmt"

// CheckLines checks the SKU lines of one request the way every service
// that takes them does: 1..MaxLines lines, positive SKU ids, each SKU
// once, quantities 1..maxQuantity. line(i) gives line i's SKU and
// quantity. The error says which rule broke; callers wrap it in their own
// invalid-argument error.
func CheckLines(n int, maxQuantity int64, line func(i int) (sku, quantity int64)) error {
	if n < 1 || n > MaxLines {
		return fmt.Errorf("%d lines, want 1..%d", n, MaxLines)
	}
	seen := make(map[int64]bool, n)
	for i := range n {
		sku, quantity := line(i)
		switch {
		case sku <= 0:
			return fmt.Errorf("sku id %d is not positive", sku)
		case seen[sku]:
			return fmt.Errorf("sku %d listed twice", sku)
		case quantity < 1 || quantity > maxQuantity:
			return fmt.Errorf("quantity %d of sku %d outside 1..%d", quantity, sku, maxQuantity)
		}
		seen[sku] = true
	}
	return nil
}
