-- +goose Up
-- A payment whose channel never answered its trade's creation (the
-- channel ran out of its share of the pay budget, the connection failed,
-- a 5xx) is FAILED, but its trade may exist at the channel all the same,
-- and may be paid later. Such a payment keeps its questions (query_at):
-- the sweep asks its channel as it asks a PAYING one, and settles a late
-- payment, which the order (paid through another channel by then, or
-- not payable) refuses and the money goes back. A payment the channel
-- refused, or the router never sent, fails with query_at NULL.
--
-- The payments FAILED before this release were failed either way: they
-- keep to the old rule, no questions (reconciliation stays their net).
--
-- A rolling update runs this release beside the one before it: the old
-- pods' sweep reads PAYING payments only, through the new index as well
-- as through the old one, which this file drops once the new one exists.
-- On a large live table, build payments_query_due_v2 by hand first with
-- CREATE INDEX CONCURRENTLY (same name, columns and WHERE).
SET LOCAL lock_timeout = '5s';
UPDATE payments SET query_at = NULL WHERE status = 'FAILED' AND query_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_query_due_v2 ON payments (query_at, payment_id)
    WHERE status IN ('PAYING', 'FAILED') AND query_at IS NOT NULL;
DROP INDEX IF EXISTS payments_query_due;

