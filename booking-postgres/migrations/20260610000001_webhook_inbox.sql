-- The inbound webhook inbox: each provider event recorded once, then processed by workers.
--
-- The primary key (provider, event_id) is the guarantee that an event is recorded once:
-- `record` inserts with ON CONFLICT DO NOTHING, so a redelivery changes nothing. The inbox
-- is not booking data; to shard it, distribute it by event_id (part of the key).
--
-- A pending event is due at next_attempt_at. A claim (FOR UPDATE SKIP LOCKED) sets
-- lease_id and moves next_attempt_at to the end of the lease, so other claimers skip it
-- until the lease runs out; only the lease's owner settles it (processed, retry later,
-- dead-lettered), which clears lease_id.
--
-- Idempotent (IF NOT EXISTS), like every migration of this adapter.

CREATE TABLE IF NOT EXISTS webhook_inbox (
    provider         text        NOT NULL,
    event_id         text        NOT NULL,
    -- Derived from (provider, event_id) by booking-core (InboxKey::list_id): the tie breaker
    -- of the dead-letter list order. Not an identity of its own.
    list_id          uuid        NOT NULL,
    event_type       text        NOT NULL,
    -- The raw request body, exactly as signed.
    payload          bytea       NOT NULL,
    received_at      timestamptz NOT NULL,
    state            text        NOT NULL,
    attempts         integer     NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    lease_id         uuid,
    last_error       text,
    processed_at     timestamptz,
    dead_lettered_at timestamptz,
    CONSTRAINT webhook_inbox_pkey PRIMARY KEY (provider, event_id),
    CONSTRAINT webhook_inbox_state_check
        CHECK (state IN ('pending', 'processed', 'dead_lettered')),
    CONSTRAINT webhook_inbox_attempts_check CHECK (attempts >= 0),
    CONSTRAINT webhook_inbox_processed_check
        CHECK ((state = 'processed') = (processed_at IS NOT NULL)),
    CONSTRAINT webhook_inbox_dead_letter_check
        CHECK ((state = 'dead_lettered') = (dead_lettered_at IS NOT NULL)),
    CONSTRAINT webhook_inbox_lease_check CHECK (state = 'pending' OR lease_id IS NULL)
);

-- Claims: pending events by due time.
CREATE INDEX IF NOT EXISTS webhook_inbox_due_idx
    ON webhook_inbox (next_attempt_at) WHERE state = 'pending';
-- The dead-letter list, in its keyset order.
CREATE INDEX IF NOT EXISTS webhook_inbox_dead_letter_idx
    ON webhook_inbox (dead_lettered_at, list_id) WHERE state = 'dead_lettered';
-- Pruning processed events past their retention.
CREATE INDEX IF NOT EXISTS webhook_inbox_processed_idx
    ON webhook_inbox (processed_at) WHERE state = 'processed';
