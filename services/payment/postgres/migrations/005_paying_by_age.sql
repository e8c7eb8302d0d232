-- +goose Up
-- The sweep's page of payments stuck in PAYING (Stuck) reads them by
-- creation and then id. A payment its buyer opened and left stays PAYING
-- for the whole QueryFor window (24 h), so on a sale's day the candidates
-- are many; by created_at alone with the page ordered by id, every page
-- read all of them to return a few hundred. By (created_at, payment_id),
-- the page's own order, it reads only its own rows. On a large live
-- table, build the new index by hand first with CREATE INDEX
-- CONCURRENTLY (same name and columns): this file then only drops the
-- old one.
CREATE INDEX IF NOT EXISTS payments_paying_by_age ON payments (created_at, payment_id)
    WHERE status = 'PAYING';
DROP INDEX IF EXISTS payments_paying;
