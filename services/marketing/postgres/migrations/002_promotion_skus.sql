-- +goose Up
-- A quote looks up the promotions of its cart's SKUs, not every live
-- promotion: a Double-11 calendar holds 100,000 of them.
--
-- promotion_skus is the index from a SKU to the promotions naming it.
-- Its primary key (sku_id, ends_at, promotion_id) is the lookup itself:
-- for each of the cart's SKUs, one B-tree range scan that starts at the
-- quote's time, so promotions that ended are never read however many
-- history holds. ends_at is copied from the promotion, which never
-- changes once created; CreatePromotion writes both in one statement.
-- There is no foreign key to promotions: the rows are only ever written
-- by that statement, promotions are never deleted, and a key check (a
-- row lock on the promotion) per SKU made loading a 100,000-promotion
-- calendar three times slower. An index row without its promotion would
-- find nothing; what would misprice is a promotion without its rows,
-- which the single statement rules out. (docs/marketing.md, "Finding a
-- cart's promotions", compares this with a GIN index on sku_ids.)
CREATE TABLE promotion_skus (
    sku_id       bigint      NOT NULL CHECK (sku_id > 0),
    ends_at      timestamptz NOT NULL,
    promotion_id bigint      NOT NULL,
    PRIMARY KEY (sku_id, ends_at, promotion_id)
);

INSERT INTO promotion_skus (sku_id, ends_at, promotion_id)
SELECT DISTINCT sku_id, p.ends_at, p.promotion_id
FROM promotions p, unnest(p.sku_ids) AS sku_id;

-- The promotions that name no SKU apply to every SKU (store-wide full
-- reductions): a partial index holds only them, by end, for the other
-- half of the lookup.
CREATE INDEX promotions_every_sku ON promotions (ends_at) WHERE cardinality(sku_ids) = 0;

-- Quotes no longer read every live promotion by its end.
DROP INDEX promotions_ends_at;
