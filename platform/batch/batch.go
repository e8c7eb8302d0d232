// Package batch gathers concurrent calls to one remote method into batch
// calls, the idea of the Redis auto-pipeliner one hop up: while batches
// are on the wire the next one gathers, and a lone call still goes out at
// once. Under a spike one call (its HTTP/2 frames, headers, goroutines
// and system calls on both sides) then serves dozens of callers instead
// of one; each caller still gets an answer of its own. The order
// service's reservations (order → inventory) and the gateway's flash-sale
// placements (gateway → order) travel so (docs/performance.md).
package batch

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/flashsale/flashsale/platform/errcode"
)

// errCount fails every member of a batch whose call answered with another
// count of answers than it had members.
var errCount = errcode.New(errcode.Internal, "a batch call answered with a different count of answers")

// Answer is one member's answer in a batch: what its own call would have
// returned.
type Answer[Resp any] struct {
	Resp Resp
	Err  error
}

// Member is one caller's request in a batch, with the caller's context,
// which carries its trace (a span of its own, started by Do) and its
// deadline: a batch call may pass them on per member.
type Member[Req any] struct {
	Ctx context.Context
	Req Req
}

// Send makes one batch call for members and returns one answer per
// member, in their order; an error fails every member with it.
type Send[Req, Resp any] func(ctx context.Context, members []Member[Req]) ([]Answer[Resp], error)

// Config tunes a Batcher.
type Config struct {
	// Name names the spans: each caller's ("<Name>") and each batch's
	// ("<Name> batch", linked to its members').
	Name string
	// MaxBatch is the most members one call carries.
	MaxBatch int
	// MaxInFlight is how many batch calls may be on the wire at once.
	// Below it a call goes out at once, alone; at it, callers wait for
	// the next free slot and leave together. Fewer slots make larger
	// batches (less CPU per call) at the price of a wait of up to one
	// call's time.
	MaxInFlight int
	// Base is the context every batch call starts from, before the
	// latest of its members' deadlines is added: a batch serves many
	// callers, so it cannot take any one caller's context. Values every
	// member shares (a traffic class's mark) go here; nil: Background.
	Base context.Context
	// Gone is the error of a caller whose context ended before its
	// answer came (nil: the context's error itself).
	Gone func(error) error
}

// Batcher gathers calls into batches of Send.
type Batcher[Req, Resp any] struct {
	cfg    Config
	send   Send[Req, Resp]
	tracer trace.Tracer

	mu      sync.Mutex
	waiting []*call[Req, Resp]
	sending int // batches on the wire
}

// call is one caller's request on its way through the batcher.
type call[Req, Resp any] struct {
	ctx    context.Context
	req    Req
	done   chan struct{} // closed once answer is set
	answer Answer[Resp]
}

// New returns a batcher of send.
func New[Req, Resp any](cfg Config, send Send[Req, Resp]) *Batcher[Req, Resp] {
	if cfg.Base == nil {
		cfg.Base = context.Background()
	}
	if cfg.Gone == nil {
		cfg.Gone = func(err error) error { return err }
	}
	cfg.MaxBatch, cfg.MaxInFlight = max(cfg.MaxBatch, 1), max(cfg.MaxInFlight, 1)
	return &Batcher[Req, Resp]{cfg: cfg, send: send, tracer: otel.Tracer("github.com/flashsale/flashsale/platform/batch")}
}

// Do sends req in the next batch and returns its answer. A caller whose
// ctx ends before its batch left is never sent; one whose ctx ends while
// its batch is on the wire gets cfg.Gone of the context's error, like any
// call abandoned in flight, and the remote work may still be done.
func (b *Batcher[Req, Resp]) Do(ctx context.Context, req Req) (Resp, error) {
	// The caller's trace gets a span of its own for the call; the batch,
	// which serves many traces, links to it.
	ctx, span := b.tracer.Start(ctx, b.cfg.Name, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	c := &call[Req, Resp]{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	// A free slot makes this caller the sender, even when what it takes
	// turns out empty (its own context has ended): send gives the slot
	// back.
	sender := b.sending < b.cfg.MaxInFlight
	var batch []*call[Req, Resp]
	if sender {
		b.sending++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
	if sender {
		b.sendAll(batch)
	}
	select {
	case <-c.done:
		return c.answer.Resp, c.answer.Err
	case <-ctx.Done():
		var zero Resp
		return zero, b.cfg.Gone(ctx.Err())
	}
}

// takeLocked takes up to MaxBatch waiting calls, oldest first, leaving
// out those whose caller has gone: they are answered with Gone and never
// sent. b.mu must be held.
func (b *Batcher[Req, Resp]) takeLocked() []*call[Req, Resp] {
	var batch []*call[Req, Resp]
	n := 0
	for ; n < len(b.waiting) && len(batch) < b.cfg.MaxBatch; n++ {
		c := b.waiting[n]
		if err := c.ctx.Err(); err != nil {
			c.answer.Err = b.cfg.Gone(err)
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	b.waiting = b.waiting[n:]
	return batch
}

// sendAll makes one batch call for batch and answers its callers; then,
// holding the same slot, it sends what gathered meanwhile from a
// goroutine of its own, so that the caller running it can return.
func (b *Batcher[Req, Resp]) sendAll(batch []*call[Req, Resp]) {
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
	go b.sendAll(next)
}

// call sends batch as one call and hands each caller its answer. The call
// runs on a context of its own, which outlives any one caller: its
// deadline is the latest of theirs, so it is abandoned only when all of
// them have gone.
func (b *Batcher[Req, Resp]) call(batch []*call[Req, Resp]) {
	members := make([]Member[Req], len(batch))
	links := make([]trace.Link, len(batch))
	var latest time.Time
	bounded := true
	for i, c := range batch {
		members[i] = Member[Req]{Ctx: c.ctx, Req: c.req}
		links[i] = trace.LinkFromContext(c.ctx)
		d, ok := c.ctx.Deadline()
		bounded = bounded && ok
		if d.After(latest) {
			latest = d
		}
	}
	ctx, span := b.tracer.Start(b.cfg.Base, b.cfg.Name+" batch", trace.WithLinks(links...))
	defer span.End()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	answers, err := b.send(ctx, members)
	if err == nil && len(answers) != len(batch) {
		err = errCount
	}
	for i, c := range batch {
		if err != nil {
			c.answer.Err = err
		} else {
			c.answer = answers[i]
		}
		close(c.done)
	}
}
