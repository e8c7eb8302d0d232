package grpc

import (
	"context"
	"fmt"

	"github.com/flashsale/flashsale/platform/batch"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/proto/limits"
	"github.com/flashsale/flashsale/services/order"
)

// reservesInFlight is how many ReserveBatch calls may be on the wire at
// once: two keep both of this machine's cores busy (batch.Config).
const reservesInFlight = 2

// reserveBatcher gathers the reservations of concurrent buys into
// ReserveBatch calls (platform/batch). Each reservation is still decided
// on its own by the inventory; only the transport is shared.
type reserveBatcher = batch.Batcher[*inventoryv1.ReserveRequest, *inventoryv1.ReserveResponse]

// newReserveBatcher returns the batcher of one traffic class: a batch
// shares one call and so one context, which must carry the mark of every
// buy in it (platform/shadow), so marked buys have a batcher of their own.
func newReserveBatcher(client inventoryv1.InventoryServiceClient, marked bool) *reserveBatcher {
	base := context.Background()
	if marked {
		base = shadow.With(base)
	}
	return batch.New(batch.Config{
		Name: "inventory reserve", MaxBatch: limits.MaxBatch, MaxInFlight: reservesInFlight, Base: base,
		Gone: func(err error) error { return errcode.New(errcode.Unavailable, "inventory reserve: "+err.Error()) },
	}, func(ctx context.Context, members []batch.Member[*inventoryv1.ReserveRequest]) ([]batch.Answer[*inventoryv1.ReserveResponse], error) {
		return reserveBatch(ctx, client, members)
	})
}

// reserveBatch sends members as one ReserveBatch and turns each answer
// into what Reserve would have returned.
func reserveBatch(ctx context.Context, client inventoryv1.InventoryServiceClient, members []batch.Member[*inventoryv1.ReserveRequest]) ([]batch.Answer[*inventoryv1.ReserveResponse], error) {
	req := &inventoryv1.ReserveBatchRequest{Reservations: make([]*inventoryv1.ReserveRequest, len(members))}
	for i, m := range members {
		req.Reservations[i] = m.Req
	}
	resp, err := client.ReserveBatch(ctx, req)
	if err != nil {
		return nil, err
	}
	answers := make([]batch.Answer[*inventoryv1.ReserveResponse], len(resp.GetAnswers()))
	for i, a := range resp.GetAnswers() {
		switch {
		case a.GetReserved() != nil:
			answers[i].Resp = a.GetReserved()
		case a.GetError() != nil:
			e := a.GetError()
			answers[i].Err = errcode.New(errcode.Code(e.GetCode()), e.GetMessage())
			if errcode.Code(e.GetCode()) == errcode.Unavailable {
				// The inventory answered this reservation itself, so an
				// UNAVAILABLE here is its decision, not a failed call:
				// the sale is fenced (inventory.ErrFenced, the one
				// domain error it answers so), and nothing was reserved.
				answers[i].Err = fmt.Errorf("inventory reserve: %s: %w", e.GetMessage(), order.ErrSaleFenced)
			}
		default:
			answers[i].Err = errcode.New(errcode.Internal, "inventory answered a reservation with neither a result nor an error")
		}
	}
	return answers, nil
}
