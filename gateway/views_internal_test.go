package gateway

import (
	"runtime"
	"strings"
	"testing"
)

// If-None-Match is read without building its list of tags: a header of a
// megabyte of commas, which anyone may send to a public read, costs next
// to no memory (split into a slice, it was a million strings, 16 MB, per
// request), and the tags are still matched as before. Bytes, not
// allocations, are counted: the race detector's own allocations would
// make a count of zero fail under -race.
func TestETagMatchAllocatesNothing(t *testing.T) {
	commas := strings.Repeat(",", 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	etagMatches(commas, `"v1"`)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("If-None-Match of a megabyte of commas: %d bytes allocated, want next to none", n)
	}
	for header, want := range map[string]bool{`"v0", W/"v1"`: true, `*`: true, `"v0"`: false, commas + `"v1"`: true} {
		if got := etagMatches(header, `"v1"`); got != want {
			t.Errorf("If-None-Match %.20q…: %v, want %v", header, got, want)
		}
	}
}
