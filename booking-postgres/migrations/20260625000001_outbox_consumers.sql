-- Consumers of the outbox (booking_core::events::Consumer: the NATS relay, the webhook
-- fan-out), each with its own marks on every event.
--
-- A claimer takes unmarked events in seq order with FOR UPDATE SKIP LOCKED, at most one
-- per booking: the earliest unmarked event of its booking (a later one is not claimable
-- while an earlier one is unmarked, claimed or not). A booking's events are written by
-- transactions serialized on the booking's row, so a later event is inserted only after
-- the earlier one committed: per booking, seq order is the order things happened, and a
-- claimer never sees a later event without the earlier one. The claim writes a lease
-- (<consumer>_lease, _lease_until) and commits; the events are delivered outside any
-- transaction and then marked (<consumer>_marked_at) by the same lease. A lease that runs
-- out makes its events claimable again (at-least-once; consumers deduplicate by event id).
--
-- Writers no longer need any lock shared by every professional's writes: the reader-side
-- rule above replaces "readers see a gap-free prefix".
--
-- Idempotent (IF NOT EXISTS), like every migration of this adapter.

ALTER TABLE domain_events
    ADD COLUMN IF NOT EXISTS nats_lease           uuid,
    ADD COLUMN IF NOT EXISTS nats_lease_until     timestamptz,
    ADD COLUMN IF NOT EXISTS nats_marked_at       timestamptz,
    ADD COLUMN IF NOT EXISTS webhooks_lease       uuid,
    ADD COLUMN IF NOT EXISTS webhooks_lease_until timestamptz,
    ADD COLUMN IF NOT EXISTS webhooks_marked_at   timestamptz;

-- Claims: the unmarked events of a consumer in seq order, and the "earlier unmarked event
-- of the same booking" test.
CREATE INDEX IF NOT EXISTS domain_events_nats_unmarked_idx
    ON domain_events (seq) WHERE nats_marked_at IS NULL;
CREATE INDEX IF NOT EXISTS domain_events_nats_booking_idx
    ON domain_events (booking_id, seq) WHERE nats_marked_at IS NULL;
CREATE INDEX IF NOT EXISTS domain_events_webhooks_unmarked_idx
    ON domain_events (seq) WHERE webhooks_marked_at IS NULL;
CREATE INDEX IF NOT EXISTS domain_events_webhooks_booking_idx
    ON domain_events (booking_id, seq) WHERE webhooks_marked_at IS NULL;
-- Pruning by age.
CREATE INDEX IF NOT EXISTS domain_events_occurred_idx ON domain_events (occurred_at);
