package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/services/order"
)

// Relay implements order.Outbox: in one transaction it claims up to
// limit of the oldest events with FOR UPDATE SKIP LOCKED (the rows
// another replica's relay holds are passed over, not waited for), hands
// them to publish and deletes them. The delete commits only after
// publish returned nil; a failure, or a crash before the commit, rolls
// the claim back and the rows are claimed again, so an event published
// just before the crash is published twice (at least once, never lost).
func (s *Store) Relay(ctx context.Context, limit int, publish func(context.Context, []order.Event) error) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT event_id, order_id, type, kind, activity_id, amount, channel, ref, at
			FROM order_events ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Event, error) {
			var e order.Event
			var typ, kind string
			err := r.Scan(&e.ID, &e.OrderID, &typ, &kind, &e.ActivityID, &e.Amount, &e.Channel, &e.Ref, &e.At)
			e.Type, e.Kind = order.EventType(typ), order.Kind(kind)
			return e, err
		})
		if err != nil || len(events) == 0 {
			return err
		}
		n = len(events)
		if err := publish(ctx, events); err != nil {
			return err
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		_, err = tx.Exec(ctx, `DELETE FROM order_events WHERE event_id = ANY($1)`, ids)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("relay order events: %w", err)
	}
	return n, nil
}
