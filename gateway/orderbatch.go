package gateway

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/batch"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/proto/limits"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// placesInFlight is how many PlaceSeckillOrderBatch calls one gateway
// replica keeps on the wire at once: two, as the reserve batcher. Four
// kept a buy's wait for a free slot shorter, but split the buys that
// arrive together into twice as many calls; with two, a buy cost 0.86
// of the platform's CPU at 1,500 buys a second and the spike's p99 fell
// (docs/performance.md). The price is the head of the line: a batch is
// answered when its slowest member is, and a member that waits (a replay
// waiting for its first request's order, at most the order service's
// ReplayWait) holds one slot of two while the other carries every buy.
const placesInFlight = 2

// placeBatcher gathers one traffic class's flash-sale placements.
type placeBatcher = batch.Batcher[*orderv1.PlaceSeckillOrderRequest, *orderv1.PlaceSeckillOrderResponse]

// batchedOrders is the order client the gateway works with: concurrent
// PlaceSeckillOrder calls travel together in PlaceSeckillOrderBatch calls
// (platform/batch), one batcher per traffic class, because a batch shares
// one call and so one mark (platform/shadow); every other method is the
// plain client's. Under a spike one call then carries dozens of buys
// instead of one (docs/performance.md); each buy keeps its own answer,
// deadline and trace.
type batchedOrders struct {
	orderv1.OrderServiceClient
	places [2]*placeBatcher // real, marked
}

func newBatchedOrders(c orderv1.OrderServiceClient) *batchedOrders {
	o := &batchedOrders{OrderServiceClient: c}
	for i, base := range []context.Context{context.Background(), shadow.With(context.Background())} {
		o.places[i] = batch.New(batch.Config{
			Name: "order place", MaxBatch: limits.MaxBatch, MaxInFlight: placesInFlight, Base: base,
			// A buy whose caller gave up is answered as a call abandoned
			// in flight: no answer, so its key is remembered unanswered.
			Gone: func(err error) error { return status.FromContextError(err).Err() },
		}, o.placeBatch)
	}
	return o
}

// PlaceSeckillOrder places req in the next batch of its traffic class.
func (o *batchedOrders) PlaceSeckillOrder(ctx context.Context, req *orderv1.PlaceSeckillOrderRequest, _ ...grpc.CallOption) (*orderv1.PlaceSeckillOrderResponse, error) {
	b := o.places[0]
	if shadow.Is(ctx) {
		b = o.places[1]
	}
	return b.Do(ctx, req)
}

// placeBatch sends members as one PlaceSeckillOrderBatch, each with its
// own trace context and deadline, and turns each answer back into what
// PlaceSeckillOrder would have returned.
func (o *batchedOrders) placeBatch(ctx context.Context, members []batch.Member[*orderv1.PlaceSeckillOrderRequest]) ([]batch.Answer[*orderv1.PlaceSeckillOrderResponse], error) {
	req := &orderv1.PlaceSeckillOrderBatchRequest{Orders: make([]*orderv1.BatchedSeckillOrder, len(members))}
	for i, m := range members {
		carrier := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(m.Ctx, carrier)
		req.Orders[i] = &orderv1.BatchedSeckillOrder{Request: m.Req, TraceContext: carrier}
		if d, ok := m.Ctx.Deadline(); ok {
			req.Orders[i].Deadline = timestamppb.New(d)
		}
	}
	resp, err := o.PlaceSeckillOrderBatch(ctx, req)
	if err != nil {
		return nil, err
	}
	answers := make([]batch.Answer[*orderv1.PlaceSeckillOrderResponse], len(resp.GetAnswers()))
	for i, a := range resp.GetAnswers() {
		switch {
		case a.GetPlaced() != nil:
			answers[i].Resp = a.GetPlaced()
		case a.GetError() != nil:
			e := a.GetError()
			answers[i].Err = errcode.Join(codes.Code(e.GetGrpcCode()), errcode.Code(e.GetCode()), e.GetMessage())
		default:
			answers[i].Err = errcode.New(errcode.Internal, "order answered a placement with neither an order nor an error")
		}
	}
	return answers, nil
}
