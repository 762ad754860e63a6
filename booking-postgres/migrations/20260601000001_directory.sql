-- Professionals, clients, their API tokens and schedules.
--
-- Every statement is idempotent (IF NOT EXISTS), so applying this file again by hand is
-- harmless; sqlx additionally records it in _sqlx_migrations and never re-runs it.

-- btree_gist lets a GiST exclusion constraint compare uuids with `=` (see bookings).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE IF NOT EXISTS professionals (
    id                uuid             NOT NULL,
    name              text             NOT NULL,
    category          text             NOT NULL,
    lat               double precision NOT NULL,
    lng               double precision NOT NULL,
    hourly_rate_cents bigint           NOT NULL,
    currency          text             NOT NULL,
    timezone          text             NOT NULL,
    is_active         boolean          NOT NULL,
    created_at        timestamptz      NOT NULL,
    updated_at        timestamptz      NOT NULL,
    CONSTRAINT professionals_pkey PRIMARY KEY (id),
    CONSTRAINT professionals_lat_check CHECK (lat BETWEEN -90 AND 90),
    CONSTRAINT professionals_lng_check CHECK (lng BETWEEN -180 AND 180),
    CONSTRAINT professionals_rate_check CHECK (hourly_rate_cents >= 0),
    CONSTRAINT professionals_currency_check CHECK (currency ~ '^[a-z]{3}$')
);

-- Search without a category: active professionals in (hourly_rate_cents, id) order.
CREATE INDEX IF NOT EXISTS professionals_rate_idx
    ON professionals (hourly_rate_cents, id) WHERE is_active;
-- Search within a category, same order.
CREATE INDEX IF NOT EXISTS professionals_category_rate_idx
    ON professionals (category, hourly_rate_cents, id) WHERE is_active;

CREATE TABLE IF NOT EXISTS clients (
    id         uuid        NOT NULL,
    name       text        NOT NULL,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT clients_pkey PRIMARY KEY (id)
);

-- Only the SHA-256 of a token is stored.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash     bytea NOT NULL,
    principal_kind text  NOT NULL,
    principal_id   uuid  NOT NULL,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT api_tokens_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT api_tokens_kind_check CHECK (principal_kind IN ('client', 'professional'))
);

-- The weekly rules are read and written whole: one jsonb document per professional.
CREATE TABLE IF NOT EXISTS schedules (
    professional_id uuid  NOT NULL,
    body            jsonb NOT NULL,
    CONSTRAINT schedules_pkey PRIMARY KEY (professional_id),
    CONSTRAINT schedules_professional_id_fkey FOREIGN KEY (professional_id)
        REFERENCES professionals (id) ON DELETE CASCADE
);
