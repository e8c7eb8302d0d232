package sweep_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/sweep"
)

// Every runs rounds until its context ends, hands each round that
// context, and then returns nil.
func TestEveryRunsRoundsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rounds := make(chan context.Context)
	done := make(chan error, 1)
	go func() {
		done <- sweep.Every(ctx, time.Millisecond, func(ctx context.Context) { rounds <- ctx })
	}()
	for range 3 {
		if got := <-rounds; got != ctx {
			t.Fatal("a round got another context than the worker's")
		}
	}
	cancel()
	// A round that was due as the context ended may still come.
	for {
		select {
		case <-rounds:
			continue
		case err := <-done:
			if err != nil {
				t.Fatalf("Every = %v, want nil", err)
			}
			return
		}
	}
}
