//! [`RequestStore`]: the use cases that span tables, each in one round trip in the usual
//! case.
//!
//! * `begin_booking`: the idempotency claim of a new booking and what deciding it needs
//!   (professional, schedule, whether the client exists) in one statement.
//! * `insert_booking_answered`: the booking, its outbox event and the request's answer in
//!   one statement (see [`super::bookings`]).
//! * `availability_snapshot`: professional, schedule and the blocked ranges in reach of the
//!   window in one statement.

use async_trait::async_trait;
use booking_core::domain::{Booking, ClientId, ProfessionalId, TimeRange};
use booking_core::idempotency::{Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope};
use booking_core::store::{AvailabilitySnapshot, BookingContext, RequestAnswer, RequestStore};
use booking_core::{Inserted, Result, Schedule};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgRange;
use sqlx::types::Json;

use super::PgStore;
use super::idempotency::{bind_in_flight, claim_ctes, fresh_claim, no_record_columns};
use crate::error::{PgError, retrying};
use crate::rows::{self, idempotency_columns, professional_columns_prefixed};

/// `begin_booking`'s statement: claims `($1, $2)` for a record in flight (`$3` fingerprint,
/// `$4` lease, `$5` locked until, `$6` created, `$7` expires) or reads the record holding
/// it, exactly like `CLAIM_OR_READ`, and on either row the context of booking professional
/// `$8` for client `$9`.
pub(crate) const CLAIM_WITH_CONTEXT: &str = concat!(
    claim_ctes!(),
    ", ctx AS ( \
         SELECT ",
    professional_columns_prefixed!(),
    ", \
             (SELECT body FROM schedules WHERE professional_id = $8) AS schedule_body, \
             EXISTS (SELECT 1 FROM clients WHERE id = $9) AS client_exists \
         FROM (SELECT 1) AS one LEFT JOIN professionals AS p ON p.id = $8) \
     SELECT TRUE AS claimed, ",
    no_record_columns!(),
    ", ctx.* FROM async_commit, claimed, ctx \
     UNION ALL \
     SELECT FALSE AS claimed, ",
    idempotency_columns!(),
    ", ctx.* FROM idempotency_keys, ctx \
     WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM claimed)"
);

/// `availability_snapshot`'s statement: professional `$1`, their schedule, and the blocked
/// ranges of their bookings active at `$4` (`NULL`: the database's clock) that overlap `[$2, $3)` widened by the
/// schedule's buffers, in start order.
pub(crate) const AVAILABILITY_SNAPSHOT: &str = concat!(
    "SELECT ",
    professional_columns_prefixed!(),
    ", s.body AS schedule_body, \
         CASE WHEN s.body IS NULL THEN '{}'::tstzrange[] ELSE ARRAY( \
             SELECT b.blocked_range FROM bookings AS b \
             WHERE b.professional_id = $1 \
               AND b.status IN ('pending_payment', 'confirmed') \
               AND (b.status = 'confirmed' \
                    OR b.hold_expires_at > COALESCE($4::timestamptz, now())) \
               AND b.blocked_range && tstzrange( \
                   $2 - make_interval(mins => COALESCE((s.body->>'buffer_before_minutes')::int, 0)), \
                   $3 + make_interval(mins => COALESCE((s.body->>'buffer_after_minutes')::int, 0)), \
                   '[)') \
             ORDER BY lower(b.blocked_range)) END AS blocked \
     FROM professionals AS p LEFT JOIN schedules AS s ON s.professional_id = p.id \
     WHERE p.id = $1"
);

/// The booking context columns of a [`CLAIM_WITH_CONTEXT`] row.
fn context(row: &PgRow) -> Result<BookingContext, PgError> {
    Ok(BookingContext {
        professional: rows::optional_professional_at(row, "p_")?,
        schedule: schedule(row)?,
        client_exists: row.try_get("client_exists")?,
    })
}

fn schedule(row: &PgRow) -> Result<Option<Schedule>, PgError> {
    let body: Option<Json<Schedule>> = row.try_get("schedule_body")?;
    Ok(body.map(|Json(s)| s))
}

impl PgStore {
    #[allow(clippy::too_many_arguments)]
    async fn begin_booking_once(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<(Decision, Option<BookingContext>), PgError> {
        let (started, fresh) = fresh_claim(scope, key, fingerprint, now, policy)?;
        let row = bind_in_flight(sqlx::query(CLAIM_WITH_CONTEXT), &fresh)?
            .bind(professional_id.as_uuid())
            .bind(client_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            // The key is held by a record committed after the statement's snapshot: decide
            // under the row lock; the engine reads the context itself (rare).
            let decision = self.begin_tx(scope, key, fingerprint, now, policy).await?;
            return Ok((decision, None));
        };
        if row.try_get::<bool, _>("claimed")? {
            return Ok((started, Some(context(&row)?)));
        }
        let existing = rows::idempotency_record(&row)?;
        let decision = self
            .decide_held(&existing, scope, key, fingerprint, now, policy)
            .await?;
        Ok((decision, None))
    }

    async fn availability_snapshot_once(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
        pool: &sqlx::PgPool,
    ) -> Result<Option<AvailabilitySnapshot>, PgError> {
        let Some(row) = sqlx::query(AVAILABILITY_SNAPSHOT)
            .bind(professional_id.as_uuid())
            .bind(window.start())
            .bind(window.end())
            .bind(self.clock.bind(now))
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let Some(professional) = rows::optional_professional_at(&row, "p_")? else {
            return Ok(None);
        };
        let blocked: Vec<PgRange<DateTime<Utc>>> = row.try_get("blocked")?;
        Ok(Some(AvailabilitySnapshot {
            professional,
            schedule: schedule(&row)?,
            blocked: blocked
                .into_iter()
                .map(rows::time_range)
                .collect::<Result<Vec<_>, PgError>>()?,
        }))
    }
}

#[async_trait]
impl RequestStore for PgStore {
    async fn insert_booking_answered(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: &RequestAnswer,
    ) -> Result<(Inserted, bool)> {
        self.insert_booking_answered_impl(booking, now, answer)
            .await
    }

    async fn begin_booking(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<(Decision, Option<BookingContext>)> {
        retrying!(
            self.retry,
            self.begin_booking_once(
                scope,
                key,
                fingerprint,
                now,
                policy,
                client_id,
                professional_id
            )
        )
    }

    async fn availability_snapshot(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Option<AvailabilitySnapshot>> {
        // Availability is a read for display: a replica that lags shows a slot booked a
        // moment ago as free, and booking it answers 409, as any race would. The booking
        // itself is always decided on the primary.
        if let Some(read) = &self.read_pool {
            match self
                .availability_snapshot_once(professional_id, window, now, read)
                .await
            {
                Ok(snapshot) => return Ok(snapshot),
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: availability on the read replica failed; using the primary");
                }
            }
        }
        retrying!(
            self.retry,
            self.availability_snapshot_once(professional_id, window, now, &self.pool)
        )
    }
}
