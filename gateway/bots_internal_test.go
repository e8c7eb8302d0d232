package gateway

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// randomBlocks are n CIDR blocks of both families and many lengths,
// some IPv6 ones IPv4-mapped, drawn from rng.
func randomBlocks(rng *rand.Rand, n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	for range n {
		var a [16]byte
		for i := range a {
			a[i] = byte(rng.IntN(256))
		}
		switch rng.IntN(3) {
		case 0:
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(a[:4])), 8+rng.IntN(25)))
		case 1:
			out = append(out, netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(97)))
		default:
			mapped := netip.AddrFrom16(netip.AddrFrom4([4]byte(a[:4])).As16())
			out = append(out, netip.PrefixFrom(mapped, 104+rng.IntN(25)))
		}
	}
	return out
}

// near is an address inside or beside a random block, or anywhere, in
// either family and as an IPv4-mapped address.
func near(rng *rand.Rand, blocks []netip.Prefix) netip.Addr {
	b := blocks[rng.IntN(len(blocks))].Addr().AsSlice()
	if rng.IntN(4) == 0 {
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
	} else {
		b[len(b)-1] ^= byte(rng.IntN(256))
	}
	a, _ := netip.AddrFromSlice(b)
	switch rng.IntN(4) {
	case 0:
		return a.Unmap()
	case 1:
		if a.Is4() {
			return netip.AddrFrom16(a.As16())
		}
	}
	return a
}

// A prefix set answers exactly as a walk of its blocks with
// netip.Prefix.Contains does, the families kept apart as Contains keeps
// them.
func TestPrefixSetMatchesAWalkOfItsBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		blocks := randomBlocks(rng, 1+rng.IntN(40))
		set := newPrefixSet(blocks)
		for range 400 {
			ip := near(rng, blocks)
			want := slices.ContainsFunc(blocks, func(p netip.Prefix) bool { return p.Contains(ip) })
			if got := set.contains(ip); got != want {
				t.Fatalf("round %d: contains(%s) = %v, a walk of %v says %v", round, ip, got, blocks, want)
			}
		}
	}
	if s := newPrefixSet(nil); len(s.blocks) != 0 || s.contains(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("an empty set contains something")
	}
}

// BenchmarkBlocklistLookup asks a blocklist of 10,000 blocks about an
// address in none of them, as almost every buyer is: a walk of the list
// against the prefix set.
func BenchmarkBlocklistLookup(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	ip := netip.MustParseAddr("203.0.113.77")
	blocks := slices.DeleteFunc(randomBlocks(rng, 10_000), func(p netip.Prefix) bool { return p.Contains(ip) })
	var found bool
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			found = slices.ContainsFunc(blocks, func(p netip.Prefix) bool { return p.Contains(ip) })
		}
	})
	set := newPrefixSet(blocks)
	b.Run("set", func(b *testing.B) {
		for b.Loop() {
			found = set.contains(ip)
		}
	})
	if found {
		b.Fatalf("%s found in blocks that leave it out", ip)
	}
}
