-- Bookings. The guarantee "no two active bookings of one professional overlap" is the
-- exclusion constraint bookings_no_overlap; application checks only produce nicer errors.
--
-- Shardable by professional: every unique or exclusion constraint includes
-- professional_id, so the table can be distributed by that column.

CREATE TABLE IF NOT EXISTS bookings (
    id              uuid        NOT NULL,
    professional_id uuid        NOT NULL,
    client_id       uuid        NOT NULL,
    -- The booked range [starts_at, ends_at).
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    -- The booked range widened by the buffers: what conflicts are checked on. Always '[)'.
    blocked_range   tstzrange   NOT NULL,
    status          text        NOT NULL,
    price_cents     bigint      NOT NULL,
    currency        text        NOT NULL,
    -- For pending_payment: the instant the hold stops blocking. Kept after expiry.
    hold_expires_at timestamptz,
    -- The idempotent request that created the booking (a retry finds it here).
    request_ref     text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT bookings_pkey PRIMARY KEY (professional_id, id),
    CONSTRAINT bookings_status_check
        CHECK (status IN ('pending_payment', 'confirmed', 'cancelled', 'expired')),
    CONSTRAINT bookings_range_check CHECK (starts_at < ends_at),
    CONSTRAINT bookings_blocked_range_check CHECK (
        lower_inc(blocked_range) AND NOT upper_inc(blocked_range)
        AND NOT lower_inf(blocked_range) AND NOT upper_inf(blocked_range)
        AND blocked_range @> tstzrange(starts_at, ends_at, '[)')
    ),
    CONSTRAINT bookings_price_check CHECK (price_cents >= 0),
    CONSTRAINT bookings_currency_check CHECK (currency ~ '^[a-z]{3}$'),
    -- The truth. A hold whose hold_expires_at has passed still counts here until it is
    -- marked expired: by the sweep, or by the transaction of an insert that needs its slot
    -- (a constraint cannot call now()).
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        professional_id WITH =,
        blocked_range WITH &&
    ) WHERE (status IN ('pending_payment', 'confirmed'))
);

-- A request creates at most one booking.
CREATE UNIQUE INDEX IF NOT EXISTS bookings_request_ref_key
    ON bookings (professional_id, request_ref) WHERE request_ref IS NOT NULL;

-- Lookup by id alone (get_booking, transitions).
CREATE INDEX IF NOT EXISTS bookings_id_idx ON bookings (id);

-- Keyset pagination in (starts_at, id) order, one index per list owner.
CREATE INDEX IF NOT EXISTS bookings_professional_start_idx
    ON bookings (professional_id, starts_at, id);
CREATE INDEX IF NOT EXISTS bookings_client_start_idx
    ON bookings (client_id, starts_at, id);
CREATE INDEX IF NOT EXISTS bookings_start_idx
    ON bookings (starts_at, id);

-- The expiry sweep.
CREATE INDEX IF NOT EXISTS bookings_hold_expiry_idx
    ON bookings (hold_expires_at) WHERE status = 'pending_payment';
