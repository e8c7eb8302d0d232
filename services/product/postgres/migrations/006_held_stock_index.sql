-- +goose Up
-- The order service pages the orders that still hold regular stock by the
-- time of their reservation (ListHeldStock) to find stock held for an
-- order it never stored. Paid orders keep their reservation for good, so
-- the index holds only the unreleased ones, and a page reads its own rows.
CREATE INDEX stock_reservations_held ON stock_reservations (created_at, order_id)
    WHERE released_at IS NULL;
