-- +goose Up
-- A buyer's refund carries the client's Idempotency-Key, unique within its
-- order (and so within its buyer): a retried refund request finds the
-- refund its key already names instead of refunding more units. The key
-- lives with the refund, so the answer survives restarts, and the UNIQUE
-- stands behind the check that RecordRefund makes under the order's row
-- lock. Refunds recorded before keys existed have none (NULL, which the
-- UNIQUE lets repeat).
ALTER TABLE order_refunds
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    ADD CONSTRAINT order_refunds_order_key UNIQUE (order_id, idempotency_key);
