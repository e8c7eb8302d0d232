package serve_test

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/flashsale/flashsale/platform/serve"
)

// keepMemoryLimit restores the runtime's memory limit after the test.
func keepMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
}

func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

var discard = slog.New(slog.DiscardHandler)

// A 256 MiB container limit gives the runtime a soft limit of 90% of it.
func TestLimitMemoryFollowsTheContainer(t *testing.T) {
	keepMemoryLimit(t)
	unsetenv(t, "GOMEMLIMIT", "AUTOMEMLIMIT")
	var container uint64 = 256 << 20
	got, err := serve.LimitMemory(discard, memlimit.Limit(container))
	want := int64(float64(container) * serve.MemoryLimitRatio) // 230.4 MiB
	if err != nil || got != want {
		t.Fatalf("LimitMemory = %d, %v; want %d", got, err, want)
	}
	if inForce := debug.SetMemoryLimit(-1); inForce != want {
		t.Errorf("runtime limit %d, want %d", inForce, want)
	}
}

// The operator's GOMEMLIMIT wins; without a container limit none is set.
func TestLimitMemoryLeavesTheOperatorsChoice(t *testing.T) {
	keepMemoryLimit(t)
	unsetenv(t, "AUTOMEMLIMIT")
	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(100 << 20) // what the runtime read from GOMEMLIMIT at start
	if got, err := serve.LimitMemory(discard, memlimit.Limit(256<<20)); err != nil || got != 100<<20 {
		t.Errorf("with GOMEMLIMIT=100MiB: %d, %v; want it kept", got, err)
	}

	unsetenv(t, "GOMEMLIMIT")
	none := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	if got, err := serve.LimitMemory(discard, none); err != nil || got != math.MaxInt64 {
		t.Errorf("without a container limit: %d, %v; want no limit", got, err)
	}
}
