-- +goose Up
-- Refunds of part of a payment: an order refunded line by line returns its
-- money in several refunds through the channel that took it. A payment
-- keeps the sum of its refunds in `refunded`, moved by the same
-- transaction that inserts a refund and conditional on staying within the
-- amount, so no number of concurrent refunds returns more than was paid.
ALTER TABLE payments ADD COLUMN refunded bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount);

-- A payment that paid its order becomes REFUNDED too once its order is
-- refunded in full, not only one that arrived for an unpayable order.
ALTER TABLE payments DROP CONSTRAINT payments_check1;

-- A refund is either the automatic full refund of money that arrived for
-- an order no longer payable (REFUSED, one per payment, as before) or one
-- of an order's refunds (ORDER, its id the order service's refund id).
ALTER TABLE refunds DROP CONSTRAINT refunds_payment_id_key;
ALTER TABLE refunds ADD COLUMN kind text NOT NULL DEFAULT 'REFUSED' CHECK (kind IN ('REFUSED', 'ORDER'));
ALTER TABLE refunds ADD CHECK (kind = 'REFUSED' OR amount > 0);
CREATE UNIQUE INDEX refunds_refused ON refunds (payment_id) WHERE kind = 'REFUSED';
CREATE INDEX refunds_payment ON refunds (payment_id);

UPDATE payments p SET refunded = r.amount FROM refunds r WHERE r.payment_id = p.payment_id;
