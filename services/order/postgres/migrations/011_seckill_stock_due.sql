-- +goose Up
-- The expiry backstop expires a flash-sale order its queue entry was lost
-- for, then gives its stock back through the inventory. Between the two,
-- stock_due marks it: the UPDATE that expires it sets the mark, and only
-- a release that succeeded clears it. A release that fails, or a worker
-- that stops in between, leaves the order marked, and the next backstop
-- round releases it again (releases are idempotent). Before this, such an
-- order was EXPIRED and no longer a candidate, and its unit stayed held
-- for good. Regular orders have released_at (005) for the same reason.
ALTER TABLE orders
    ADD COLUMN stock_due boolean NOT NULL DEFAULT false,
    ADD CHECK (NOT stock_due OR (kind = 'SECKILL' AND status = 'EXPIRED'));
-- The marked orders, by id: what the backstop's retries page through.
-- Rows leave the index once released, so it stays small.
CREATE INDEX orders_seckill_stock_due ON orders (order_id) WHERE stock_due;
