-- +goose Up
-- The order service pages the orders that still hold regular stock by the
-- time of their reservation (ListHeldStock) to find stock held for an
-- order it never stored. Paid orders keep their reservation for good, so
-- the index holds only the unreleased ones, and a page reads its own rows.
-- On a large live table, build the index by hand first with CREATE INDEX
-- CONCURRENTLY, with this file's name, columns and WHERE (IF NOT EXISTS
-- looks at the name alone), and check that it is valid
-- (SELECT indisvalid FROM pg_index WHERE indexrelid = 'stock_reservations_held'::regclass):
-- a plain build locks the table's writes until it ends.
CREATE INDEX IF NOT EXISTS stock_reservations_held ON stock_reservations (created_at, order_id)
    WHERE released_at IS NULL;
