package gateway

import (
	"testing"

	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// TestRecentStepsDropRepeatsInBoundedMemory feeds a partition's worth of
// steps, each followed by repeats at every distance up to the window, and
// checks that every repeat within the window is recognised, no first
// copy is taken for a repeat, and the memory held never exceeds two
// generations however many steps pass. A repeat older than two
// generations is taken for new: the price of the bound.
func TestRecentStepsDropRepeatsInBoundedMemory(t *testing.T) {
	const size = 64
	r := newRecentSteps(size)
	step := func(i int) eventStep {
		return eventStep{order: int64(i), typ: orderv1.OrderEvent_TYPE_STORED}
	}
	for i := range 100 * size {
		if r.seen(step(i)) {
			t.Fatalf("step %d taken for a repeat on its first copy", i)
		}
		// A repeat of each of the last size steps, as a relay's second
		// claim would publish them.
		for back := 0; back < size && back <= i; back++ {
			if !r.seen(step(i - back)) {
				t.Fatalf("after step %d: the repeat of step %d (%d back) was not recognised", i, i-back, back)
			}
		}
		if held := len(r.cur) + len(r.prev); held > 2*size {
			t.Fatalf("after step %d: %d steps held, want at most %d", i, held, 2*size)
		}
	}
	// The same order's other steps are steps of their own.
	paid := eventStep{order: 1, typ: orderv1.OrderEvent_TYPE_PAID}
	refund := eventStep{order: 1, typ: orderv1.OrderEvent_TYPE_REFUNDED, ref: 9}
	if r.seen(paid) || r.seen(refund) || r.seen(eventStep{order: 1, typ: orderv1.OrderEvent_TYPE_REFUNDED, ref: 10}) {
		t.Error("a paid or refunded step of an order taken for a repeat of its other steps")
	}
	if r.seen(step(0)) {
		t.Error("a step older than two generations still remembered: memory is not bounded")
	}
}
