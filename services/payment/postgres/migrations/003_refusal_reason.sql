-- +goose Up
-- The order's refusal is recorded with the outcome, so whichever settler
-- refunds a refused payment (the callback that heard the refusal, or the
-- sweep resuming after a crash or a race) records the same reason
-- ("order EXPIRED"), not "order not payable".
ALTER TABLE payments ADD COLUMN refusal_reason text;
