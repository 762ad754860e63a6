-- Idempotency records: one per (scope, key), claimed with INSERT .. ON CONFLICT DO NOTHING.
-- In flight: lease_id + locked_until. Completed: the stored final response.

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    fingerprint      bytea       NOT NULL,
    state            text        GENERATED ALWAYS AS (
        CASE WHEN response_status IS NULL THEN 'in_flight' ELSE 'completed' END
    ) STORED,
    lease_id         uuid,
    locked_until     timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_fingerprint_check CHECK (octet_length(fingerprint) = 32),
    CONSTRAINT idempotency_keys_state_check CHECK (
        (lease_id IS NOT NULL AND locked_until IS NOT NULL
            AND response_status IS NULL AND response_headers IS NULL AND response_body IS NULL)
        OR
        (lease_id IS NULL AND locked_until IS NULL
            AND response_status IS NOT NULL AND response_headers IS NOT NULL
            AND response_body IS NOT NULL)
    )
);

-- The purge of expired records.
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
