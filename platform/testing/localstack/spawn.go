package localstack

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
)

// Process is a program started with Stack.Spawn.
type Process struct{ c *child }

// Spawn starts cmd as a child of the stack, as its servers are started:
// with the parent-death signal (it dies with the owner, even one killed
// with SIGKILL), in a process group of its own, its output in
// Dir()/<name>.log. Close stops every spawned process still running, all
// at once and before the stack's servers, with SIGTERM (SIGKILL after
// 10 s). deploy/local/split runs the services' binaries this way.
func (s *Stack) Spawn(name string, cmd *exec.Cmd) (*Process, error) {
	c, err := s.procs.spawn(name, filepath.Join(s.dir, name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	p := &Process{c: c}
	s.mu.Lock()
	s.spawned = append(s.spawned, p)
	s.mu.Unlock()
	return p, nil
}

// Stop stops the process (SIGTERM, SIGKILL after 10 s) and waits for it.
func (p *Process) Stop() error { return p.c.stop(syscall.SIGTERM) }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.c.exited }

// Err is nil while the process runs; once it has exited, it says how,
// with the last lines of its log.
func (p *Process) Err() error { return p.c.failed() }

// Log is the file the process's output goes to.
func (p *Process) Log() string { return p.c.log }

// stopSpawned stops the spawned processes in parallel.
func (s *Stack) stopSpawned() []error {
	s.mu.Lock()
	procs := s.spawned
	s.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			if err := p.Stop(); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.c.name, err)
			}
		})
	}
	wg.Wait()
	return []error{errors.Join(errs...)}
}
