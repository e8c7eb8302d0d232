-- +goose Up
-- A claim carries the client's Idempotency-Key, unique among the user's
-- coupons of one template: a retried claim finds the coupon its key
-- already got instead of taking another of the template's total. The key
-- lives with the coupon, so the answer survives restarts, and the UNIQUE
-- stands behind the look that ClaimCoupon makes under the template's row
-- lock. Coupons claimed before keys existed have none (NULL, which the
-- UNIQUE lets repeat).
ALTER TABLE coupons
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    ADD CONSTRAINT coupons_user_template_key UNIQUE (user_id, template_id, idempotency_key);
