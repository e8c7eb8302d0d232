-- +goose Up
-- Flash-sale orders waiting for payment, by id: what the expiry
-- backstop's sweep pages through (OverdueSeckill). Flash-sale orders
-- expire through the inventory's queue in Redis; the backstop expires
-- those whose queue entry Redis lost.
CREATE INDEX orders_seckill_pending ON orders (order_id)
    WHERE kind = 'SECKILL' AND status = 'PENDING_PAYMENT';
