-- +goose Up
-- The payment that paid an order: set together with status PAID by the one
-- conditional update of MarkPaid, so an order names at most one payment.
ALTER TABLE orders
    ADD COLUMN payment_id      bigint,
    ADD COLUMN payment_channel text,
    ADD CHECK ((payment_id IS NULL) = (payment_channel IS NULL));
