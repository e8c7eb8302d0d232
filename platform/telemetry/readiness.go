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
// every hold is released. The zero value holds nothing: ready. Err is
// cheap once ready (one atomic load), so a server may ask it on every
// request.
type Readiness struct {
	waiting atomic.Int32 // len(held)
	mu      sync.Mutex
	held    []string
}

// Hold makes the process not ready until release is called; what names
// the wait in Err. Calling release again does nothing.
func (r *Readiness) Hold(what string) (release func()) {
	r.mu.Lock()
	r.held = append(r.held, what)
	r.waiting.Add(1)
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			i := slices.Index(r.held, what)
			r.held = slices.Delete(r.held, i, i+1)
			r.waiting.Add(-1)
		})
	}
}

// Err is nil once nothing is held, else an error naming what is awaited.
func (r *Readiness) Err() error {
	if r.waiting.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 {
		return nil
	}
	return errors.New("waiting for " + strings.Join(r.held, ", "))
}
