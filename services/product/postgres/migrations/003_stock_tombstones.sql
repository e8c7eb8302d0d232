-- +goose Up
-- A release that finds no reservation for its order leaves a tombstone,
-- and a reservation of a tombstoned order takes nothing: the release came
-- from a caller that gave the order up after an ambiguous reserve (a
-- timeout), and the reserve may still be running. Without it the late
-- reserve took stock for an order that never exists, for good (a regular
-- order that was never stored never expires). Reserve and release of one
-- order take a transaction-scoped advisory lock on the order id, so they
-- serialise whatever their order of arrival.
CREATE TABLE stock_tombstones (
    order_id   bigint      PRIMARY KEY CHECK (order_id > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
