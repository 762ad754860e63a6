-- The outbox of domain events, written in the transaction of the change it describes.
--
-- Readers see a gap-free prefix in seq order: writers hold a shared advisory lock from
-- the moment they take a seq until they commit, and a reader takes that lock exclusively
-- before it reads (see outbox.rs), so no seq below one already returned can appear later.

CREATE TABLE IF NOT EXISTS domain_events (
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    id              uuid        NOT NULL,
    kind            text        NOT NULL,
    booking_id      uuid        NOT NULL,
    professional_id uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    -- The whole booking_core::DomainEvent as JSON.
    payload         jsonb       NOT NULL,
    CONSTRAINT domain_events_pkey PRIMARY KEY (professional_id, id),
    CONSTRAINT domain_events_kind_check CHECK (kind IN (
        'booking_created', 'booking_confirmed', 'booking_cancelled',
        'booking_expired', 'booking_rescheduled'
    ))
);

-- Recording order, for events_after.
CREATE INDEX IF NOT EXISTS domain_events_seq_idx ON domain_events (seq);
-- Resolving an `after` cursor (an event id) to its position.
CREATE INDEX IF NOT EXISTS domain_events_id_idx ON domain_events (id) INCLUDE (seq);
