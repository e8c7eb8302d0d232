-- +goose Up
-- A coupon template's row is a hot row: every claim of the template counts
-- itself on it, and its lock lasts until the claim's transaction ends. A
-- claim that took the lock and then went back to the service for each of
-- its next statements kept every other claim waiting for those round
-- trips (on a busy service, for a core each). claim_coupon makes the
-- whole claim one statement: the lock is taken and released inside the
-- database, and the service makes one round trip (docs/marketing.md,
-- "Coupons under concurrency").
--
-- It first reads the template without a lock: a claim of an unknown
-- template, outside its window or of an exhausted one (claimed only
-- grows, and the terms never change) is refused at once, or answered
-- with its key's coupon, without waiting in the row's queue. Otherwise it
-- locks the template (FOR NO KEY UPDATE, the lock an UPDATE takes, which
-- lets the coupons' foreign-key checks through; a duplicate claim waits
-- here for the first one and then sees its coupon) and checks again:
-- 'existing' when the user's coupon of the template with the key exists
-- (the service reads it), 'not_found', 'not_claimable' outside the
-- validity window, 'exhausted' when all are claimed, 'limit' at the
-- per-user limit, each changing no count and no coupon; else it counts
-- the claim for the user, inserts the coupon with the template's terms
-- and counts it on the template: 'claimed'. The template's terms come
-- back with every outcome but 'not_found'.
-- +goose StatementBegin
CREATE FUNCTION claim_coupon(p_template bigint, p_user bigint, p_coupon bigint, p_key text, p_now timestamptz,
    OUT outcome text, OUT threshold bigint, OUT amount bigint, OUT total bigint, OUT per_user_limit bigint,
    OUT valid_from timestamptz, OUT valid_until timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t coupon_templates%ROWTYPE;
BEGIN
    SELECT * INTO t FROM coupon_templates x WHERE x.template_id = p_template;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF t.claimed < t.total AND p_now >= t.valid_from AND p_now < t.valid_until THEN
        SELECT * INTO t FROM coupon_templates x WHERE x.template_id = p_template FOR NO KEY UPDATE;
    END IF;
    threshold := t.threshold;
    amount := t.amount;
    total := t.total;
    per_user_limit := t.per_user_limit;
    valid_from := t.valid_from;
    valid_until := t.valid_until;
    IF EXISTS (SELECT 1 FROM coupons c
               WHERE c.user_id = p_user AND c.template_id = p_template AND c.idempotency_key = p_key) THEN
        outcome := 'existing';
        RETURN;
    END IF;
    IF p_now < t.valid_from OR p_now >= t.valid_until THEN
        outcome := 'not_claimable';
        RETURN;
    END IF;
    IF t.claimed >= t.total THEN
        outcome := 'exhausted';
        RETURN;
    END IF;
    INSERT INTO coupon_claims AS c (template_id, user_id, claimed) VALUES (p_template, p_user, 1)
    ON CONFLICT (template_id, user_id) DO UPDATE SET claimed = c.claimed + 1 WHERE c.claimed < t.per_user_limit;
    IF NOT FOUND THEN
        outcome := 'limit';
        RETURN;
    END IF;
    INSERT INTO coupons (coupon_id, template_id, user_id, threshold, amount, valid_from, valid_until, status, claimed_at, idempotency_key)
    VALUES (p_coupon, p_template, p_user, t.threshold, t.amount, t.valid_from, t.valid_until, 'AVAILABLE', p_now, p_key);
    UPDATE coupon_templates x SET claimed = x.claimed + 1 WHERE x.template_id = p_template;
    outcome := 'claimed';
END
$$;
-- +goose StatementEnd
