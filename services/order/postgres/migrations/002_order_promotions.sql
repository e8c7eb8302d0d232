-- +goose Up
-- Regular orders carry the promotions that priced them and the coupon
-- they consumed. The amounts of an order's promotions add up to its
-- discount (the service writes them in one transaction with the order).
ALTER TABLE orders ADD COLUMN coupon_id bigint CHECK (coupon_id > 0);

CREATE TABLE order_promotions (
    order_id     bigint NOT NULL REFERENCES orders (order_id),
    position     int    NOT NULL CHECK (position >= 0), -- stacking order
    promotion_id bigint NOT NULL CHECK (promotion_id > 0),
    kind         text   NOT NULL CHECK (kind IN ('SKU_DISCOUNT', 'FULL_REDUCTION', 'COUPON')),
    amount       bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (order_id, position)
);
