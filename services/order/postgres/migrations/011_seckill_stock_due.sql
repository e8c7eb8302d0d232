-- +goose Up
-- The expiry backstop expires a flash-sale order its queue entry was lost
-- for, then gives its stock back through the inventory. Between the two,
-- stock_due marks it: the UPDATE that expires it sets the mark, and only
-- a release that succeeded clears it. A release that fails, or a worker
-- that stops in between, leaves the order marked, and the next backstop
-- round releases it again (releases are idempotent). Before this, such an
-- order was EXPIRED and no longer a candidate, and its unit stayed held
-- for good. Regular orders have released_at (005) for the same reason.
-- The column's default is a constant, so adding it rewrites no row. The
-- check is NOT VALID: every existing row holds the default, false, which
-- it accepts, so there is nothing to scan; rows written from now on are
-- checked all the same.
ALTER TABLE orders
    ADD COLUMN stock_due boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT orders_stock_due_check
        CHECK (NOT stock_due OR (kind = 'SECKILL' AND status = 'EXPIRED')) NOT VALID;
-- The marked orders, by id: what the backstop's retries page through.
-- Rows leave the index once released, so it stays small. On a large live
-- table, build it by hand first with CREATE INDEX CONCURRENTLY, with this
-- file's name, columns and WHERE, as 009 says: this file then skips it.
CREATE INDEX IF NOT EXISTS orders_seckill_stock_due ON orders (order_id) WHERE stock_due;
