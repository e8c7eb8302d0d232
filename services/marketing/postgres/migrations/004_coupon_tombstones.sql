-- +goose Up
-- A release of an order's coupon that finds none leaves a tombstone, and
-- using a coupon for a tombstoned order is refused: the release came from
-- a caller that gave the order up after an ambiguous use (a timeout), and
-- the use may still be running. Without it the late use marked the coupon
-- USED by an order that never exists, and the buyer lost the coupon for
-- good. Use and release of one order take a transaction-scoped advisory
-- lock on the order id, so they serialise whatever their order of arrival.
CREATE TABLE coupon_tombstones (
    order_id   bigint      PRIMARY KEY CHECK (order_id > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
