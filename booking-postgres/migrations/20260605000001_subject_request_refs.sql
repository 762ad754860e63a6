-- The idempotent request that created a professional or a client: a retry of
-- `POST /v1/clients` or `/v1/professionals` after a 5xx or a crash finds the subject its
-- first attempt stored instead of creating a second one.
--
-- It sits on the subject's token row, which is written in the same transaction as the
-- subject: "the request that issued this token". A reference is unique across all subjects
-- (the token table is keyed by token hash, not by professional, like before). Rows from
-- before this migration, and subjects created without an idempotency key, have none.
--
-- Idempotent (IF NOT EXISTS), like every migration of this adapter.

ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS request_ref text;

CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_request_ref_key
    ON api_tokens (request_ref) WHERE request_ref IS NOT NULL;
