-- +goose Up
-- Regular orders' stock, taken from products.stock by a conditional
-- UPDATE. One row per order and SKU makes reserving idempotent by order
-- id; released_at makes releasing happen once.
CREATE TABLE stock_reservations (
    order_id    bigint      NOT NULL CHECK (order_id > 0),
    sku_id      bigint      NOT NULL REFERENCES products (sku_id),
    quantity    bigint      NOT NULL CHECK (quantity > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    PRIMARY KEY (order_id, sku_id)
);
