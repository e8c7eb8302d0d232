package ids_test

import (
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/ids"
)

func TestNextIsUniqueAndIncreasingUnderConcurrency(t *testing.T) {
	// A frozen clock forces every id into the same few milliseconds, the
	// hardest case for the sequence field.
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	g, err := ids.NewGenerator(ids.SpaceOrder, 7, c)
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 16, 2000
	out := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				out[w] = append(out[w], g.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[int64]bool, workers*per)
	for _, ids := range out {
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate id %d", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[i-1] {
				t.Fatalf("ids not increasing within a goroutine: %d after %d", id, ids[i-1])
			}
		}
	}
}

func TestClockGoingBackwardsNeverRepeats(t *testing.T) {
	start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	c := clock.NewManual(start)
	g, _ := ids.NewGenerator(ids.SpaceOrder, 1, c)
	a := g.Next()
	c.Set(start.Add(-time.Second))
	b := g.Next()
	if b <= a {
		t.Fatalf("got %d after %d, want a larger id", b, a)
	}
}

func TestRanges(t *testing.T) {
	for _, replica := range []int64{-1, ids.MaxReplica + 1} {
		if _, err := ids.NewGenerator(ids.SpaceOrder, replica, clock.Real{}); err == nil {
			t.Errorf("replica %d accepted", replica)
		}
	}
	if _, err := ids.NewGenerator(0, 0, clock.Real{}); err == nil {
		t.Error("id space 0 accepted")
	}
}

// Two services issuing ids at the same instant, each as replica 0, never
// issue the same id.
func TestSpacesNeverCollide(t *testing.T) {
	c := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	a, _ := ids.NewGenerator(ids.SpaceOrder, 0, c)
	b, _ := ids.NewGenerator(ids.SpacePayment, 0, c)
	seen := map[int64]bool{}
	for range 10_000 {
		for _, id := range []int64{a.Next(), b.Next()} {
			if seen[id] {
				t.Fatalf("id %d issued twice", id)
			}
			seen[id] = true
		}
	}
}
