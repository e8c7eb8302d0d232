package scenario

import (
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds Parse any bytes, starting from the shipped scenarios:
// a file a user wrote is either refused with an error or accepted as a
// scenario that ends after it starts, whose phases end after they start
// and have a rate that is a number, never negative; never a panic. `go test ./loadtest/scenario -run '^$' -fuzz
// FuzzParse -fuzztime 3000000x` explores.
func FuzzParse(f *testing.F) {
	for _, p := range shipped(f) {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(valid))
	f.Add([]byte(strings.Replace(valid, "start: 0s, ramp: 1s, hold: 2s", "start: 2000000h, ramp: 1s, hold: 2000000h", 1)))
	f.Add([]byte(strings.Replace(valid, "rate: 10", "rate: .inf, rate_from: .inf", 1)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Parse(raw)
		if err != nil {
			return
		}
		if s.End() <= 0 {
			t.Fatalf("accepted a scenario that ends at %s", s.End())
		}
		for _, p := range s.Phases {
			if p.End() <= p.Start.D() {
				t.Fatalf("phase %s: ends at %s, starts at %s", p.Name, p.End(), p.Start.D())
			}
			for i := range 11 {
				at := p.Start.D() + (p.End()-p.Start.D())/10*time.Duration(i)
				if r := p.RateAt(at); r < 0 || r != r {
					t.Fatalf("phase %s: rate %g at %s", p.Name, r, at)
				}
			}
		}
	})
}
