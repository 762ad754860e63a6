//! Bookings: inserts, transitions, reschedules, lists and the expiry sweep.

use async_trait::async_trait;
use booking_core::domain::{Booking, BookingId, ProfessionalId, TimeRange, Transition};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::store::{
    BookingQuery, BookingStore, Cursor, Inserted, Page, RequestAnswer, check_limit,
};
use booking_core::{Entity, Error, Result};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

mod changes;
mod sql;

pub(super) use sql::bind_answer;
use sql::bind_booking;
pub(crate) use sql::{
    EXPIRE_DUE, FIND_BY_REQUEST, INSERT_FAST, LOCK_BOOKING, SELECT_BOOKING, list_bookings,
};
pub(super) use sql::{answer_cte, clock_now, professional_lock};

use super::{PgStore, outbox};
use crate::config::PgClock;
use crate::error::{PgError, retrying, sqlstate};
use crate::rows::{self, pg_range};

/// Marks the professional's holds that ran out by `now` and whose blocked range overlaps
/// `blocked` as `expired` (recording their events), so that the exclusion constraint lets
/// the caller take that slot. `except` is the booking the caller is about to write. `now`
/// is `None` for the database's time (`now()`, the transaction's).
///
/// The rows are locked in id order, so two transactions releasing the same holds cannot
/// deadlock on them; a hold another transaction changed meanwhile is re-checked and
/// skipped.
pub(super) async fn release_expired_holds(
    conn: &mut PgConnection,
    professional_id: ProfessionalId,
    blocked: &TimeRange,
    now: Option<DateTime<Utc>>,
    except: BookingId,
) -> Result<Vec<Booking>, PgError> {
    let released = sqlx::query(sql::RELEASE_EXPIRED_HOLDS)
        .bind(professional_id.as_uuid())
        .bind(now)
        .bind(pg_range(blocked))
        .bind(except.as_uuid())
        .fetch_all(&mut *conn)
        .await?;
    let mut expired = released
        .iter()
        .map(rows::booking)
        .collect::<Result<Vec<_>, _>>()?;
    expired.sort_by_key(|b| (b.range.start(), b.id));
    let events: Vec<DomainEvent> = expired
        .iter()
        .map(|b| DomainEvent::new(EventKind::BookingExpired, b, None))
        .collect();
    outbox::record(conn, &events).await?;
    Ok(expired)
}

async fn find_by_request(
    conn: &mut PgConnection,
    professional_id: ProfessionalId,
    request_ref: &str,
) -> Result<Option<Booking>, PgError> {
    sqlx::query(FIND_BY_REQUEST)
        .bind(professional_id.as_uuid())
        .bind(request_ref)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(rows::booking)
        .transpose()
}

/// The booking, locked for the rest of the transaction, and the database's time.
pub(super) async fn lock_booking(
    conn: &mut PgConnection,
    id: BookingId,
) -> Result<(Booking, DateTime<Utc>), PgError> {
    let row = sqlx::query(LOCK_BOOKING)
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .ok_or(Error::NotFound(Entity::Booking))?;
    Ok((rows::booking(&row)?, row.try_get("db_now")?))
}

/// Whether every instant of `booking` is a whole microsecond (what `timestamptz` stores), so
/// that the stored row reads back equal to `booking` and its `BookingCreated` event can be
/// built before the insert.
fn is_microsecond_exact(booking: &Booking) -> bool {
    use chrono::Timelike;
    let exact =
        |t: DateTime<Utc>| t.nanosecond().is_multiple_of(1_000) && t.nanosecond() < 1_000_000_000;
    [
        booking.range.start(),
        booking.range.end(),
        booking.blocked.start(),
        booking.blocked.end(),
        booking.created_at,
        booking.updated_at,
    ]
    .into_iter()
    .chain(booking.hold_expires_at)
    .all(exact)
}

/// What the one-statement insert did.
// Returned once and matched at once, never stored: boxing the booking would only add an
// allocation to every insert.
#[allow(clippy::large_enum_variant)]
enum FastInsert {
    /// Done (stored with its event, or the request's earlier booking found), and whether
    /// the request's answer was stored with it.
    Done(Inserted, bool),
    /// Holds that ran out overlap the slot and must be released first: nothing changed.
    HoldsToRelease,
}

impl PgStore {
    /// The insert as one statement (one round trip, one implicit transaction): the look-up
    /// of the request's earlier booking, the insert and its outbox event. Used when no hold
    /// that ran out overlaps the slot (the common case); otherwise nothing is written and
    /// the caller runs [`PgStore::insert_booking_tx`], which releases them first.
    ///
    /// The exclusion constraint still decides conflicts: a refused insert (`23P01`, or the
    /// request's unique reference) fails the whole statement and is handled like in the
    /// transaction.
    async fn insert_booking_fast(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: Option<&RequestAnswer>,
    ) -> Result<FastInsert, PgError> {
        // `booking` is microsecond exact (checked by the caller), so the row reads back
        // equal to it and the event can be built first.
        let event = DomainEvent::new(EventKind::BookingCreated, booking, None);
        let query = bind_answer(
            bind_booking(sqlx::query(INSERT_FAST), booking)
                .bind(self.clock.bind(now))
                .bind(event.id.as_uuid())
                .bind(event.kind.as_str())
                .bind(event.occurred_at)
                .bind(Json(&event)),
            answer,
        );
        let result = rows::bind_payment(query, booking.payment.as_ref())
            .fetch_optional(&self.pool)
            .await;
        let row = match result {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(FastInsert::HoldsToRelease),
            Err(e) => {
                return self
                    .after_failed_insert(booking, PgError::from(e))
                    .await
                    .map(|i| FastInsert::Done(i, false));
            }
        };
        let outcome: String = row.try_get("outcome")?;
        let answered: bool = row.try_get("answered")?;
        let stored = rows::booking(&row)?;
        if outcome == "existing" {
            return Ok(FastInsert::Done(Inserted::Existing(stored), false));
        }
        // On the database's clock the stored instants are the database's, by design.
        if self.clock == PgClock::Caller && stored != event.booking {
            // Cannot happen for a microsecond-exact booking. The row and its event are
            // committed, so failing now would only make the caller retry; say it loudly.
            tracing::error!(
                booking_id = %stored.id,
                "postgres: a stored booking does not read back as written"
            );
        }
        Ok(FastInsert::Done(Inserted::Created(stored), answered))
    }

    async fn insert_booking_once(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: Option<&RequestAnswer>,
    ) -> Result<(Inserted, bool), PgError> {
        if is_microsecond_exact(booking) {
            match self.insert_booking_fast(booking, now, answer).await? {
                FastInsert::Done(inserted, answered) => return Ok((inserted, answered)),
                FastInsert::HoldsToRelease => {}
            }
        }
        self.insert_booking_tx(booking, now, answer).await
    }

    async fn insert_booking_tx(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: Option<&RequestAnswer>,
    ) -> Result<(Inserted, bool), PgError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::LOCK_PROFESSIONAL)
            .bind(booking.professional_id.as_uuid())
            .execute(&mut *tx)
            .await?;
        if let Some(r) = &booking.request_ref
            && let Some(existing) = find_by_request(&mut tx, booking.professional_id, r).await?
        {
            tx.commit().await?;
            return Ok((Inserted::Existing(existing), false));
        }
        let clock = self.clock.bind(now);
        release_expired_holds(
            &mut tx,
            booking.professional_id,
            &booking.blocked,
            clock,
            booking.id,
        )
        .await?;
        // `$21` is `NULL` when the database's clock stamps the row (see `on_clock`): not
        // when an answer rendered from `booking` as given is stored with it.
        let restamp = if answer.is_some() { Some(now) } else { clock };
        let inserted = rows::bind_payment(
            bind_booking(sqlx::query(sql::INSERT_LOCKED), booking),
            booking.payment.as_ref(),
        )
        .bind(restamp)
        .fetch_one(&mut *tx)
        .await;
        let stored = match inserted {
            Ok(row) => rows::booking(&row)?,
            Err(e) => {
                let e = PgError::from(e);
                // Rolling back is best effort: the connection discards the transaction
                // anyway if this fails.
                let _ = tx.rollback().await;
                return self
                    .after_failed_insert(booking, e)
                    .await
                    .map(|i| (i, false));
            }
        };
        outbox::record(
            &mut tx,
            &[DomainEvent::new(EventKind::BookingCreated, &stored, None)],
        )
        .await?;
        let answered = match answer {
            Some(a) => super::idempotency::complete_in(&mut tx, a).await?,
            None => false,
        };
        tx.commit().await?;
        Ok((Inserted::Created(stored), answered))
    }

    /// An insert was refused. If the booking carries a request reference and a booking with
    /// that reference exists by now (a concurrent attempt of the same request committed
    /// first), that booking is the answer: a retry never creates a second booking and never
    /// conflicts with its own first attempt.
    async fn after_failed_insert(
        &self,
        booking: &Booking,
        e: PgError,
    ) -> Result<Inserted, PgError> {
        let may_be_own = e.code().as_deref() == Some(sqlstate::EXCLUSION_VIOLATION)
            || e.violates(sqlstate::UNIQUE_VIOLATION, "bookings_request_ref_key");
        if let (true, Some(r)) = (may_be_own, &booking.request_ref) {
            let mut conn = self.pool.acquire().await?;
            if let Some(existing) = find_by_request(&mut conn, booking.professional_id, r).await? {
                return Ok(Inserted::Existing(existing));
            }
        }
        Err(e)
    }

    async fn expire_due_tx(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Booking>, PgError> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: holds another transaction is changing right now (a payment
        // confirming one, another sweeper) are left to it.
        let changed = sqlx::query(sql::EXPIRE_DUE)
            .bind(self.clock.bind(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = changed
            .iter()
            .map(rows::booking)
            .collect::<Result<Vec<_>, _>>()?;
        expired.sort_by_key(|b| (b.hold_expires_at, b.id));
        let events: Vec<DomainEvent> = expired
            .iter()
            .map(|b| DomainEvent::new(EventKind::BookingExpired, b, None))
            .collect();
        outbox::record(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn list_bookings_once(&self, query: &BookingQuery) -> Result<Page<Booking>, PgError> {
        let limit = check_limit(query.limit)?;
        let mut qb = sql::list_bookings("", query, self.clock.bind(query.now), limit)?;
        let fetched = qb.build().fetch_all(&self.pool).await?;
        let mut items = fetched
            .iter()
            .map(rows::booking)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(Cursor::after_booking)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

impl PgStore {
    /// [`booking_core::store::RequestStore::insert_booking_answered`].
    pub(crate) async fn insert_booking_answered_impl(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: &RequestAnswer,
    ) -> Result<(Inserted, bool)> {
        retrying!(
            self.retry,
            self.insert_booking_once(booking, now, Some(answer))
        )
    }
}

#[async_trait]
impl BookingStore for PgStore {
    async fn insert_booking(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted> {
        retrying!(self.retry, self.insert_booking_once(booking, now, None)).map(|(i, _)| i)
    }

    async fn find_booking_by_request(
        &self,
        professional_id: ProfessionalId,
        request_ref: &str,
    ) -> Result<Option<Booking>> {
        retrying!(self.retry, async {
            let mut conn = self.pool.acquire().await?;
            find_by_request(&mut conn, professional_id, request_ref).await
        })
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<Booking>> {
        retrying!(self.retry, async {
            sqlx::query(SELECT_BOOKING)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::booking)
                .transpose()
        })
    }

    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        retrying!(self.retry, self.transition_once(id, transition, now))
    }

    async fn transition_booking_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        retrying!(self.retry, self.transition_from(current, transition, now))
    }

    async fn reschedule_booking_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        retrying!(
            self.retry,
            self.reschedule_from(current, range, blocked, now)
        )
    }

    async fn reschedule_booking(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        retrying!(self.retry, self.reschedule_once(id, range, blocked, now))
    }

    async fn list_bookings(&self, query: &BookingQuery) -> Result<Page<Booking>> {
        retrying!(self.retry, self.list_bookings_once(query))
    }

    async fn blocked_ranges(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TimeRange>> {
        retrying!(self.retry, async {
            let ranges: Vec<sqlx::postgres::types::PgRange<DateTime<Utc>>> =
                sqlx::query_scalar(sql::BLOCKED_RANGES)
                    .bind(professional_id.as_uuid())
                    .bind(pg_range(&window))
                    .bind(self.clock.bind(now))
                    .fetch_all(&self.pool)
                    .await?;
            ranges
                .into_iter()
                .map(rows::time_range)
                .collect::<Result<Vec<_>, PgError>>()
        })
    }

    async fn expire_due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        retrying!(self.retry, self.expire_due_tx(now, limit))
    }
}
