//! Bookings: inserts, transitions, reschedules, lists and the expiry sweep.

use async_trait::async_trait;
use booking_core::domain::{Booking, BookingId, ProfessionalId, TimeRange, Transition};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::store::{
    BookingOwner, BookingQuery, BookingStore, Cursor, Inserted, Page, RequestAnswer, check_limit,
};
use booking_core::{BookingStatus, Entity, Error, Result};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::{PgStore, fetch_limit, outbox};
use crate::config::PgClock;
use crate::error::{PgError, retrying, sqlstate};
use crate::rows::{self, booking_columns, payment_columns, pg_range};

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1..$13` to a booking's columns in table order (id, professional_id, client_id,
/// starts_at, ends_at, blocked_range, status, price_cents, currency, hold_expires_at,
/// request_ref, created_at, updated_at), as both insert statements expect.
fn bind_booking<'q>(query: PgQuery<'q>, booking: &'q Booking) -> PgQuery<'q> {
    query
        .bind(booking.id.as_uuid())
        .bind(booking.professional_id.as_uuid())
        .bind(booking.client_id.as_uuid())
        .bind(booking.range.start())
        .bind(booking.range.end())
        .bind(pg_range(&booking.blocked))
        .bind(booking.status.as_str())
        .bind(booking.price.amount_cents)
        .bind(booking.price.currency.as_str())
        .bind(booking.hold_expires_at)
        .bind(booking.request_ref.as_deref())
        .bind(booking.created_at)
        .bind(booking.updated_at)
}

/// The first key of the transaction-scoped advisory lock (two-key form, its own key space)
/// that inserts take on their professional (`hashtext` of the id is the second key) before
/// they write: inserts of one professional queue instead of both writing a row and then
/// waiting for each other in the exclusion check (a deadlock PostgreSQL breaks only after
/// `deadlock_timeout`). The constraint still decides; the lock only orders the writers.
macro_rules! professional_lock {
    ($id:literal) => {
        concat!(
            "pg_advisory_xact_lock(1651208306, hashtext(",
            $id,
            "::text))"
        )
    };
}
pub(super) use professional_lock;

/// The store's clock in SQL: `COALESCE($n, now())`, with `$n` bound by
/// [`PgClock::bind`](crate::PgClock): the caller's `now`, or `NULL` for the database's time
/// (`now()`: the transaction's start, fixed for all its statements). One statement text
/// serves both modes.
macro_rules! clock_now {
    ($param:literal) => {
        concat!("COALESCE(", $param, "::timestamptz, now())")
    };
}
pub(super) use clock_now;

/// An instant the engine computed from its clock, moved onto the database's clock when
/// the SQL condition `$restamp` holds: `$at + (now() - $base)` (so `hold_expires_at` keeps its length from
/// `created_at`); `$at` unchanged otherwise. Computed on UTC timestamps without zone, so
/// the whole days of a long shift are 24 hours whatever the session's time zone.
macro_rules! on_clock {
    ($at:literal, $base:literal, $restamp:literal) => {
        concat!(
            "CASE WHEN ",
            $restamp,
            " THEN ((",
            $at,
            "::timestamptz AT TIME ZONE 'UTC') + ((now() AT TIME ZONE 'UTC') - (",
            $base,
            "::timestamptz AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC' ELSE ",
            $at,
            "::timestamptz END"
        )
    };
}

/// An event payload (`$payload`, built by the engine before the statement) whose instants
/// are replaced by the stored row's (`$row`) when the SQL condition `$restamp` holds (the
/// database's clock stamps the row): `occurred_at` and the booking's `created_at`, `updated_at`, `hold_expires_at`.
/// Unchanged otherwise.
macro_rules! payload_on_clock {
    ($payload:literal, $row:literal, $restamp:literal) => {
        concat!(
            "CASE WHEN ",
            $restamp,
            " THEN \
                 jsonb_set(jsonb_set(jsonb_set(jsonb_set(",
            $payload,
            "::jsonb, \
                 '{occurred_at}', to_jsonb(",
            $row,
            ".updated_at)), '{booking,created_at}', to_jsonb(",
            $row,
            ".created_at)), '{booking,updated_at}', to_jsonb(",
            $row,
            ".updated_at)), '{booking,hold_expires_at}', \
                 COALESCE(to_jsonb(",
            $row,
            ".hold_expires_at), 'null'::jsonb)) \
             ELSE ",
            $payload,
            "::jsonb END"
        )
    };
}

/// When an event happened: the stored row's `updated_at` when the SQL condition
/// `$restamp` holds (the database's clock stamps the row), `$at` otherwise.
macro_rules! occurred_on_clock {
    ($at:literal, $row:literal, $restamp:literal) => {
        concat!(
            "CASE WHEN ",
            $restamp,
            " THEN ",
            $row,
            ".updated_at ELSE ",
            $at,
            "::timestamptz END"
        )
    };
}

/// The effective status of a `bookings` row at `$at` (a hold that ran out is `expired`),
/// as [`Booking::effective_status`] decides it.
macro_rules! effective_status {
    ($($at:tt)+) => {
        concat!(
            "CASE WHEN status = 'pending_payment' \
                 AND (hold_expires_at IS NULL OR hold_expires_at <= ",
            $($at)+,
            ") THEN 'expired' ELSE status END"
        )
    };
}

/// The CTE `answered` of a one-statement change that stores an idempotent request's answer
/// with it: completes the record of the request (scope, key, lease, status, headers, body:
/// the parameters named, bound by [`bind_answer`]; scope `NULL` for
/// none) for each row of `$from`, while the lease still owns it. Returns a row if it did.
macro_rules! answer_cte {
    ($from:literal, $scope:literal, $key:literal, $lease:literal, $status:literal,
     $headers:literal, $body:literal) => {
        concat!(
            "answered AS ( \
                 UPDATE idempotency_keys \
                 SET lease_id = NULL, locked_until = NULL, response_status = ",
            $status,
            "::integer, response_headers = ",
            $headers,
            "::jsonb, response_body = ",
            $body,
            "::bytea FROM ",
            $from,
            " WHERE ",
            $scope,
            "::text IS NOT NULL AND scope = ",
            $scope,
            "::text AND key = ",
            $key,
            "::text AND lease_id = ",
            $lease,
            "::uuid RETURNING 1)"
        )
    };
}
pub(super) use answer_cte;

/// `insert_booking`'s one statement (see [`PgStore::insert_booking_fast`]): `$1`..`$13`
/// the booking's columns in the order of the `INSERT`, `$14` now (`NULL`: the database's
/// clock, which then also stamps `created_at`, `updated_at`, shifts `hold_expires_at` by
/// the same amount and patches the event to match, unless an answer is stored with the
/// booking: the engine rendered it from the booking as given, and a replay must show what
/// the first response showed), `$15` event id, `$16` event kind, `$17` occurred at, `$18`
/// payload; `$19`..`$24` the idempotent request's answer stored with the booking (scope,
/// key, lease, status, headers, body; all `NULL` for none); `$25`..`$31` the booking's
/// payment columns
/// ([`rows::bind_payment`]). Returns the request's earlier booking
/// (`outcome = 'existing'`), the inserted one (`'inserted'`, with `answered` telling whether
/// the lease still owned the key's record), or no row when holds that ran out must be
/// released first.
pub(crate) const INSERT_FAST: &str = concat!(
    "WITH existing AS ( \
         SELECT ",
    booking_columns!(),
    " FROM bookings \
         WHERE $11::text IS NOT NULL AND professional_id = $2 AND request_ref = $11), \
     due AS ( \
         SELECT 1 FROM bookings \
         WHERE professional_id = $2 AND status = 'pending_payment' \
           AND (hold_expires_at <= ",
    clock_now!("$14"),
    " OR hold_expires_at IS NULL) \
           AND blocked_range && $6 AND id <> $1 \
         LIMIT 1), \
     professional_lock AS (SELECT ",
    professional_lock!("$2"),
    "), \
     inserted AS ( \
         INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
             blocked_range, status, price_cents, currency, hold_expires_at, \
             request_ref, created_at, updated_at, ",
    payment_columns!(),
    ") \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, ",
    on_clock!(
        "$10",
        "$12",
        "$14::timestamptz IS NULL AND $19::text IS NULL"
    ),
    ", $11, ",
    on_clock!(
        "$12",
        "$12",
        "$14::timestamptz IS NULL AND $19::text IS NULL"
    ),
    ", ",
    on_clock!(
        "$13",
        "$12",
        "$14::timestamptz IS NULL AND $19::text IS NULL"
    ),
    ", \
             $25, $26, $27, $28, $29, $30, $31 \
         FROM professional_lock \
         WHERE NOT EXISTS (SELECT 1 FROM existing) AND NOT EXISTS (SELECT 1 FROM due) \
         RETURNING ",
    booking_columns!(),
    "), \
     recorded AS ( \
         INSERT INTO domain_events \
             (id, kind, booking_id, professional_id, occurred_at, payload) \
         SELECT $15, $16, inserted.id, inserted.professional_id, ",
    occurred_on_clock!(
        "$17",
        "inserted",
        "$14::timestamptz IS NULL AND $19::text IS NULL"
    ),
    ", ",
    payload_on_clock!(
        "$18",
        "inserted",
        "$14::timestamptz IS NULL AND $19::text IS NULL"
    ),
    " FROM inserted), \
     ",
    answer_cte!("inserted", "$19", "$20", "$21", "$22", "$23", "$24"),
    " \
     SELECT 'existing' AS outcome, FALSE AS answered, ",
    booking_columns!(),
    " FROM existing \
     UNION ALL SELECT 'inserted' AS outcome, EXISTS (SELECT 1 FROM answered) AS answered, ",
    booking_columns!(),
    " FROM inserted"
);

/// Binds an optional request answer as `$n..$n+5` (scope, key, lease, status, headers,
/// body), all `NULL` for none.
pub(super) fn bind_answer<'q>(
    query: PgQuery<'q>,
    answer: Option<&'q RequestAnswer>,
) -> PgQuery<'q> {
    query
        .bind(answer.map(|a| a.scope.as_str()))
        .bind(answer.map(|a| a.key.as_str()))
        .bind(answer.map(|a| a.lease.0))
        .bind(answer.map(|a| i32::from(a.response.status)))
        .bind(answer.map(|a| Json(&a.response.headers)))
        .bind(answer.map(|a| a.response.body.as_slice()))
}

/// The tail of a one-statement change whose CTE `updated` returns the changed booking:
/// records its event (event id, kind, occurred at, payload: the parameters
/// named; instants patched from the row when the SQL condition `$restamp` holds, see
/// [`payload_on_clock`])
/// and returns the booking's columns.
macro_rules! record_updated {
    ($id:literal, $kind:literal, $at:literal, $payload:literal, $restamp:literal) => {
        concat!(
            "recorded AS ( \
                 INSERT INTO domain_events \
                     (id, kind, booking_id, professional_id, occurred_at, payload) \
                 SELECT ",
            $id,
            ", ",
            $kind,
            ", updated.id, updated.professional_id, ",
            occurred_on_clock!($at, "updated", $restamp),
            ", ",
            payload_on_clock!($payload, "updated", $restamp),
            " FROM updated) \
             SELECT ",
            booking_columns!(),
            " FROM updated"
        )
    };
}

/// A status change as one statement, if the row is still exactly as read and its
/// effective status is still the one planned from: `$1` professional, `$2` id, `$3` new
/// status, `$4` new hold expiry, `$5` updated at (the store's clock: `NULL` for the
/// database's); the row as read: `$6` status, `$7` updated at, `$8` start, `$9` end, `$10`
/// hold expiry; `$11` event id, `$12` kind, `$13` occurred at, `$14` payload; `$15` the
/// effective status the plan was made from. Returns the updated row, or
/// none when the row changed since it was read or the hold's expiry reads differently on
/// the store's clock.
pub(crate) const TRANSITION_FAST: &str = concat!(
    "WITH updated AS ( \
         UPDATE bookings SET status = $3, hold_expires_at = $4, updated_at = ",
    clock_now!("$5"),
    " \
         WHERE professional_id = $1 AND id = $2 AND status = $6 AND updated_at = $7 \
           AND starts_at = $8 AND ends_at = $9 AND hold_expires_at IS NOT DISTINCT FROM $10 \
           AND ",
    effective_status!(clock_now!("$5")),
    " = $15 \
         RETURNING ",
    booking_columns!(),
    "), ",
    record_updated!("$11", "$12", "$13", "$14", "$5::timestamptz IS NULL")
);

/// A reschedule as one statement, if the row is still exactly as read, still active and no
/// hold that ran out is in the way: `$1` professional, `$2` id, `$3` new start, `$4` new
/// end, `$5` new blocked range, `$6` updated at; the row as read: `$7` status, `$8` updated
/// at, `$9` start, `$10` end, `$11` hold expiry; `$12` now (`$6` and `$12` are `NULL` on
/// the database's clock); `$13` event id, `$14` kind, `$15` occurred at, `$16` payload. Returns the updated row, or none when the
/// row changed or holds that ran out must be released first. The exclusion constraint
/// decides conflicts with other bookings (the row's own old version never counts).
pub(crate) const RESCHEDULE_FAST: &str = concat!(
    "WITH due AS ( \
         SELECT 1 FROM bookings \
         WHERE professional_id = $1 AND status = 'pending_payment' \
           AND (hold_expires_at <= ",
    clock_now!("$12"),
    " OR hold_expires_at IS NULL) \
           AND blocked_range && $5 AND id <> $2 \
         LIMIT 1), \
     updated AS ( \
         UPDATE bookings SET starts_at = $3, ends_at = $4, blocked_range = $5, updated_at = ",
    clock_now!("$6"),
    " \
         WHERE professional_id = $1 AND id = $2 AND status = $7 AND updated_at = $8 \
           AND starts_at = $9 AND ends_at = $10 AND hold_expires_at IS NOT DISTINCT FROM $11 \
           AND (status = 'confirmed' OR hold_expires_at > ",
    clock_now!("$12"),
    ") AND NOT EXISTS (SELECT 1 FROM due) \
         RETURNING ",
    booking_columns!(),
    "), ",
    record_updated!("$13", "$14", "$15", "$16", "$12::timestamptz IS NULL")
);

/// `get_booking`: `$1` the id. Also reads the database's time (`db_now`), for the
/// decisions made after the read.
pub(crate) const SELECT_BOOKING: &str = concat!(
    "SELECT ",
    booking_columns!(),
    ", now() AS db_now FROM bookings WHERE id = $1"
);

/// `find_booking_by_request`: `$1` professional, `$2` request reference.
pub(crate) const FIND_BY_REQUEST: &str = concat!(
    "SELECT ",
    booking_columns!(),
    " FROM bookings WHERE professional_id = $1 AND request_ref = $2"
);

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
    let released = sqlx::query(concat!(
        "WITH due AS ( \
             SELECT id AS due_id FROM bookings \
             WHERE professional_id = $1 AND status = 'pending_payment' \
               AND (hold_expires_at <= ",
        clock_now!("$2"),
        " OR hold_expires_at IS NULL) \
               AND blocked_range && $3 AND id <> $4 \
             ORDER BY id FOR UPDATE) \
         UPDATE bookings SET status = 'expired', updated_at = ",
        clock_now!("$2"),
        " \
         FROM due WHERE professional_id = $1 AND id = due.due_id \
         RETURNING ",
        booking_columns!()
    ))
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

/// [`lock_booking`]: `$1` the booking's id. Also reads the database's time (`now()`: the
/// transaction's start, the same for all its statements).
pub(crate) const LOCK_BOOKING: &str = concat!(
    "SELECT ",
    booking_columns!(),
    ", now() AS db_now FROM bookings WHERE id = $1 FOR UPDATE"
);

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
        sqlx::query(concat!("SELECT ", professional_lock!("$1")))
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
            bind_booking(
                sqlx::query(concat!(
                    "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
                         blocked_range, status, price_cents, currency, hold_expires_at, \
                         request_ref, created_at, updated_at, ",
                    payment_columns!(),
                    ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ",
                    on_clock!("$10", "$12", "$21::timestamptz IS NULL"),
                    ", $11, ",
                    on_clock!("$12", "$12", "$21::timestamptz IS NULL"),
                    ", ",
                    on_clock!("$13", "$12", "$21::timestamptz IS NULL"),
                    ", $14, $15, $16, $17, $18, $19, $20) \
                     RETURNING ",
                    booking_columns!()
                )),
                booking,
            ),
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

    /// A transition in two round trips when nothing else changes the booking meanwhile:
    /// read it, plan the change with the status machine, and write the change and its
    /// event in one statement that applies only if the row is still as read. Anything
    /// else (the plan needs a free slot, the plan is refused, the row changed, instants
    /// that are not whole microseconds) goes through [`PgStore::transition_tx`], which
    /// decides under the row lock.
    async fn transition_once(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let (current, db_now) = self.read_booking(id).await?;
        self.transition_from(&current, transition, self.clock.pick(now, db_now))
            .await
    }

    /// The booking as stored now ([`Error::NotFound`] if there is none), and the database's
    /// time read with it.
    async fn read_booking(&self, id: BookingId) -> Result<(Booking, DateTime<Utc>), PgError> {
        let row = sqlx::query(SELECT_BOOKING)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| PgError::Domain(Error::NotFound(Entity::Booking)))?;
        Ok((rows::booking(&row)?, row.try_get("db_now")?))
    }

    /// [`PgStore::transition_once`] from a booking already read: one statement when the row
    /// is still as read. On the database's clock the plan is made at `now` (the caller's,
    /// or the database's time read with `current`), and the statement applies only if the
    /// booking's effective status at the database's time is the one planned from; otherwise
    /// [`PgStore::transition_tx`] decides again on the database's time.
    async fn transition_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let id = current.id;
        let plan = match current.plan(transition, now) {
            Ok(plan) if !plan.requires_free_slot && is_microsecond_exact(&plan.booking) => plan,
            _ => return self.transition_tx(id, transition, now).await,
        };
        let event = DomainEvent::new(plan.event, &plan.booking, None);
        let next = &plan.booking;
        let row = sqlx::query(TRANSITION_FAST)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.status.as_str())
            .bind(next.hold_expires_at)
            .bind(self.clock.bind(next.updated_at))
            .bind(current.status.as_str())
            .bind(current.updated_at)
            .bind(current.range.start())
            .bind(current.range.end())
            .bind(current.hold_expires_at)
            .bind(event.id.as_uuid())
            .bind(event.kind.as_str())
            .bind(event.occurred_at)
            .bind(Json(&event))
            .bind(current.effective_status(now).as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => rows::booking(&row),
            // Changed since it was read: decide again under the row lock.
            None => self.transition_tx(id, transition, now).await,
        }
    }

    async fn transition_tx(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        let now = self.clock.pick(now, db_now);
        let plan = current.plan(transition, now)?;
        if plan.requires_free_slot {
            release_expired_holds(
                &mut tx,
                current.professional_id,
                &plan.booking.blocked,
                Some(now),
                id,
            )
            .await?;
        }
        let next = &plan.booking;
        let row = sqlx::query(concat!(
            "UPDATE bookings SET status = $3, hold_expires_at = $4, updated_at = $5 \
             WHERE professional_id = $1 AND id = $2 RETURNING ",
            booking_columns!()
        ))
        .bind(current.professional_id.as_uuid())
        .bind(id.as_uuid())
        .bind(next.status.as_str())
        .bind(next.hold_expires_at)
        .bind(next.updated_at)
        .fetch_one(&mut *tx)
        .await?;
        let updated = rows::booking(&row)?;
        outbox::record(&mut tx, &[DomainEvent::new(plan.event, &updated, None)]).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// A reschedule in two round trips when nothing is in the way: read the booking, plan
    /// the move, and write it with its event in one statement that applies only if the row
    /// is still as read and no hold that ran out overlaps the new range. Otherwise (or for
    /// a refused plan) [`PgStore::reschedule_tx`] decides under the row lock.
    async fn reschedule_once(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let (current, db_now) = self.read_booking(id).await?;
        self.reschedule_from(&current, range, blocked, self.clock.pick(now, db_now))
            .await
    }

    /// [`PgStore::reschedule_once`] from a booking already read.
    async fn reschedule_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let id = current.id;
        let plan = match current.plan_reschedule(range, blocked, now) {
            Ok(plan) if is_microsecond_exact(&plan.booking) => plan,
            _ => return self.reschedule_tx(id, range, blocked, now).await,
        };
        let event = DomainEvent::new(plan.event, &plan.booking, Some(current.range));
        let next = &plan.booking;
        let row = sqlx::query(RESCHEDULE_FAST)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.range.start())
            .bind(next.range.end())
            .bind(pg_range(&next.blocked))
            .bind(self.clock.bind(next.updated_at))
            .bind(current.status.as_str())
            .bind(current.updated_at)
            .bind(current.range.start())
            .bind(current.range.end())
            .bind(current.hold_expires_at)
            .bind(self.clock.bind(now))
            .bind(event.id.as_uuid())
            .bind(event.kind.as_str())
            .bind(event.occurred_at)
            .bind(Json(&event))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => rows::booking(&row),
            None => self.reschedule_tx(id, range, blocked, now).await,
        }
    }

    async fn reschedule_tx(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        let now = self.clock.pick(now, db_now);
        let plan = current.plan_reschedule(range, blocked, now)?;
        release_expired_holds(
            &mut tx,
            current.professional_id,
            &plan.booking.blocked,
            Some(now),
            id,
        )
        .await?;
        let next = &plan.booking;
        // The exclusion constraint compares the new blocked range with every other active
        // booking; the row's own old version is replaced, so it never counts.
        let row = sqlx::query(concat!(
            "UPDATE bookings SET starts_at = $3, ends_at = $4, blocked_range = $5, updated_at = $6 \
             WHERE professional_id = $1 AND id = $2 RETURNING ",
            booking_columns!()
        ))
        .bind(current.professional_id.as_uuid())
        .bind(id.as_uuid())
        .bind(next.range.start())
        .bind(next.range.end())
        .bind(pg_range(&next.blocked))
        .bind(next.updated_at)
        .fetch_one(&mut *tx)
        .await?;
        let updated = rows::booking(&row)?;
        outbox::record(
            &mut tx,
            &[DomainEvent::new(plan.event, &updated, Some(current.range))],
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn expire_due_tx(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Booking>, PgError> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: holds another transaction is changing right now (a payment
        // confirming one, another sweeper) are left to it.
        let changed = sqlx::query(concat!(
            "WITH due AS ( \
                 SELECT professional_id AS due_professional_id, id AS due_id FROM bookings \
                 WHERE status = 'pending_payment' \
                   AND (hold_expires_at <= ",
            clock_now!("$1"),
            " OR hold_expires_at IS NULL) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE bookings SET status = 'expired', updated_at = ",
            clock_now!("$1"),
            " \
             FROM due WHERE professional_id = due.due_professional_id AND id = due.due_id \
             RETURNING ",
            booking_columns!()
        ))
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
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE TRUE"
        ));
        match query.owner {
            BookingOwner::All => {}
            BookingOwner::Client(c) => {
                qb.push(" AND client_id = ").push_bind(c.as_uuid());
            }
            BookingOwner::Professional(p) => {
                qb.push(" AND professional_id = ").push_bind(p.as_uuid());
            }
        }
        if let Some(p) = query.professional_id {
            qb.push(" AND professional_id = ").push_bind(p.as_uuid());
        }
        // The effective status: a hold that ran out by `now` (the store's clock) counts as
        // expired.
        let now = self.clock.bind(query.now);
        match query.status {
            None => {}
            Some(BookingStatus::PendingPayment) => {
                qb.push(" AND status = 'pending_payment' AND hold_expires_at > COALESCE(")
                    .push_bind(now)
                    .push("::timestamptz, now())");
            }
            Some(BookingStatus::Expired) => {
                qb.push(
                    " AND (status = 'expired' OR (status = 'pending_payment' \
                     AND (hold_expires_at IS NULL OR hold_expires_at <= COALESCE(",
                )
                .push_bind(now)
                .push("::timestamptz, now()))))");
            }
            Some(s @ (BookingStatus::Confirmed | BookingStatus::Cancelled)) => {
                qb.push(" AND status = ").push_bind(s.as_str());
            }
        }
        if let Some(from) = query.from {
            qb.push(" AND starts_at >= ").push_bind(from);
        }
        if let Some(to) = query.to {
            qb.push(" AND starts_at < ").push_bind(to);
        }
        if let Some(after) = query.after {
            let start = DateTime::<Utc>::from_timestamp_micros(after.primary)
                .ok_or_else(|| Error::invalid("cursor", "is not a cursor returned by this list"))?;
            qb.push(" AND (starts_at, id) > (")
                .push_bind(start)
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        qb.push(" ORDER BY starts_at, id LIMIT ")
            .push_bind(fetch_limit(limit));
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
            let ranges: Vec<sqlx::postgres::types::PgRange<DateTime<Utc>>> = sqlx::query_scalar(
                "SELECT blocked_range FROM bookings \
                 WHERE professional_id = $1 AND blocked_range && $2 \
                   AND status IN ('pending_payment', 'confirmed') \
                   AND (status = 'confirmed' \
                        OR hold_expires_at > COALESCE($3::timestamptz, now())) \
                 ORDER BY lower(blocked_range)",
            )
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
