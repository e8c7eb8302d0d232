package gateway

import (
	"testing"

	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// TestScreenKeepsTheLatestSales runs a screen through sale after sale:
// it keeps lines for the latest screenSales sales alone, with all their
// orders, and a late event of a sale pushed out brings no line back.
func TestScreenKeepsTheLatestSales(t *testing.T) {
	s := newScreen(nil, ScreenOptions{})
	stored := func(activityID int64) {
		s.apply(&orderv1.OrderEvent{OrderId: activityID, Type: orderv1.OrderEvent_TYPE_STORED, ActivityId: activityID}, false)
	}
	const sales = 1000
	for id := int64(1); id <= sales; id++ {
		stored(id)
		stored(id)
		if got := len(s.sales); got > screenSales {
			t.Fatalf("after sale %d: %d sales held, want at most %d", id, got, screenSales)
		}
	}
	stored(1) // a late order of a sale long pushed out

	if got := len(s.sales); got != screenSales {
		t.Errorf("%d sales held, want %d", got, screenSales)
	}
	for id := int64(sales - screenSales + 1); id <= sales; id++ {
		if sale := s.sales[id]; sale == nil || sale.Stored != 2 {
			t.Errorf("sale %d: %+v, want its 2 stored orders", id, sale)
		}
	}
	if s.snap.StoredOrders != 2*sales+1 {
		t.Errorf("stored orders = %d, want every sale's: %d", s.snap.StoredOrders, 2*sales+1)
	}
}
