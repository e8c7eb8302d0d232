-- +goose Up
-- An activity may require a solved challenge token on every buy (the
-- gateway's bot wall, docs/protection.md); existing activities do not.
ALTER TABLE activities ADD COLUMN challenge_required boolean NOT NULL DEFAULT false;
