-- +goose Up
-- Each PAYING payment carries the time of its next query to its channel
-- (query_at), which the sweep moves on as it asks: often while the buyer
-- may still be paying, seldom once the payment has been left for hours,
-- never again (NULL) once QueryFor has passed since its creation
-- (Service.nextQuery). The sweep's page is the payments due first, so one
-- paid a minute ago is asked about in the next round however many
-- abandoned payments wait; and the index holds only payments still to be
-- asked, so it does not keep every payment ever left PAYING. asked_at is
-- when a sweep last claimed the payment, so that a buyer's look
-- (Ledger.AskSoon) moves its question up no sooner than QueryAfter after
-- the last one.
--
-- A rolling update runs this release beside the one before it:
--  * the default gives a payment the old release creates its first
--    question as this release would (QueryAfter's default, 30 s);
--  * the payments found PAYING within the default QueryFor (a day) are
--    scheduled as if asked now, by their age, so the day's backlog is
--    spread over the next hour instead of due at once, ahead of every
--    new payment; older ones are left to reconciliation, as before;
--  * payments_paying_by_age, the index the old release's sweep pages by,
--    stays, for the old pods and for a rollback. Once no release before
--    this one runs: DROP INDEX CONCURRENTLY payments_paying_by_age.
--
-- Every question rewrites its row (query_at is indexed, so not in place),
-- hundreds of thousands a day on a sale's day: vacuum after 1 % of the
-- table (and 10,000 rows) is dead rather than 20 %, so the index's head,
-- which every page starts at, does not fill with dead entries.
--
-- On a large live table, build the index by hand first with CREATE INDEX
-- CONCURRENTLY, with the same name, columns and WHERE, after adding the
-- columns; a failed concurrent build leaves an invalid index that IF NOT
-- EXISTS then skips, so check pg_index.indisvalid for it and rebuild an
-- invalid one before running this file. The lock timeout makes the file
-- fail, to be run again, rather than queue every payment behind it.
SET LOCAL lock_timeout = '5s';
ALTER TABLE payments ADD COLUMN IF NOT EXISTS query_at timestamptz,
    ADD COLUMN IF NOT EXISTS asked_at timestamptz;
ALTER TABLE payments ALTER COLUMN query_at SET DEFAULT now() + interval '30 seconds';
UPDATE payments
    SET query_at = now() + LEAST(GREATEST((now() - created_at) / 4, interval '30 seconds'), interval '1 hour')
    WHERE status = 'PAYING' AND query_at IS NULL AND created_at > now() - interval '1 day';
CREATE INDEX IF NOT EXISTS payments_query_due ON payments (query_at, payment_id)
    WHERE status = 'PAYING' AND query_at IS NOT NULL;
ALTER TABLE payments SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000);
