//go:build !linux

package localstack

import (
	"errors"
	"fmt"
	"runtime"
)

// ServerCPU reads the CPU time the stack's servers have used so far. It
// reads /proc, so outside Linux it returns an error wrapping
// errors.ErrUnsupported.
func (s *Stack) ServerCPU() (ServerCPU, error) {
	return ServerCPU{}, fmt.Errorf("localstack: CPU time of the servers on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
