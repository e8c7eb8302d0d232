-- +goose Up
-- Reconciliation reads a channel's paid payments in the order of the
-- channel's statement, by payment time (Ledger.PaidSince), a page at a
-- time: paid_at is set exactly when a payment is SUCCEEDED or REFUNDED.
CREATE INDEX payments_paid ON payments (channel, paid_at, payment_id) WHERE paid_at IS NOT NULL;
