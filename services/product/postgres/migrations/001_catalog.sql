-- +goose Up
-- Products hold their regular stock; an activity's stock is taken out of
-- it when the activity is created, so the two never count a unit twice.
CREATE TABLE products (
    sku_id     bigint PRIMARY KEY,
    title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    price      bigint NOT NULL CHECK (price BETWEEN 1 AND 10000000000),
    stock      bigint NOT NULL CHECK (stock >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Activities are immutable after creation; their live stock is in the
-- inventory service.
CREATE TABLE activities (
    activity_id    bigint PRIMARY KEY,
    sku_id         bigint NOT NULL REFERENCES products (sku_id),
    price          bigint NOT NULL CHECK (price >= 1),
    stock          bigint NOT NULL CHECK (stock >= 1),
    per_user_limit bigint NOT NULL CHECK (per_user_limit BETWEEN 1 AND 1000),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);

CREATE INDEX activities_starts_at ON activities (starts_at, activity_id);
CREATE INDEX activities_sku_id ON activities (sku_id);
