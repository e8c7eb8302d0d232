package drive

import (
	"sync"
	"time"
)

// pool runs each request on a goroutine of its own, as an open loop must
// (a slow answer never delays the next send), but hands a new request to
// a goroutine that finished one and waits idle, before it starts
// another. A new goroutine starts with a small stack and grows it on its
// first request (the HTTP client's calls are deep): a tenth of the load
// generator's CPU in a cost.yaml profile, taken from the cores the
// platform shares (docs/benchmarks.md). The zero value is not usable:
// make one with newPool.
type pool struct {
	// work hands a request to an idle goroutine: unbuffered, so a
	// request is never left waiting for one.
	work chan func()
	// done tells the idle goroutines to stop (wait).
	done    chan struct{}
	running sync.WaitGroup
	// idle is how long a goroutine waits for its next request.
	idle time.Duration
}

// poolIdle keeps a goroutine for the next request across a lull of the
// arrivals (a Poisson process at the lowest phase rate of a scenario
// leaves gaps of tens of milliseconds), not across a whole phase.
const poolIdle = time.Second

func newPool(idle time.Duration) *pool {
	return &pool{work: make(chan func()), done: make(chan struct{}), idle: idle}
}

// Go runs f at once: on an idle goroutine when one waits, else on a new
// one. It may be called from f itself, and while wait waits.
func (p *pool) Go(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	p.running.Go(func() {
		f()
		t := time.NewTimer(p.idle)
		defer t.Stop()
		for {
			select {
			case f := <-p.work:
				f()
				t.Reset(p.idle)
			case <-t.C:
				return
			case <-p.done:
				return
			}
		}
	})
}

// wait tells the idle goroutines to stop and waits until every request
// given to Go, and every one those gave, has returned. Call it once.
func (p *pool) wait() {
	close(p.done)
	p.running.Wait()
}
