-- +goose Up
-- The outbox of orders.events: each step of an order's life (stored,
-- paid, refunded, expired, cancelled) inserts its event here in the
-- statement or transaction that makes the step, so a step is committed
-- if and only if its event is. The relay (postgres.Outbox) claims the
-- oldest rows with FOR UPDATE SKIP LOCKED, publishes them and deletes
-- them in one transaction: a crash before the delete commits leaves the
-- rows for the next claim, which publishes them again (at least once).
-- Money is bigint cents; at is the service's clock, not the database's.
CREATE TABLE order_events (
    event_id    bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL,
    type        text        NOT NULL CHECK (type IN ('STORED', 'PAID', 'REFUNDED', 'EXPIRED', 'CANCELLED')),
    kind        text        NOT NULL CHECK (kind IN ('SECKILL', 'REGULAR')),
    activity_id bigint      NOT NULL DEFAULT 0,
    amount      bigint      NOT NULL CHECK (amount >= 0),
    channel     text        NOT NULL DEFAULT '',
    ref         bigint      NOT NULL DEFAULT 0, -- the refund id of a REFUNDED event
    at          timestamptz NOT NULL
);
