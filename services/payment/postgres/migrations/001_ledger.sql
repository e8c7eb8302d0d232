-- +goose Up
-- The payment ledger. Money is bigint cents. Every state change is one
-- conditional UPDATE on the state it leaves, so concurrent callbacks,
-- queries and reconciliation settle a payment once.
CREATE TABLE payments (
    payment_id    bigint      PRIMARY KEY,           -- snowflake; the channel's merchant_ref
    order_id      bigint      NOT NULL CHECK (order_id > 0),
    user_id       bigint      NOT NULL CHECK (user_id > 0),
    channel       text        NOT NULL,
    amount        bigint      NOT NULL CHECK (amount >= 0),
    status        text        NOT NULL CHECK (status IN ('PAYING', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
    trade_no      text,                               -- the channel's trade, once created
    pay_url       text,
    created_at    timestamptz NOT NULL,
    paid_at       timestamptz,
    -- The order service's answer to the money: ACCEPTED (the order is
    -- paid by this payment) or REFUSED (not payable: refund it).
    order_outcome text        CHECK (order_outcome IN ('ACCEPTED', 'REFUSED')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('SUCCEEDED', 'REFUNDED')) = (paid_at IS NOT NULL)),
    CHECK (status <> 'REFUNDED' OR order_outcome = 'REFUSED')
);

-- An order's payments per channel (Pay reuses an open one).
CREATE INDEX payments_order ON payments (order_id, channel);
-- The sweep's PAYING payments by age, and settlements left midway.
CREATE INDEX payments_paying ON payments (created_at) WHERE status = 'PAYING';
CREATE INDEX payments_unsettled ON payments (payment_id)
    WHERE status = 'SUCCEEDED' AND (order_outcome IS NULL OR order_outcome = 'REFUSED');

-- One full refund at most per payment: the UNIQUE makes a refund retried
-- by any number of settlers one row, and its id is the channel's
-- refund reference, so the channel refunds once too.
CREATE TABLE refunds (
    refund_id  bigint      PRIMARY KEY,
    payment_id bigint      NOT NULL UNIQUE REFERENCES payments (payment_id),
    amount     bigint      NOT NULL CHECK (amount >= 0),
    reason     text        NOT NULL,
    refund_no  text,                                  -- the channel's, once done
    created_at timestamptz NOT NULL,
    done_at    timestamptz,
    CHECK ((refund_no IS NULL) = (done_at IS NULL))
);
