package gateway

import (
	"strings"
	"testing"
)

// If-None-Match is read without building its list of tags: a header of a
// megabyte of commas, which anyone may send to a public read, allocates
// nothing (split into a slice, it was a million strings per request),
// and the tags are still matched as before.
func TestETagMatchAllocatesNothing(t *testing.T) {
	commas := strings.Repeat(",", 1<<20)
	if n := testing.AllocsPerRun(5, func() { etagMatches(commas, `"v1"`) }); n != 0 {
		t.Errorf("If-None-Match of a megabyte of commas: %v allocations a request, want 0", n)
	}
	for header, want := range map[string]bool{`"v0", W/"v1"`: true, `*`: true, `"v0"`: false, commas + `"v1"`: true} {
		if got := etagMatches(header, `"v1"`); got != want {
			t.Errorf("If-None-Match %.20q…: %v, want %v", header, got, want)
		}
	}
}
