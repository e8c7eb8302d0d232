package drive

import (
	"bytes"
	"runtime"
	"strconv"
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

// TestPoolHandsARequestToAnIdleGoroutine checks what the pool is for: a
// request given after another has finished runs on the goroutine that
// ran it (which has grown its stack already), not on a new one. Each
// request waits for the one before it; a goroutine's id is never used
// twice, so a pool that started a goroutine per request never sees one
// again.
func TestPoolHandsARequestToAnIdleGoroutine(t *testing.T) {
	p := newPool(time.Minute)
	defer p.wait()
	seen := map[int64]bool{}
	for range 100 {
		ran := make(chan int64)
		p.Go(func() { ran <- goroutineID() })
		id := <-ran
		if seen[id] {
			return
		}
		seen[id] = true
		time.Sleep(time.Millisecond) // for it to go back to waiting
	}
	t.Fatalf("100 requests one after another ran on %d goroutines, none twice", len(seen))
}

// goroutineID reads the calling goroutine's id from its stack's header
// ("goroutine 42 [running]:").
func goroutineID() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	id, _ := strconv.ParseInt(string(buf[:bytes.IndexByte(buf, ' ')]), 10, 64)
	return id
}
