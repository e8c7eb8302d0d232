package telemetry

import (
	"context"
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
	err      atomic.Pointer[error] // nil when nothing is held
	mu       sync.Mutex
	held     []string
	watchers []func(ready bool)
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

// Watch calls f with whether the process is ready now, and again on
// every Hold and release after, in order: a server whose readiness is
// asked elsewhere (the gRPC health service Consul checks) follows it.
func (r *Readiness) Watch(f func(ready bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers = append(r.watchers, f)
	f(len(r.held) == 0)
}

// Wait returns nil once the process is ready, or ctx's error if ctx ends
// first.
func (r *Readiness) Wait(ctx context.Context) error {
	ready := make(chan struct{})
	var once sync.Once
	r.Watch(func(ok bool) {
		if ok {
			once.Do(func() { close(ready) })
		}
	})
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// update sets the error Err answers from what is held and tells the
// watchers; r.mu is held.
func (r *Readiness) update() {
	for _, f := range r.watchers {
		f(len(r.held) == 0)
	}
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
