// Package event is the wire form of order.Placed: the orderv1.OrderPlaced
// protobuf message, which is both the Kafka event's value and the pending
// record kept in Redis, so the two never drift apart.
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
