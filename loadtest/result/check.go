package result

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Check is one audited invariant. A skipped check could not be made
// (its feature is not served yet) and says why in Detail.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

// OrderStates is where the replay's accepted orders ended.
type OrderStates struct {
	// ByStatus counts the orders per final status.
	ByStatus map[string]int `json:"by_status"`
	// ReleasedUnits are the flash-sale units expired and cancelled
	// orders gave back.
	ReleasedUnits int64 `json:"released_units"`
	// Payments counts the orders' payments per final status.
	Payments map[string]int `json:"payments"`
	// LateRefunds are refunded payments of orders that expired or were
	// cancelled; DuplicateRefunds those of orders another payment paid;
	// BuyerRefunds the payments of orders their buyers had refunded in
	// full.
	LateRefunds      int `json:"late_refunds"`
	DuplicateRefunds int `json:"duplicate_refunds"`
	BuyerRefunds     int `json:"buyer_refunds"`
}

// Tally writes a status → count map in a stable order.
func Tally(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), m[k]))
	}
	return strings.Join(parts, ", ")
}
