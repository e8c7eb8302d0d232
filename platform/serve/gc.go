package serve

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target when GOGC is not
// set: the heap may grow to five times the live data before a cycle.
// The services' live heaps are small (tens of MB) while a spike
// allocates fast (HTTP, gRPC and protobuf buffers per request), so at Go's
// default of 100 the collector runs many times a second and took about
// a third of the CPU of a flash-sale replay; at 400 that share falls to
// a few percent for some extra memory (docs/performance.md).
const DefaultGCPercent = 400

// TuneGC sets the garbage collector's target to DefaultGCPercent unless
// the operator chose one through GOGC.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
