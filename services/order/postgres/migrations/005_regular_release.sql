-- +goose Up
-- Regular orders hold product stock and maybe a coupon. released_at marks
-- that an ended (EXPIRED or CANCELLED) regular order gave them back: the
-- expiry worker's sweep releases every ended regular order whose
-- released_at is NULL and only then sets it, so a crash between an order's
-- end and its release loses nothing (the releases are idempotent).
ALTER TABLE orders
    ADD COLUMN released_at timestamptz,
    ADD CHECK (released_at IS NULL OR (kind = 'REGULAR' AND status IN ('CANCELLED', 'EXPIRED')));

-- Regular orders waiting for payment, by deadline: what the expiry UPDATE
-- looks for. Flash-sale orders are expired through the inventory's queue.
CREATE INDEX orders_regular_due ON orders (expires_at)
    WHERE kind = 'REGULAR' AND status = 'PENDING_PAYMENT';
-- Ended regular orders still holding stock or a coupon: what the sweep
-- looks for. Rows leave the index once released, so it stays small.
CREATE INDEX orders_regular_unreleased ON orders (order_id)
    WHERE kind = 'REGULAR' AND status IN ('CANCELLED', 'EXPIRED') AND released_at IS NULL;
