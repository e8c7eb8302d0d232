package shadow_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/flashsale/flashsale/platform/shadow"
)

func TestMarkAndNames(t *testing.T) {
	ctx := context.Background()
	if shadow.Is(ctx) || shadow.Label(ctx) != "real" {
		t.Fatal("a plain context is marked")
	}
	m := shadow.With(ctx)
	if !shadow.Is(m) || shadow.Label(m) != "shadow" {
		t.Fatal("With does not mark")
	}
	if got := shadow.Topic(m, "orders.placed"); got != "orders.placed.shadow" || !shadow.IsTopic(got) {
		t.Fatalf("shadow topic %q", got)
	}
	if got := shadow.Topic(ctx, "orders.placed"); got != "orders.placed" || shadow.IsTopic(got) {
		t.Fatalf("real topic %q", got)
	}
	if got := shadow.Key(m, "{act:1}:stock"); got != "shadow:{act:1}:stock" {
		t.Fatalf("shadow key %q", got)
	}
	if got := shadow.Key(m, shadow.Key(m, "k")); got != "shadow:k" {
		t.Fatalf("a key is prefixed twice: %q", got)
	}
	if got := shadow.Key(ctx, "{act:1}:stock"); got != "{act:1}:stock" {
		t.Fatalf("real key %q", got)
	}
	// The two classes of Contexts are unmarked and marked, even from a
	// marked parent: a worker started under a marked context still serves
	// real traffic once.
	cs := shadow.Contexts(m)
	if shadow.Is(cs[0]) || !shadow.Is(cs[1]) {
		t.Fatal("Contexts does not give one context per class")
	}
}

func TestEachRunsOncePerClass(t *testing.T) {
	var mu sync.Mutex
	seen := map[bool]int{}
	if err := shadow.Each(context.Background(), func(ctx context.Context) error {
		mu.Lock()
		seen[shadow.Is(ctx)]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen[false] != 1 || seen[true] != 1 {
		t.Fatalf("runs per class: %v", seen)
	}
	// The first error ends the other class's run and is returned.
	boom := errors.New("boom")
	err := shadow.Each(context.Background(), func(ctx context.Context) error {
		if shadow.Is(ctx) {
			return boom
		}
		<-ctx.Done()
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
}
