// Package event is the wire form of the order service's events:
// order.Placed as the orderv1.OrderPlaced protobuf message, which is both
// the Kafka event's value and the pending record kept in Redis, so the two
// never drift apart; and order.Event, a step of a stored order's life, as
// orderv1.OrderEvent on orders.events.
package event

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/order"
)

// Marshal encodes p as OrderPlaced.
func Marshal(p order.Placed) ([]byte, error) {
	b, err := proto.Marshal(&orderv1.OrderPlaced{
		OrderId:        p.OrderID,
		LineId:         p.LineID,
		UserId:         p.UserID,
		ActivityId:     p.ActivityID,
		SkuId:          p.SKUID,
		Quantity:       p.Quantity,
		UnitPrice:      p.UnitPrice,
		IdempotencyKey: p.IdempotencyKey,
		CreatedAt:      timestamppb.New(p.CreatedAt),
		ExpiresAt:      timestamppb.New(p.ExpiresAt),
	})
	if err != nil {
		return nil, fmt.Errorf("encode OrderPlaced %d: %w", p.OrderID, err)
	}
	return b, nil
}

// Unmarshal decodes an OrderPlaced. It checks only the encoding; callers
// that need a valid order call Validate on the result. Missing timestamps
// decode as the zero time.
func Unmarshal(b []byte) (order.Placed, error) {
	var m orderv1.OrderPlaced
	if err := proto.Unmarshal(b, &m); err != nil {
		return order.Placed{}, fmt.Errorf("decode OrderPlaced: %w", err)
	}
	return order.Placed{
		OrderID:        m.GetOrderId(),
		LineID:         m.GetLineId(),
		UserID:         m.GetUserId(),
		ActivityID:     m.GetActivityId(),
		SKUID:          m.GetSkuId(),
		Quantity:       m.GetQuantity(),
		UnitPrice:      m.GetUnitPrice(),
		IdempotencyKey: m.GetIdempotencyKey(),
		CreatedAt:      timeOf(m.GetCreatedAt()),
		ExpiresAt:      timeOf(m.GetExpiresAt()),
	}, nil
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// eventTypes maps the outbox's event types to the wire enum.
var eventTypes = map[order.EventType]orderv1.OrderEvent_Type{
	order.EventStored:    orderv1.OrderEvent_TYPE_STORED,
	order.EventPaid:      orderv1.OrderEvent_TYPE_PAID,
	order.EventRefunded:  orderv1.OrderEvent_TYPE_REFUNDED,
	order.EventExpired:   orderv1.OrderEvent_TYPE_EXPIRED,
	order.EventCancelled: orderv1.OrderEvent_TYPE_CANCELLED,
}

// MarshalEvent encodes e as OrderEvent.
func MarshalEvent(e order.Event) ([]byte, error) {
	t, ok := eventTypes[e.Type]
	if !ok {
		return nil, fmt.Errorf("encode OrderEvent of order %d: %w: type %q", e.OrderID, order.ErrInvalid, e.Type)
	}
	b, err := proto.Marshal(&orderv1.OrderEvent{
		OrderId:    e.OrderID,
		Type:       t,
		Kind:       string(e.Kind),
		ActivityId: e.ActivityID,
		Amount:     e.Amount,
		Channel:    e.Channel,
		Ref:        e.Ref,
		At:         timestamppb.New(e.At),
	})
	if err != nil {
		return nil, fmt.Errorf("encode OrderEvent of order %d: %w", e.OrderID, err)
	}
	return b, nil
}
