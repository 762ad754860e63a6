-- Outbound webhooks: subscriptions made by the admin and one delivery per (subscription,
-- event), created by the fan-out (booking_core::store::SubscriptionStore).
--
-- The fan-out marks events for the `webhooks` consumer (domain_events.webhooks_marked_at,
-- only while its lease holds them) and inserts their deliveries in the same statement, so
-- an event is fanned out exactly once; the unique (subscription_id, event_id) says so in
-- the schema too. A delivery keeps a copy of its event (payload), so pruning the outbox
-- never loses what is still to be sent.
--
-- A pending delivery is due at next_attempt_at. A claim (FOR UPDATE SKIP LOCKED) sets
-- lease_id, counts the attempt and moves next_attempt_at to the end of the lease; only the
-- lease's owner settles it (delivered, retry at, failed), which clears lease_id. Deleting a
-- subscription deletes its deliveries (ON DELETE CASCADE).
--
-- secret is the subscription's signing key (HMAC of Booking-Signature): kept as given
-- because signing needs it; the API shows it once.
--
-- Not booking data; to shard, distribute both tables by subscription_id.
--
-- Idempotent (IF NOT EXISTS), like every migration of this adapter.

CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id              uuid        PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    professional_id uuid,
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS webhook_subscriptions_list_idx
    ON webhook_subscriptions (created_at, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               uuid        PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt          integer     NOT NULL DEFAULT 0,
    response_status  integer,
    last_error       text,
    next_attempt_at  timestamptz,
    first_attempt_at timestamptz,
    delivered_at     timestamptz,
    lease_id         uuid,
    created_at       timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_subscription_event_key UNIQUE (subscription_id, event_id)
);

-- The due scan of pending deliveries.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- A subscription's delivery log in list order.
CREATE INDEX IF NOT EXISTS webhook_deliveries_list_idx
    ON webhook_deliveries (subscription_id, created_at, id);
