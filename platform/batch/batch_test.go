package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/batch"
	"github.com/flashsale/flashsale/platform/errcode"
)

// recorder is a Send that answers each member with its request doubled
// and remembers the batches it was given; while gate is set, each call
// waits for it to close (after saying so on held).
type recorder struct {
	mu        sync.Mutex
	batches   [][]int
	deadlines []time.Time
	gate      chan struct{}
	held      chan struct{}
	answers   int // how many answers to give (0: one per member)
}

func (r *recorder) send(ctx context.Context, members []batch.Member[int]) ([]batch.Answer[int], error) {
	r.mu.Lock()
	reqs := make([]int, len(members))
	for i, m := range members {
		reqs[i] = m.Req
	}
	r.batches = append(r.batches, reqs)
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	gate, held, n := r.gate, r.held, r.answers
	r.mu.Unlock()
	if gate != nil {
		held <- struct{}{}
		<-gate
	}
	if n == 0 {
		n = len(members)
	}
	answers := make([]batch.Answer[int], n)
	for i := range min(n, len(members)) {
		answers[i].Resp = 2 * members[i].Req
	}
	return answers, nil
}

// Callers that arrive while the only slot is busy leave together in the
// next calls, at most MaxBatch to a call, and each gets the answer to its
// own request; a batch's deadline is the latest of its members', and a
// lone caller without one sends a call without one.
func TestWaitingCallersShareTheNextCall(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), held: make(chan struct{}, 8)}
	b := batch.New(batch.Config{Name: "test", MaxBatch: 3, MaxInFlight: 1}, r.send)
	first := make(chan int)
	go func() { v, _ := b.Do(context.Background(), 1); first <- v }()
	<-r.held // the first call holds the only slot

	base := time.Now().Add(time.Hour)
	deadline := func(req int) time.Time { return base.Add(time.Duration(req) * time.Second) }
	var wg sync.WaitGroup
	got := make([]int, 5)
	for i := range 5 {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline(10+i))
			defer cancel()
			v, err := b.Do(ctx, 10+i)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			got[i] = v
		})
	}
	for batch.Waiting(b) < 5 {
		time.Sleep(time.Millisecond)
	}
	close(r.gate)
	wg.Wait()
	if v := <-first; v != 2 {
		t.Fatalf("first caller: %d, want 2", v)
	}
	for i, v := range got {
		if v != 2*(10+i) {
			t.Errorf("caller %d: %d, want %d", i, v, 2*(10+i))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 3 || len(r.batches[1]) != 3 || len(r.batches[2]) != 2 {
		t.Fatalf("batches %v, want [1] then the five in calls of 3 and 2", r.batches)
	}
	if !r.deadlines[0].IsZero() {
		t.Errorf("the lone caller had no deadline, its call has %v", r.deadlines[0])
	}
	for i, reqs := range r.batches[1:] {
		var latest time.Time
		for _, req := range reqs {
			if d := deadline(req); d.After(latest) {
				latest = d
			}
		}
		if !r.deadlines[i+1].Equal(latest) {
			t.Errorf("call of %v: deadline %v, want %v, the latest of its members'", reqs, r.deadlines[i+1], latest)
		}
	}
}

// A call that answers with another count of answers than it had members
// fails every member, rather than handing answers to the wrong callers.
func TestAnswersOfAnotherCountFailEveryMember(t *testing.T) {
	r := &recorder{answers: 2}
	b := batch.New(batch.Config{Name: "test", MaxBatch: 8, MaxInFlight: 1}, r.send)
	_, err := b.Do(context.Background(), 1)
	if errcode.Of(err) != errcode.Internal {
		t.Fatalf("got %v, want INTERNAL", err)
	}
}

// A caller whose context has ended is answered with Gone and never sent.
func TestAnEndedCallerIsNeverSent(t *testing.T) {
	r := &recorder{}
	gone := errors.New("gone")
	b := batch.New(batch.Config{Name: "test", Gone: func(error) error { return gone }}, r.send)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Do(ctx, 1); !errors.Is(err, gone) {
		t.Fatalf("got %v, want Gone's error", err)
	}
	if _, err := b.Do(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 1 || r.batches[0][0] != 2 {
		t.Fatalf("batches %v, want only the live caller's", r.batches)
	}
}
