//! [`PaymentStore`]: payments kept on bookings (the `payment_*` columns of `bookings`, see
//! the migration `20260620000001_booking_payments.sql`).
//!
//! * `attach_payment` is one statement: it locks the booking, sets the payment if it has
//!   none, and stores the request's answer in the same statement when the booking carries
//!   that very intent (the `answered` CTE that `insert_booking_answered` uses).
//! * The other changes run in a transaction that locks the booking, decides with the pure
//!   functions of [`booking_core::payment`], and writes the whole booking back with its
//!   domain event ([`write`]).
//! * `settle_payment` first locks the inbox event (only while `lease` owns it) and takes
//!   the professional's insert lock before the booking's row lock, in the same order as
//!   inserts, so a payment that confirms an expired hold queues behind (or ahead of) an
//!   insert into the same slot instead of deadlocking with it. The exclusion constraint
//!   still decides; a writer that does not take that lock (a manual confirm) can make the
//!   update fail with `23P01`, which is [`Error::SlotUnavailable`] and rolls everything
//!   back, so the event stays pending for a retry.

use async_trait::async_trait;
use booking_core::domain::{Booking, BookingId};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::idempotency::LeaseId;
use booking_core::payment::{
    ObligationMet, Payment, PaymentChange, apply_change, meet_obligation, needs_free_slot,
};
use booking_core::store::{PaymentStore, RequestAnswer, Settled};
use booking_core::webhook::inbox::InboxKey;
use booking_core::{BookingStatus, Entity, Error, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::bookings::{
    answer_cte, bind_answer, clock_now, lock_booking, professional_lock, release_expired_holds,
};
use super::inbox::MARK_PROCESSED;
use super::{PgStore, outbox};
use crate::error::{PgError, retrying, sqlstate};
use crate::rows::{self, bind_payment, booking_columns, payment_columns, pg_range};

/// `attach_payment`: `$1` booking id, `$2`..`$8` the payment's columns (provider, intent,
/// client secret, refunded, refund owed, refund id, intent closed), `$9` now (`NULL`: the
/// database's clock; the caller's when an answer is stored, since the engine rendered it
/// with that `updated_at`), `$10`..`$15`
/// the request's answer (scope `NULL` for none).
///
/// `locked` takes the row lock first (the update depends on it, so it runs after), and
/// returns the row as committed last; `updated` sets the payment only if there is none
/// yet. The answer is stored when the booking ends up with this very intent (attached now,
/// or by an earlier attempt of the same request). Returns the booking afterwards and
/// `answered`, or no row when there is no such booking.
const ATTACH: &str = concat!(
    "WITH locked AS ( \
         SELECT ",
    booking_columns!(),
    " FROM bookings WHERE id = $1 FOR UPDATE), \
     updated AS ( \
         UPDATE bookings SET (",
    payment_columns!(),
    ", updated_at) = ($2, $3, $4, $5, $6, $7, $8, ",
    clock_now!("$9"),
    ") \
         WHERE id = $1 AND payment_intent_id IS NULL AND EXISTS (SELECT 1 FROM locked) \
         RETURNING ",
    booking_columns!(),
    "), \
     attached AS ( \
         SELECT 1 FROM updated \
         UNION ALL \
         SELECT 1 FROM locked WHERE payment_provider = $2 AND payment_intent_id = $3), ",
    answer_cte!("attached", "$10", "$11", "$12", "$13", "$14", "$15"),
    " SELECT EXISTS (SELECT 1 FROM answered) AS answered, ",
    booking_columns!(),
    " FROM updated \
     UNION ALL \
     SELECT EXISTS (SELECT 1 FROM answered) AS answered, ",
    booking_columns!(),
    " FROM locked WHERE NOT EXISTS (SELECT 1 FROM updated)"
);

/// Writes a locked booking back whole (what can change: status, hold expiry, request
/// reference, updated at, the payment): `$1` professional, `$2` id, `$3` status, `$4` hold
/// expiry, `$5` request reference, `$6` updated at, `$7`..`$13` the payment's columns.
pub(crate) const WRITE: &str = concat!(
    "UPDATE bookings SET status = $3, hold_expires_at = $4, request_ref = $5, \
         updated_at = $6, (",
    payment_columns!(),
    ") = ($7, $8, $9, $10, $11, $12, $13) \
     WHERE professional_id = $1 AND id = $2 RETURNING ",
    booking_columns!()
);

/// `settle_payment`'s first step: locks inbox event (`$1` provider, `$2` event id) if it is
/// pending under lease `$3`.
pub(crate) const LOCK_OWNED_EVENT: &str = "SELECT 1 FROM webhook_inbox \
     WHERE provider = $1 AND event_id = $2 AND state = 'pending' AND lease_id = $3 \
     FOR UPDATE";

/// Takes the insert lock of the professional of booking `$1`; a row if the booking exists.
/// (The lateral subquery is volatile, so it runs only for the booking found.)
pub(crate) const LOCK_PROFESSIONAL_OF: &str = concat!(
    "SELECT b.professional_id FROM bookings AS b, \
         LATERAL (SELECT ",
    professional_lock!("b.professional_id"),
    ") AS l \
     WHERE b.id = $1"
);

/// Whether another booking of professional `$1` than `$2` whose blocked range overlaps `$3`
/// is active at `$4` (confirmed, or a hold that has not run out).
const OTHER_ACTIVE_OVERLAPS: &str = "SELECT EXISTS ( \
     SELECT 1 FROM bookings \
     WHERE professional_id = $1 AND id <> $2 AND blocked_range && $3 \
       AND status IN ('pending_payment', 'confirmed') \
       AND (status = 'confirmed' OR hold_expires_at > $4))";

/// `booking_by_intent`: `$1` the intent. Two rows would mean one intent pays for two
/// bookings (of different professionals): refused as corrupt rather than guessed.
const BY_INTENT: &str = concat!(
    "SELECT ",
    booking_columns!(),
    " FROM bookings WHERE payment_intent_id = $1 LIMIT 2"
);

/// `payment_obligations`: `$1` now (`NULL`: the database's clock), `$2` limit. The predicate of
/// `bookings_payment_obligation_idx` plus the clock test for holds that ran out; the
/// index also delivers the order.
pub(crate) const OBLIGATIONS: &str = concat!(
    "SELECT ",
    booking_columns!(),
    " FROM bookings \
     WHERE payment_intent_id IS NOT NULL AND ( \
         (payment_refund_owed AND payment_refund_id IS NULL) \
         OR (NOT payment_refund_owed AND NOT payment_intent_closed \
             AND status IN ('pending_payment', 'expired', 'cancelled') \
             AND (status <> 'pending_payment' OR hold_expires_at IS NULL \
                  OR hold_expires_at <= ",
    clock_now!("$1"),
    "))) \
     ORDER BY updated_at, id LIMIT $2"
);

/// Writes `next` (a booking locked by the caller's transaction) and records `event` for it,
/// built from the row as stored. Returns the stored booking.
async fn write(
    conn: &mut PgConnection,
    next: &Booking,
    event: Option<EventKind>,
) -> Result<Booking, PgError> {
    let row = bind_payment(
        sqlx::query(WRITE)
            .bind(next.professional_id.as_uuid())
            .bind(next.id.as_uuid())
            .bind(next.status.as_str())
            .bind(next.hold_expires_at)
            .bind(next.request_ref.as_deref())
            .bind(next.updated_at),
        next.payment.as_ref(),
    )
    .fetch_one(&mut *conn)
    .await?;
    let stored = rows::booking(&row)?;
    if let Some(kind) = event {
        outbox::record(conn, &[DomainEvent::new(kind, &stored, None)]).await?;
    }
    Ok(stored)
}

/// Whether `payment` is the one `booking` carries (same provider, same intent).
fn carries(booking: &Booking, payment: &Payment) -> bool {
    booking
        .payment
        .as_ref()
        .is_some_and(|p| p.provider == payment.provider && p.intent_id == payment.intent_id)
}

impl PgStore {
    async fn attach_once(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool), PgError> {
        let query = bind_payment(sqlx::query(ATTACH).bind(id.as_uuid()), Some(payment));
        // An answer was rendered with `updated_at = now`: store what it shows.
        let stamp = if answer.is_some() {
            Some(now)
        } else {
            self.clock.bind(now)
        };
        let result = bind_answer(query.bind(stamp), answer)
            .fetch_optional(&self.pool)
            .await;
        let row = match result {
            Ok(Some(row)) => row,
            Ok(None) => return Err(Error::NotFound(Entity::Booking).into()),
            Err(e) => {
                let e = PgError::from(e);
                if e.violates(sqlstate::UNIQUE_VIOLATION, "bookings_payment_intent_key") {
                    return Err(Error::InvalidState(
                        "this payment intent already pays for another booking".into(),
                    )
                    .into());
                }
                return Err(e);
            }
        };
        let booking = rows::booking(&row)?;
        if !carries(&booking, payment) {
            return Err(
                Error::InvalidState("the booking already has another payment".into()).into(),
            );
        }
        Ok((booking, row.try_get("answered")?))
    }

    async fn release_tx(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, now) = match lock_booking(&mut tx, id).await {
            Ok((b, db_now)) => (b, self.clock.pick(now, db_now)),
            Err(PgError::Domain(Error::NotFound(_))) => return Ok(None),
            Err(e) => return Err(e),
        };
        if current.status != BookingStatus::PendingPayment || current.payment.is_some() {
            return Ok(None);
        }
        let next = Booking {
            status: BookingStatus::Expired,
            hold_expires_at: Some(now),
            request_ref: None,
            updated_at: now,
            ..current
        };
        let released = write(&mut tx, &next, Some(EventKind::BookingExpired)).await?;
        tx.commit().await?;
        Ok(Some(released))
    }

    async fn settle_tx(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>, PgError> {
        let mut tx = self.pool.begin().await?;
        let owned = sqlx::query(LOCK_OWNED_EVENT)
            .bind(key.provider())
            .bind(key.event_id())
            .bind(lease.0)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        // Dropping the transaction on an early return rolls it back.
        if sqlx::query(LOCK_PROFESSIONAL_OF)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(Entity::Booking).into());
        }
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        // One clock for the whole transaction: the decision, the booking's stamps and the
        // event's `processed_at`.
        let now = self.clock.pick(now, db_now);
        let slot_free = if needs_free_slot(&current, change, now) {
            release_expired_holds(
                &mut tx,
                current.professional_id,
                &current.blocked,
                Some(now),
                id,
            )
            .await?;
            let taken: bool = sqlx::query_scalar(OTHER_ACTIVE_OVERLAPS)
                .bind(current.professional_id.as_uuid())
                .bind(id.as_uuid())
                .bind(pg_range(&current.blocked))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            !taken
        } else {
            // Not consulted by apply_change.
            true
        };
        let (booking, outcome) = match apply_change(&current, change, slot_free, now) {
            Some(plan) => (
                write(&mut tx, &plan.booking, plan.event).await?,
                Some(plan.outcome),
            ),
            None => (current, None),
        };
        let marked = sqlx::query(MARK_PROCESSED)
            .bind(key.provider())
            .bind(key.event_id())
            .bind(lease.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if marked.rows_affected() != 1 {
            // Cannot happen: the event is locked and was owned. Change nothing.
            return Err(PgError::Domain(Error::Internal(
                "inbox event locked but not marked processed".into(),
            )));
        }
        tx.commit().await?;
        Ok(Some(Settled { booking, outcome }))
    }

    async fn obligation_met_tx(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        let now = self.clock.pick(now, db_now);
        let booking = match meet_obligation(&current, met, now) {
            Some(next) => write(&mut tx, &next, None).await?,
            None => current,
        };
        tx.commit().await?;
        Ok(booking)
    }
}

#[async_trait]
impl PaymentStore for PgStore {
    async fn attach_payment(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool)> {
        retrying!(self.retry, self.attach_once(id, payment, answer, now))
    }

    async fn release_unpaid_hold(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>> {
        retrying!(self.retry, self.release_tx(id, now))
    }

    async fn settle_payment(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>> {
        retrying!(self.retry, self.settle_tx(key, lease, id, change, now))
    }

    async fn booking_by_intent(&self, intent_id: &str) -> Result<Option<Booking>> {
        retrying!(self.retry, async {
            let found = sqlx::query(BY_INTENT)
                .bind(intent_id)
                .fetch_all(&self.pool)
                .await?;
            match found.as_slice() {
                [] => Ok(None),
                [row] => rows::booking(row).map(Some),
                _ => Err(PgError::corrupt(format!(
                    "payment intent {intent_id:?} is attached to several bookings"
                ))),
            }
        })
    }

    async fn payment_obligations(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        retrying!(self.retry, async {
            sqlx::query(OBLIGATIONS)
                .bind(self.clock.bind(now))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::booking)
                .collect::<Result<Vec<_>, PgError>>()
        })
    }

    async fn obligation_met(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        retrying!(self.retry, self.obligation_met_tx(id, met, now))
    }
}
