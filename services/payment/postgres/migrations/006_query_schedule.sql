-- +goose Up
-- Each PAYING payment carries the time of its next query to its channel
-- (query_at), which the sweep moves on as it asks: often while the buyer
-- may still be paying, seldom once the payment has been left for hours,
-- never again (NULL) once QueryFor has passed since its creation
-- (Service.nextQuery). The sweep's page is the payments due first, so one
-- paid a minute ago is asked about in the next round however many
-- abandoned payments wait; and the index holds only payments still to be
-- asked, so it no longer keeps every payment ever left PAYING.
--
-- The payments this release finds PAYING within the default QueryFor (a
-- day) are due at once; older ones are left to reconciliation, as before.
-- On a large live table, build the index by hand first with CREATE INDEX
-- CONCURRENTLY, with the same name, columns and WHERE, after adding and
-- filling the column; a failed concurrent build leaves an invalid index
-- that IF NOT EXISTS then skips, so check pg_index.indisvalid for it and
-- rebuild an invalid one before running this file.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS query_at timestamptz;
UPDATE payments SET query_at = created_at
    WHERE status = 'PAYING' AND query_at IS NULL AND created_at > now() - interval '1 day';
CREATE INDEX IF NOT EXISTS payments_query_due ON payments (query_at, payment_id)
    WHERE status = 'PAYING' AND query_at IS NOT NULL;
DROP INDEX IF EXISTS payments_paying_by_age;
