package telemetry

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Readiness is what a process still waits for before it may serve: each
// Hold names one part of its configuration still being read (the
// settings an operator keeps in Consul KV), and the process is ready once
// every hold is released. The zero value holds nothing: ready. Err is one
// atomic load whether ready or not, so a server may ask it on every
// request.
type Readiness struct {
	err  atomic.Pointer[error] // nil when nothing is held
	mu   sync.Mutex
	held []string
}

// Hold makes the process not ready until release is called; what names
// the wait in Err. Calling release again does nothing.
func (r *Readiness) Hold(what string) (release func()) {
	r.mu.Lock()
	r.held = append(r.held, what)
	r.update()
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			i := slices.Index(r.held, what)
			r.held = slices.Delete(r.held, i, i+1)
			r.update()
		})
	}
}

// update sets the error Err answers from what is held; r.mu is held.
func (r *Readiness) update() {
	if len(r.held) == 0 {
		r.err.Store(nil)
		return
	}
	err := errors.New("waiting for " + strings.Join(r.held, ", "))
	r.err.Store(&err)
}

// Err is nil once nothing is held, else an error naming what is awaited.
func (r *Readiness) Err() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}
