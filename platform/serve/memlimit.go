package serve

import (
	"log/slog"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// MemoryLimitRatio is the share of the container's memory limit the Go
// runtime is held to (GOMEMLIMIT). The rest is for what the runtime does
// not count against GOMEMLIMIT but the container's limit does (the
// mapped binary, the kernel's page tables and socket buffers).
const MemoryLimitRatio = 0.9

// LimitMemory sets the Go runtime's soft memory limit to
// MemoryLimitRatio of the memory limit limit reports (memlimit.FromCgroup
// in the binaries: the container's limit, resources.limits.memory in
// Kubernetes, deploy.resources.limits.memory in compose). With
// DefaultGCPercent the heap may grow to five times the live data between
// cycles; under a 256 MiB limit a spike would reach the limit and the
// kernel would kill the process, where with GOMEMLIMIT the collector runs
// sooner as the heap nears it. GOMEMLIMIT set by the operator wins, and
// AUTOMEMLIMIT=off or a ratio in AUTOMEMLIMIT change the choice. Without
// a limit (a process outside any container) none is set. It returns the
// limit in force.
func LimitMemory(log *slog.Logger, limit memlimit.Provider) (int64, error) {
	return memlimit.Set(memlimit.WithRatio(MemoryLimitRatio), memlimit.WithProvider(limit), memlimit.WithLogger(log))
}
