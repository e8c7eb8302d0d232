package grpc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/proto/limits"
	"github.com/flashsale/flashsale/services/order"
)

// Limits of the reserve batcher.
const (
	// maxBatchesInFlight is how many ReserveBatch calls may be on the
	// wire at once. Below it a buy goes out at once, alone; at it, buys
	// wait for the next free slot and leave together. Fewer slots make
	// larger batches (less CPU per buy) at the price of a wait of up to
	// one call's time; two keep both of this machine's cores busy.
	maxBatchesInFlight = 2
)

// reserveBatcher gathers the reservations of concurrent buys into
// ReserveBatch calls, the idea of the Redis auto-pipeliner one hop up:
// while batches are on the wire the next one gathers, and a lone buy
// still goes out at once. Under a spike one call (its HTTP/2 frames,
// headers, goroutines and system calls on both sides) then serves dozens
// of buys instead of one. Each reservation is still decided on its own
// by the inventory; only the transport is shared.
type reserveBatcher struct {
	client inventoryv1.InventoryServiceClient
	tracer trace.Tracer
	// marked: the batcher of pressure-test buys (platform/shadow). A
	// batch shares one call and so one context, which must carry the
	// mark of every buy in it: each traffic class has its own batcher.
	marked bool

	mu      sync.Mutex
	waiting []*reserveCall
	sending int // batches on the wire
}

// reserveCall is one buy's reservation on its way through the batcher.
type reserveCall struct {
	ctx  context.Context
	req  *inventoryv1.ReserveRequest
	done chan struct{} // closed once resp or err is set
	resp *inventoryv1.ReserveResponse
	err  error
}

func newReserveBatcher(client inventoryv1.InventoryServiceClient, marked bool) *reserveBatcher {
	return &reserveBatcher{client: client, marked: marked, tracer: otel.Tracer("github.com/flashsale/flashsale/services/order/grpc")}
}

// reserve sends req in the next batch and returns its answer: the
// response, or the status error Reserve would have returned. A caller
// whose ctx ends before its batch left is never sent; one whose ctx ends
// while its batch is on the wire gets the context's error, like any call
// abandoned in flight, and the reservation may still be made.
func (b *reserveBatcher) reserve(ctx context.Context, req *inventoryv1.ReserveRequest) (*inventoryv1.ReserveResponse, error) {
	// The buy's trace gets a span of its own for the reservation; the
	// batch, which serves many traces, links to it.
	ctx, span := b.tracer.Start(ctx, "inventory reserve", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	call := &reserveCall{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, call)
	// A free slot makes this caller the sender, even when what it takes
	// turns out empty (its own context has ended): send gives the slot
	// back.
	sender := b.sending < maxBatchesInFlight
	var batch []*reserveCall
	if sender {
		b.sending++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
	if sender {
		b.send(batch)
	}
	select {
	case <-call.done:
		return call.resp, call.err
	case <-ctx.Done():
		return nil, errcode.New(errcode.Unavailable, "inventory reserve: "+ctx.Err().Error())
	}
}

// takeLocked takes up to limits.MaxBatch waiting calls, oldest first,
// leaving out those whose caller has gone: they are answered with their
// context's error and never sent. b.mu must be held.
func (b *reserveBatcher) takeLocked() []*reserveCall {
	var batch []*reserveCall
	n := 0
	for ; n < len(b.waiting) && len(batch) < limits.MaxBatch; n++ {
		c := b.waiting[n]
		if err := c.ctx.Err(); err != nil {
			c.err = errcode.New(errcode.Unavailable, "inventory reserve: "+err.Error())
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	b.waiting = b.waiting[n:]
	return batch
}

// send makes one ReserveBatch call for batch and answers its callers;
// then, holding the same slot, it sends what gathered meanwhile from a
// goroutine of its own, so that the caller running send can return.
func (b *reserveBatcher) send(batch []*reserveCall) {
	if len(batch) > 0 {
		b.call(batch)
	}
	b.mu.Lock()
	next := b.takeLocked()
	if len(next) == 0 {
		b.sending--
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	go b.send(next)
}

// call sends batch as one ReserveBatch and hands each caller its answer.
// The call runs on a context of its own, which outlives any one caller:
// its deadline is the latest of theirs, so it is abandoned only when all
// of them have gone.
func (b *reserveBatcher) call(batch []*reserveCall) {
	req := &inventoryv1.ReserveBatchRequest{Reservations: make([]*inventoryv1.ReserveRequest, len(batch))}
	links := make([]trace.Link, len(batch))
	var latest time.Time
	bounded := true
	for i, c := range batch {
		req.Reservations[i] = c.req
		links[i] = trace.LinkFromContext(c.ctx)
		d, ok := c.ctx.Deadline()
		bounded = bounded && ok
		if d.After(latest) {
			latest = d
		}
	}
	base := context.Background()
	if b.marked {
		base = shadow.With(base)
	}
	ctx, span := b.tracer.Start(base, "inventory reserve batch", trace.WithLinks(links...))
	defer span.End()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	resp, err := b.client.ReserveBatch(ctx, req)
	if err == nil && len(resp.GetAnswers()) != len(batch) {
		err = errcode.New(errcode.Internal, "inventory answered a batch of reservations with a different count")
	}
	for i, c := range batch {
		switch {
		case err != nil:
			c.err = err
		case resp.GetAnswers()[i].GetReserved() != nil:
			c.resp = resp.GetAnswers()[i].GetReserved()
		case resp.GetAnswers()[i].GetError() != nil:
			e := resp.GetAnswers()[i].GetError()
			c.err = errcode.New(errcode.Code(e.GetCode()), e.GetMessage())
			if errcode.Code(e.GetCode()) == errcode.Unavailable {
				// The inventory answered this reservation itself, so an
				// UNAVAILABLE here is its decision, not a failed call:
				// the sale is fenced (inventory.ErrFenced, the one
				// domain error it answers so), and nothing was reserved.
				c.err = fmt.Errorf("inventory reserve: %s: %w", e.GetMessage(), order.ErrSaleFenced)
			}
		default:
			c.err = errcode.New(errcode.Internal, "inventory answered a reservation with neither a result nor an error")
		}
		close(c.done)
	}
}
