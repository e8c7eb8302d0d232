-- +goose Up
-- Promotions, coupon templates and users' coupons. Money is bigint cents.

-- A promotion is immutable once created. A SKU discount has a rate and
-- SKUs; a full reduction has tiers (parallel arrays: spend thresholds and
-- the amounts taken off) and, optionally, SKUs (none: every SKU).
CREATE TABLE promotions (
    promotion_id    bigint      PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('SKU_DISCOUNT', 'FULL_REDUCTION')),
    sku_ids         bigint[]    NOT NULL DEFAULT '{}',
    rate_bp         bigint      NOT NULL DEFAULT 0 CHECK (rate_bp BETWEEN 0 AND 9999),
    tier_thresholds bigint[]    NOT NULL DEFAULT '{}',
    tier_offs       bigint[]    NOT NULL DEFAULT '{}',
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at),
    CHECK (cardinality(tier_thresholds) = cardinality(tier_offs)),
    CHECK ((kind = 'SKU_DISCOUNT') = (rate_bp > 0))
);

-- Quotes read the promotions that have not ended.
CREATE INDEX promotions_ends_at ON promotions (ends_at);

-- claimed counts the coupons handed out; the CHECK is the last line of
-- defence behind the conditional UPDATE that claims.
CREATE TABLE coupon_templates (
    template_id    bigint      PRIMARY KEY,
    threshold      bigint      NOT NULL CHECK (threshold >= 0),
    amount         bigint      NOT NULL CHECK (amount > 0),
    total          bigint      NOT NULL CHECK (total > 0),
    claimed        bigint      NOT NULL DEFAULT 0 CHECK (claimed BETWEEN 0 AND total),
    per_user_limit bigint      NOT NULL CHECK (per_user_limit > 0),
    valid_from     timestamptz NOT NULL,
    valid_until    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from < valid_until)
);

-- How many coupons of a template each user claimed, to hold the per-user
-- limit with one conditional upsert.
CREATE TABLE coupon_claims (
    template_id bigint NOT NULL REFERENCES coupon_templates (template_id),
    user_id     bigint NOT NULL CHECK (user_id > 0),
    claimed     bigint NOT NULL CHECK (claimed > 0),
    PRIMARY KEY (template_id, user_id)
);

-- A coupon copies its template's terms. order_id is the order that
-- consumed it: set exactly when it is USED, and unique, so an order holds
-- one coupon at most.
CREATE TABLE coupons (
    coupon_id   bigint      PRIMARY KEY,
    template_id bigint      NOT NULL REFERENCES coupon_templates (template_id),
    user_id     bigint      NOT NULL CHECK (user_id > 0),
    threshold   bigint      NOT NULL CHECK (threshold >= 0),
    amount      bigint      NOT NULL CHECK (amount > 0),
    valid_from  timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('AVAILABLE', 'USED')),
    order_id    bigint      UNIQUE,
    claimed_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CHECK ((status = 'USED') = (order_id IS NOT NULL)),
    CHECK ((status = 'USED') = (used_at IS NOT NULL))
);

CREATE INDEX coupons_user ON coupons (user_id, coupon_id DESC);
