-- +goose Up
-- Orders and their lines. Money is bigint cents. The CHECKs hold the money
-- invariants of API.md so that no code path can store a broken order.
CREATE TABLE orders (
    order_id        bigint      PRIMARY KEY,            -- snowflake, time-ordered
    user_id         bigint      NOT NULL CHECK (user_id > 0),
    kind            text        NOT NULL CHECK (kind IN ('SECKILL', 'REGULAR')),
    status          text        NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'CANCELLED', 'EXPIRED',
                                                           'PARTIALLY_REFUNDED', 'REFUNDED')),
    activity_id     bigint      CHECK (activity_id > 0), -- NULL for regular orders
    total           bigint      NOT NULL CHECK (total >= 0),
    discount        bigint      NOT NULL DEFAULT 0 CHECK (discount >= 0),
    payable         bigint      NOT NULL CHECK (payable >= 0 AND payable = total - discount),
    idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL CHECK (expires_at > created_at),
    paid_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- A second guard behind the inventory's idempotency, in the same scope
    -- (a buyer's key within one activity): one order per buyer, activity
    -- and key, whatever the order id. Regular orders (activity NULL) get
    -- one per buyer and key.
    UNIQUE NULLS NOT DISTINCT (user_id, kind, activity_id, idempotency_key),
    CHECK (kind <> 'SECKILL' OR activity_id IS NOT NULL),
    CHECK ((status = 'PENDING_PAYMENT' OR status = 'CANCELLED' OR status = 'EXPIRED') = (paid_at IS NULL))
);

-- A user's orders, newest first.
CREATE INDEX orders_user_created ON orders (user_id, created_at DESC, order_id DESC);
-- Per-activity audits and aggregates.
CREATE INDEX orders_activity ON orders (activity_id, user_id) WHERE activity_id IS NOT NULL;

CREATE TABLE order_lines (
    line_id    bigint PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES orders (order_id),
    sku_id     bigint NOT NULL CHECK (sku_id > 0),
    quantity   bigint NOT NULL CHECK (quantity > 0),
    unit_price bigint NOT NULL CHECK (unit_price >= 0),
    amount     bigint NOT NULL CHECK (amount = unit_price * quantity),
    discount   bigint NOT NULL DEFAULT 0 CHECK (discount >= 0),
    payable    bigint NOT NULL CHECK (payable >= 0 AND payable = amount - discount)
);

CREATE INDEX order_lines_order ON order_lines (order_id);
