package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/app"
)

// heldPublisher holds publishes while holding is set: it hands each held
// order to held and waits until letGo is closed, then fails without
// publishing (when fail is set, as a timeout would) or publishes for real.
type heldPublisher struct {
	order.Publisher
	holding atomic.Bool
	fail    bool
	held    chan order.Placed
	letGo   chan struct{}
}

func (h *heldPublisher) Publish(ctx context.Context, p order.Placed) error {
	if h.holding.Load() {
		h.held <- p
		<-h.letGo
		if h.fail {
			return errAmbiguous
		}
	}
	return h.Publisher.Publish(ctx, p)
}

// Release lets the held publishes go, and publishes after them straight
// through.
func (h *heldPublisher) Release() {
	h.holding.Store(false)
	close(h.letGo)
}

// watchedPending counts the reads of the published mark, which only a
// replayed request waiting for the first request's order makes.
type watchedPending struct {
	order.Pending
	reads atomic.Int64
}

func (w *watchedPending) Outcome(ctx context.Context, orderID int64) (order.Outcome, error) {
	w.reads.Add(1)
	return w.Pending.Outcome(ctx, orderID)
}

// MustHeldPlatform starts the platform with a heldPublisher that holds
// from the start and fails what it held when fail is set, and with its
// pending store watched.
func MustHeldPlatform(tb testing.TB, fail bool) (*platform, *heldPublisher, *watchedPending) {
	tb.Helper()
	pub := &heldPublisher{fail: fail, held: make(chan order.Placed, 1), letGo: make(chan struct{})}
	pub.holding.Store(true)
	pend := &watchedPending{}
	p := MustPlatform(tb, nil,
		app.WrapPublisher(func(real order.Publisher) order.Publisher {
			pub.Publisher = real
			return pub
		}),
		app.WrapPending(func(real order.Pending) order.Pending {
			pend.Pending = real
			return pend
		}))
	return p, pub, pend
}

// placed is the answer to one PlaceSeckillOrder call.
type placed struct {
	id  int64
	err error
}

// goPlace places one unit in the background and returns where its answer
// arrives.
func goPlace(ctx context.Context, p *platform, user, activity int64, key string) <-chan placed {
	out := make(chan placed, 1)
	go func() {
		id, err := place(ctx, p, user, activity, key)
		out <- placed{id, err}
	}()
	return out
}

// heldReplay is a first request whose publish was held, a replay of its
// key issued meanwhile, and their answers once the publish is let go.
type heldReplay struct {
	p             *platform
	act, user     int64
	held          order.Placed // the first request's order
	first, replay <-chan placed
}

// MustHeldReplay places a unit (of 5, limit 1) whose publish is held,
// issues a replay of its key, waits until the replay has looked at the
// first order in full at least once (two reads of its published mark),
// and lets the publish go: it fails when fail is set.
func MustHeldReplay(tb testing.TB, fail bool) heldReplay {
	tb.Helper()
	p, pub, pend := MustHeldPlatform(tb, fail)
	a := p.MustActivity(tb, 5, 1, -time.Minute)
	h := heldReplay{p: p, act: a.GetActivityId(), user: newUsers(1)}
	h.first = goPlace(context.Background(), p, h.user, h.act, "k")
	h.held = <-pub.held
	before := pend.reads.Load()
	h.replay = goPlace(context.Background(), p, h.user, h.act, "k")
	for deadline := time.Now().Add(10 * time.Second); pend.reads.Load() < before+2; time.Sleep(time.Millisecond) {
		select {
		case r := <-h.replay:
			tb.Fatalf("replay answered %d (%v) while the first publish was held", r.id, r.err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatal("the replay never waited for the first order")
		}
	}
	pub.Release()
	return h
}

func TestReplayDuringAFailingPublishIsNotAnsweredWithIt(t *testing.T) {
	h := MustHeldReplay(t, true)
	p, act, user, lost, ctx := h.p, h.act, h.user, h.held, context.Background()

	answered := map[int64]bool{}
	if r := <-h.first; errcode.Of(r.err) != errcode.Unavailable {
		t.Fatalf("first: got %d (%v), want UNAVAILABLE", r.id, r.err)
	}
	// The first order is released: the replay must not be answered with
	// it. It is told to retry, or, had it reserved after the release, it
	// got a fresh order.
	switch r := <-h.replay; {
	case r.err == nil && r.id != lost.OrderID:
		answered[r.id] = true
	case errcode.Of(r.err) != errcode.Unavailable:
		t.Fatalf("replay: got %d (%v), want UNAVAILABLE or a fresh order (not %d)", r.id, r.err, lost.OrderID)
	}
	// The buyer's retry with the key gets an order: the key reserves
	// afresh after the release (or answers the replay's fresh order).
	retry := MustPlace(t, p, user, act, "k")
	if retry == lost.OrderID || (len(answered) == 1 && !answered[retry]) {
		t.Fatalf("retry: got %d, want a fresh order (released %d, answered %v)", retry, lost.OrderID, answered)
	}
	answered[retry] = true

	MustDrain(t)
	for id := range answered {
		if n, err := storedOrders(ctx, p.db, id); err != nil || n != 1 {
			t.Fatalf("answered order %d: got %d rows (%v), want 1", id, n, err)
		}
	}
	if n, err := storedOrders(ctx, p.db, lost.OrderID); err != nil || n != 0 {
		t.Fatalf("released order %d: got %d rows (%v), want none", lost.OrderID, n, err)
	}
	if got, want := MustStock(t, p, act), 5-int64(len(answered)); got != want {
		t.Fatalf("stock: got %d, want %d (5 less the %d answered orders)", got, want, len(answered))
	}
}

func TestReplayDuringASucceedingPublishWaitsForIt(t *testing.T) {
	h := MustHeldReplay(t, false)
	p, held, ctx := h.p, h.held, context.Background()

	for name, ch := range map[string]<-chan placed{"first": h.first, "replay": h.replay} {
		if r := <-ch; r.err != nil || r.id != held.OrderID {
			t.Fatalf("%s: got %d (%v), want the held order %d", name, r.id, r.err, held.OrderID)
		}
	}
	MustDrain(t)
	if n, err := storedOrders(ctx, p.db, held.OrderID); err != nil || n != 1 {
		t.Fatalf("order %d: got %d rows (%v), want 1", held.OrderID, n, err)
	}
	if got := MustStock(t, p, h.act); got != 4 {
		t.Fatalf("stock: got %d, want 4", got)
	}
	if again := MustPlace(t, p, h.user, h.act, "k"); again != held.OrderID {
		t.Fatalf("retry: got %d, want %d", again, held.OrderID)
	}
}

func TestPlacementOutlivesTheCallersContext(t *testing.T) {
	p, pub, _ := MustHeldPlatform(t, false)
	a := p.MustActivity(t, 5, 1, -time.Minute)
	act, user := a.GetActivityId(), newUsers(1)

	// The caller gives up while the event is being published, as the
	// gateway's call timeout does. A deadline (rather than a cancel)
	// travels with the call, so the service's context ends with it
	// without waiting for the cancellation to reach the server.
	callCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	first := goPlace(callCtx, p, user, act, "k")
	held := <-pub.held
	// The server's copy of the deadline may fire (and reset the stream)
	// a moment before the client's own timer: the answer's code is what
	// says the call ended with its deadline.
	if r := <-first; status.Code(r.err) != codes.DeadlineExceeded {
		t.Fatalf("first: got %d (%v), want the call to end with its deadline", r.id, r.err)
	}
	// The service received the deadline after the client set it: past
	// this margin its context has ended too.
	time.Sleep(100 * time.Millisecond)
	pub.Release()

	// Nobody waits for the placement any more: it is done when the order
	// is stored.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := storedOrders(context.Background(), p.db, held.OrderID)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %d: got %d rows (%v), want 1 (the publish outlives the caller)", held.OrderID, n, err)
		}
	}
	if again := MustPlace(t, p, user, act, "k"); again != held.OrderID {
		t.Fatalf("retry: got %d, want %d", again, held.OrderID)
	}
	if got := MustStock(t, p, act); got != 4 {
		t.Fatalf("stock: got %d, want 4", got)
	}
}
