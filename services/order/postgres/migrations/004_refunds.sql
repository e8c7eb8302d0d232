-- +goose Up
-- Refunds of paid orders, by line and quantity. A line counts the units
-- refunded and what they returned; an order what its lines returned. The
-- CHECKs hold the books: no line refunds more units than it has or more
-- money than it cost the buyer, no order more than it was paid.
ALTER TABLE orders ADD COLUMN refunded bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= payable);
ALTER TABLE order_lines
    ADD COLUMN refunded_quantity bigint NOT NULL DEFAULT 0 CHECK (refunded_quantity >= 0 AND refunded_quantity <= quantity),
    ADD COLUMN refunded          bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= payable);

-- One row per refund, PENDING until its money is back with the buyer (and
-- the coupon and purchase limit of an order it completes are back); the
-- refund sweep finishes PENDING ones. refund_id is the payment service's
-- and the channel's refund reference, so retries refund once.
CREATE TABLE order_refunds (
    refund_id  bigint      PRIMARY KEY,
    order_id   bigint      NOT NULL REFERENCES orders (order_id),
    payment_id bigint      NOT NULL CHECK (payment_id > 0),
    amount     bigint      NOT NULL CHECK (amount >= 0),
    status     text        NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED')),
    completes  boolean     NOT NULL, -- it refunded the order's last unit
    created_at timestamptz NOT NULL,
    done_at    timestamptz,
    CHECK ((status = 'SUCCEEDED') = (done_at IS NOT NULL))
);

CREATE INDEX order_refunds_order ON order_refunds (order_id);
CREATE INDEX order_refunds_pending ON order_refunds (created_at) WHERE status = 'PENDING';

CREATE TABLE order_refund_lines (
    refund_id bigint NOT NULL REFERENCES order_refunds (refund_id),
    line_id   bigint NOT NULL REFERENCES order_lines (line_id),
    quantity  bigint NOT NULL CHECK (quantity > 0),
    amount    bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (refund_id, line_id)
);
