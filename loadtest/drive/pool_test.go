package drive

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolNeverQueuesARequest checks the open loop: a request given to
// the pool runs at once though every goroutine it has is busy, a
// finished goroutine takes the next request, requests may give more
// (a buyer's come-back), and wait returns only once all have returned.
func TestPoolNeverQueuesARequest(t *testing.T) {
	p := newPool(time.Minute) // idle goroutines stay until wait
	release := make(chan struct{})
	started := make(chan int, 3)
	for i := range 3 {
		p.Go(func() {
			started <- i
			<-release // all three busy at once
		})
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("a request waited for a busy goroutine")
		}
	}
	close(release)

	var ran atomic.Int64
	for range 100 {
		p.Go(func() {
			ran.Add(1)
			p.Go(func() { ran.Add(1) }) // given while wait may be waiting
		})
	}
	waited := make(chan struct{})
	go func() { p.wait(); close(waited) }()
	select { // idle goroutines stop at once, not after their minute
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait waited for the idle goroutines' minute")
	}
	if got := ran.Load(); got != 200 {
		t.Fatalf("wait returned with %d of 200 requests run", got)
	}
}
