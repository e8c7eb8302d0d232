-- +goose Up
-- A product's row is a hot row: every checkout of the product updates it.
-- Its lock lasts until the transaction ends, so a transaction that takes
-- it and then goes back to the service for its next statement keeps every
-- other checkout of the product waiting for that round trip, and on a
-- busy service the round trip waits for a core (a lock convoy). These
-- functions do all of a reserve or a release in one statement: the locks
-- are taken and released inside the database, and the service makes one
-- round trip (docs/stock-reservation.md, "Regular stock: hot rows").

-- reserve_stock takes the lines' units for the order: 'reserved', or
-- 'replayed' when the order already has its reservation, 'given_up' when
-- a release came first (its tombstone), 'missing' or 'short' (at_sku the
-- first such SKU in id order, at_stock its stock), each taking nothing.
-- The order's advisory lock serialises its reserve and release; the
-- products are locked in id order, so two orders never wait on each other
-- in a cycle, with FOR NO KEY UPDATE, the lock an UPDATE takes (the
-- reservations' foreign-key checks pass it). Lines must name distinct
-- SKUs (the service's ValidateStockLines): a SKU twice fails on the
-- reservations' primary key.
-- +goose StatementBegin
CREATE FUNCTION reserve_stock(p_order bigint, p_skus bigint[], p_qtys bigint[],
    OUT outcome text, OUT at_sku bigint, OUT at_stock bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    line record;
BEGIN
    at_sku := 0;
    at_stock := 0;
    PERFORM pg_advisory_xact_lock(p_order);
    IF EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = p_order) THEN
        outcome := 'replayed';
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM stock_tombstones t WHERE t.order_id = p_order) THEN
        outcome := 'given_up';
        RETURN;
    END IF;
    -- Every line is checked twice: first without a lock, so a refusal
    -- never waits in a hot row's queue, then under the products' locks.
    FOR pass IN 1..2 LOOP
        IF pass = 2 THEN
            PERFORM 1 FROM products p WHERE p.sku_id = ANY (p_skus) ORDER BY p.sku_id FOR NO KEY UPDATE;
        END IF;
        FOR line IN
            SELECT x.sku_id, x.qty, p.stock AS have
            FROM unnest(p_skus, p_qtys) AS x(sku_id, qty)
            LEFT JOIN products p ON p.sku_id = x.sku_id
            ORDER BY x.sku_id
        LOOP
            IF line.have IS NULL THEN
                outcome := 'missing';
                at_sku := line.sku_id;
                RETURN;
            END IF;
            IF line.have < line.qty THEN
                outcome := 'short';
                at_sku := line.sku_id;
                at_stock := line.have;
                RETURN;
            END IF;
        END LOOP;
    END LOOP;
    UPDATE products p SET stock = p.stock - x.qty
    FROM unnest(p_skus, p_qtys) AS x(sku_id, qty)
    WHERE p.sku_id = x.sku_id;
    INSERT INTO stock_reservations (order_id, sku_id, quantity)
    SELECT p_order, x.sku_id, x.qty FROM unnest(p_skus, p_qtys) AS x(sku_id, qty);
    outcome := 'reserved';
END
$$;
-- +goose StatementEnd

-- release_stock gives back the order's reserved units once and returns
-- them; an order with no reservation at all gets a tombstone, so a
-- reserve still on its way takes nothing.
-- +goose StatementBegin
CREATE FUNCTION release_stock(p_order bigint)
RETURNS TABLE (sku_id bigint, quantity bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(p_order);
    INSERT INTO stock_tombstones (order_id)
    SELECT p_order WHERE NOT EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = p_order)
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM products p
    WHERE p.sku_id IN (SELECT r.sku_id FROM stock_reservations r WHERE r.order_id = p_order AND r.released_at IS NULL)
    ORDER BY p.sku_id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH released AS (
        UPDATE stock_reservations r SET released_at = now()
        WHERE r.order_id = p_order AND r.released_at IS NULL
        RETURNING r.sku_id, r.quantity
    ), given AS (
        UPDATE products p SET stock = p.stock + x.quantity
        FROM released x WHERE p.sku_id = x.sku_id
    )
    SELECT x.sku_id, x.quantity FROM released x ORDER BY x.sku_id;
END
$$;
-- +goose StatementEnd
