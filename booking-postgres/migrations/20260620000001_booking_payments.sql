-- Payments on bookings (booking_core::payment::Payment): the provider's intent that pays
-- for a hold, and what the engine still owes the provider for it.
--
-- A booking has a payment exactly when payment_intent_id is set; the other payment columns
-- keep their defaults until then (bookings_payment_fields_check), so a row without an
-- intent reads back as "no payment" without losing anything.
--
-- Shardable by professional: the unique intent index includes professional_id.
--
-- Idempotent (IF NOT EXISTS; constraints are added only when missing), like every
-- migration of this adapter.

ALTER TABLE bookings
    ADD COLUMN IF NOT EXISTS payment_provider              text,
    ADD COLUMN IF NOT EXISTS payment_intent_id             text,
    -- What the client's browser needs to pay; cleared once the intent is closed.
    ADD COLUMN IF NOT EXISTS payment_client_secret         text,
    -- The largest refunded total the provider reported, in minor units.
    ADD COLUMN IF NOT EXISTS payment_amount_refunded_cents bigint  NOT NULL DEFAULT 0,
    -- A payment arrived that the booking cannot honour. Never reverts.
    ADD COLUMN IF NOT EXISTS payment_refund_owed           boolean NOT NULL DEFAULT false,
    -- The provider's id of the refund issued for payment_refund_owed.
    ADD COLUMN IF NOT EXISTS payment_refund_id             text,
    -- The intent needs nothing more from the engine.
    ADD COLUMN IF NOT EXISTS payment_intent_closed         boolean NOT NULL DEFAULT false;

DO $migration$
BEGIN
    -- The provider and its intent come together.
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'bookings'::regclass AND conname = 'bookings_payment_intent_check'
    ) THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_payment_intent_check
            CHECK ((payment_provider IS NULL) = (payment_intent_id IS NULL));
    END IF;
    -- Without an intent there is no payment state to keep; refunded totals never go
    -- negative.
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'bookings'::regclass AND conname = 'bookings_payment_fields_check'
    ) THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_payment_fields_check CHECK (
            payment_amount_refunded_cents >= 0
            AND (payment_intent_id IS NOT NULL OR (
                payment_client_secret IS NULL AND payment_amount_refunded_cents = 0
                AND NOT payment_refund_owed AND payment_refund_id IS NULL
                AND NOT payment_intent_closed))
        );
    END IF;
END
$migration$;

-- An intent pays for at most one booking of a professional (provider intent ids are
-- globally unique; the professional makes the index shardable).
CREATE UNIQUE INDEX IF NOT EXISTS bookings_payment_intent_key
    ON bookings (professional_id, payment_intent_id) WHERE payment_intent_id IS NOT NULL;

-- booking_by_intent: a provider event names the intent, not the professional.
CREATE INDEX IF NOT EXISTS bookings_payment_intent_idx
    ON bookings (payment_intent_id) WHERE payment_intent_id IS NOT NULL;

-- payment_obligations, oldest change first: the rows for which
-- booking_core::payment::obligation can be Some. A refund owed and not yet issued, or an
-- intent not closed whose hold ended: expired, cancelled, or still stored as
-- pending_payment but run out (the query adds `hold_expires_at <= now` for those; a
-- predicate cannot read the clock).
CREATE INDEX IF NOT EXISTS bookings_payment_obligation_idx
    ON bookings (updated_at, id)
    WHERE payment_intent_id IS NOT NULL AND (
        (payment_refund_owed AND payment_refund_id IS NULL)
        OR (NOT payment_refund_owed AND NOT payment_intent_closed
            AND status IN ('pending_payment', 'expired', 'cancelled')));
