package cache_test

import (
	"context"
	"errors"
	"testing"

	"github.com/flashsale/flashsale/platform/cache"
)

// TestFilterRejectsIDsThatDoNotExist: after a rebuild from 100,000 ids,
// each of them passes, and of 10,000 others at most a few pass (the
// false-positive rate is 0.1 %).
func TestFilterRejectsIDsThatDoNotExist(t *testing.T) {
	f := cache.NewFilter()
	if !f.MayExist(42) {
		t.Fatal("a filter never built rejected an id")
	}
	err := f.Rebuild(context.Background(), func(context.Context) ([]int64, error) {
		ids := make([]int64, 100_000)
		for i := range ids {
			ids[i] = int64(i+1) * 7
		}
		return ids, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 100_000; i++ {
		if !f.MayExist(i * 7) {
			t.Fatalf("id %d exists and was rejected", i*7)
		}
	}
	passed := 0
	for i := int64(1); i <= 10_000; i++ {
		if f.MayExist(i*7 + 1) {
			passed++
		}
	}
	if passed > 50 {
		t.Fatalf("%d of 10,000 unknown ids passed, want about 10", passed)
	}
	if st := f.Stats(); st.Negative != int64(10_000-passed) || st.Entries != 100_000 || st.Level != cache.Bloom {
		t.Fatalf("stats %+v", st)
	}
}

// TestFilterKeepsIDsAddedDuringARebuild: an id created while the ids are
// being read (and so perhaps not among them) is in the new filter; a
// failed rebuild keeps the old one.
func TestFilterKeepsIDsAddedDuringARebuild(t *testing.T) {
	f := cache.NewFilter()
	ctx := context.Background()
	if err := f.Rebuild(ctx, func(context.Context) ([]int64, error) { return []int64{1}, nil }); err != nil {
		t.Fatal(err)
	}
	err := f.Rebuild(ctx, func(context.Context) ([]int64, error) {
		f.Add(2)
		return []int64{1}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.MayExist(1) || !f.MayExist(2) || f.MayExist(3) {
		t.Fatalf("after the rebuild: 1 %v, 2 %v, 3 %v; want true, true, false", f.MayExist(1), f.MayExist(2), f.MayExist(3))
	}
	if err := f.Rebuild(ctx, func(context.Context) ([]int64, error) { return nil, errors.New("db down") }); err == nil {
		t.Fatal("failed rebuild: no error")
	}
	if !f.MayExist(2) || f.MayExist(3) {
		t.Fatal("a failed rebuild changed the filter")
	}
}
