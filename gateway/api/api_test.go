package api_test

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"

	"github.com/flashsale/flashsale/gateway/api"
)

// The solver's answer solves the challenge and is the first that does;
// an answer that is not 1 to 20 digits never solves one.
func TestSolveChallenge(t *testing.T) {
	for _, bits := range []int{0, 1, 8, 12} {
		c := fmt.Sprintf("challenge-%d", bits)
		a := api.SolveChallenge(c, bits)
		if !api.SolvesChallenge(c, a, bits) {
			t.Fatalf("%d bits: answer %s does not solve %s", bits, a, c)
		}
		n, _ := strconv.Atoi(a)
		for i := range n {
			if api.SolvesChallenge(c, strconv.Itoa(i), bits) {
				t.Fatalf("%d bits: %d solves too, before %s", bits, i, a)
			}
		}
		h := sha256.Sum256([]byte(c + ":" + a))
		if bits == 8 && h[0] != 0 {
			t.Fatalf("8 bits: hash %x does not start with a zero byte", h)
		}
	}
	for _, a := range []string{"", "-1", "1e3", " 7", "123456789012345678901"} {
		if api.SolvesChallenge("c", a, 0) {
			t.Errorf("answer %q solves a challenge", a)
		}
	}
}

// What a buyer's solve costs in Go, by difficulty (a browser's
// JavaScript is several times slower).
func BenchmarkSolveChallenge(b *testing.B) {
	for _, bits := range []int{8, 14, 16} {
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			for i := range b.N {
				api.SolveChallenge("eyJ1IjozMDEsImEiOjM4NzEzODM2ODQwMjEwMDIyNCwiZCI6InBob25lLTEiLCJuIjoiYjcyZTZhZWUwN2RkMjMxN2Y0N2I1NDA3OTYzNmM2ZjIi."+strconv.Itoa(i), bits)
			}
		})
	}
}
