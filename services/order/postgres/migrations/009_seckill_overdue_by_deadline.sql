-- +goose Up
-- The expiry backstop (OverdueSeckill) reads flash-sale orders waiting for
-- payment whose deadline passed. Every order awaiting payment was in
-- 007's index, by id, so a page that walked it and filtered on the
-- deadline read all of them to find the few overdue: on 200,000 orders
-- awaiting payment, 87 ms a page (Postgres chose a scan of the whole
-- table), every second, in each expiry worker. By (deadline, id), the
-- page's own order, a page reads only the orders it returns.
-- On a large live table, build the index by hand first with CREATE INDEX
-- CONCURRENTLY, with this file's name, columns and WHERE (IF NOT EXISTS
-- looks at the name alone): this file then only drops the old one. A
-- concurrent build that failed leaves an INVALID index, which IF NOT
-- EXISTS takes as built and no query uses; before migrating, check that
--   SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_seckill_overdue'::regclass;
-- says true, and if not, DROP INDEX CONCURRENTLY it and build it again.
CREATE INDEX IF NOT EXISTS orders_seckill_overdue ON orders (expires_at, order_id)
    WHERE kind = 'SECKILL' AND status = 'PENDING_PAYMENT';
DROP INDEX IF EXISTS orders_seckill_pending;
