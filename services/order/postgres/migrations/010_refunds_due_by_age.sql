-- +goose Up
-- The refund sweep (PendingRefunds) reads the refunds left PENDING past
-- RefundRetryAfter, a page at a time. By creation alone, with the page
-- ordered by id, a page read every due refund (a channel's outage leaves
-- thousands) to sort out a few hundred. By (created_at, refund_id), the
-- page's own order, it reads only its own rows.
-- On a large live table, build the index by hand first with CREATE INDEX
-- CONCURRENTLY, with this file's name, columns and WHERE (IF NOT EXISTS
-- looks at the name alone): this file then only drops the old one. A
-- concurrent build that failed leaves an INVALID index, which IF NOT
-- EXISTS takes as built and no query uses; before migrating, check that
--   SELECT indisvalid FROM pg_index WHERE indexrelid = 'order_refunds_due'::regclass;
-- says true, and if not, DROP INDEX CONCURRENTLY it and build it again.
CREATE INDEX IF NOT EXISTS order_refunds_due ON order_refunds (created_at, refund_id)
    WHERE status = 'PENDING';
DROP INDEX IF EXISTS order_refunds_pending;
