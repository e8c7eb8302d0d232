package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/budget"
)

// A share ends at its part of the time left; the rest stays the caller's.
func TestShareEndsAtItsPart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, c := range []struct{ num, den int64 }{{1, 2}, {3, 4}, {1, 3}} {
		share, done := budget.Share(ctx, c.num, c.den)
		got, ok := share.Deadline()
		done()
		if !ok {
			t.Fatalf("%d/%d: no deadline", c.num, c.den)
		}
		// The share was cut from the hour left when it was asked for:
		// its end lies num/den of an hour from now, give or take the
		// moments this test took.
		want := time.Now().Add(time.Hour / time.Duration(c.den) * time.Duration(c.num))
		if d := got.Sub(want).Abs(); d > time.Minute {
			t.Errorf("%d/%d of an hour ends %s from now, want %s", c.num, c.den, time.Until(got).Round(time.Second), time.Until(want).Round(time.Second))
		}
	}
}

// A whole share, or a caller without a deadline, leaves the deadline as
// it is; the share still ends with the caller.
func TestShareWithoutADeadlineOrOfTheWhole(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	share, done := budget.Share(parent, 1, 2)
	defer done()
	if _, ok := share.Deadline(); ok {
		t.Error("a share of no deadline has one")
	}
	cancel()
	<-share.Done()

	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	whole, done := budget.Share(ctx, 1, 1)
	defer done()
	want, _ := ctx.Deadline()
	if got, _ := whole.Deadline(); !got.Equal(want) {
		t.Errorf("the whole share ends %s, the caller %s", got, want)
	}
}
