//! The statements of the booking operations: their SQL, and the macros that write the
//! parts they share. Each constant documents its parameters; the code that binds them is
//! in the parent module.

use booking_core::Booking;
use booking_core::store::{BookingOwner, BookingQuery, RequestAnswer};
use booking_core::{BookingStatus, Error};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{booking_columns, payment_columns, pg_range};

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
pub(crate) use professional_lock;

/// The store's clock in SQL: `COALESCE($n, now())`, with `$n` bound by
/// [`PgClock::bind`](crate::PgClock): the caller's `now`, or `NULL` for the database's time
/// (`now()`: the transaction's start, fixed for all its statements). One statement text
/// serves both modes.
macro_rules! clock_now {
    ($param:literal) => {
        concat!("COALESCE(", $param, "::timestamptz, now())")
    };
}
pub(crate) use clock_now;

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
/// as [`Booking::effective_status`](booking_core::Booking::effective_status) decides it.
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
pub(crate) use answer_cte;

/// `insert_booking`'s one statement (see `PgStore::insert_booking_fast`): `$1`..`$13`
/// the booking's columns in the order of the `INSERT`, `$14` now (`NULL`: the database's
/// clock, which then also stamps `created_at`, `updated_at`, shifts `hold_expires_at` by
/// the same amount and patches the event to match, unless an answer is stored with the
/// booking: the engine rendered it from the booking as given, and a replay must show what
/// the first response showed), `$15` event id, `$16` event kind, `$17` occurred at, `$18`
/// payload; `$19`..`$24` the idempotent request's answer stored with the booking (scope,
/// key, lease, status, headers, body; all `NULL` for none); `$25`..`$31` the booking's
/// payment columns
/// ([`rows::bind_payment`](crate::rows::bind_payment)). Returns the request's earlier booking
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

/// [`lock_booking`]: `$1` the booking's id. Also reads the database's time (`now()`: the
/// transaction's start, the same for all its statements).
pub(crate) const LOCK_BOOKING: &str = concat!(
    "SELECT ",
    booking_columns!(),
    ", now() AS db_now FROM bookings WHERE id = $1 FOR UPDATE"
);

/// `release_expired_holds`: `$1` professional, `$2` now (`NULL`: the database's), `$3`
/// the blocked range to clear, `$4` the booking about to be written (never released).
/// Locks the holds in id order, so two releasing transactions cannot deadlock.
pub(crate) const RELEASE_EXPIRED_HOLDS: &str = concat!(
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
);

/// Takes the professional's insert lock ([`professional_lock`]): `$1` the professional.
pub(crate) const LOCK_PROFESSIONAL: &str = concat!("SELECT ", professional_lock!("$1"));

/// The insert of `PgStore::insert_booking_tx`, under the professional's
/// lock after holds that ran out were released: `$1`..`$13` the booking's columns, `$14`..`$20`
/// its payment columns, `$21` the restamp instant (`NULL`: the database's clock stamps the row).
pub(crate) const INSERT_LOCKED: &str = concat!(
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
);

/// A planned status change under the row lock: `$1` professional, `$2` id, `$3` status,
/// `$4` hold expiry, `$5` updated at.
pub(crate) const TRANSITION_LOCKED: &str = concat!(
    "UPDATE bookings SET status = $3, hold_expires_at = $4, updated_at = $5 \
         WHERE professional_id = $1 AND id = $2 RETURNING ",
    booking_columns!()
);

/// A planned move under the row lock: `$1` professional, `$2` id, `$3` start, `$4` end,
/// `$5` blocked range, `$6` updated at. The exclusion constraint decides conflicts; the
/// row's own old version never counts.
pub(crate) const RESCHEDULE_LOCKED: &str = concat!(
    "UPDATE bookings SET starts_at = $3, ends_at = $4, blocked_range = $5, updated_at = $6 \
         WHERE professional_id = $1 AND id = $2 RETURNING ",
    booking_columns!()
);

/// The sweep: `$1` now (`NULL`: the database's), `$2` the limit. SKIP LOCKED leaves holds
/// another transaction is changing (a payment, another sweeper) to it.
pub(crate) const EXPIRE_DUE: &str = concat!(
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
);

/// `blocked_ranges`: `$1` professional, `$2` window, `$3` now (`NULL`: the database's).
pub(crate) const BLOCKED_RANGES: &str = "SELECT blocked_range FROM bookings \
    WHERE professional_id = $1 AND blocked_range && $2 \
    AND status IN ('pending_payment', 'confirmed') \
    AND (status = 'confirmed' \
    OR hold_expires_at > COALESCE($3::timestamptz, now())) \
    ORDER BY lower(blocked_range)";

/// The start of `list_bookings`' query; filters, order and limit are appended.
pub(crate) const LIST_BOOKINGS: &str =
    concat!("SELECT ", booking_columns!(), " FROM bookings WHERE TRUE");

/// `list_bookings`' query for `query`: `prefix` (`""`, or `"EXPLAIN "` for a test of its
/// plan), [`LIST_BOOKINGS`] with its filters, the keyset condition, the order and
/// `limit + 1` rows (to tell whether a next page exists). `now` is the store's clock
/// (`None`: the database's).
pub(crate) fn list_bookings(
    prefix: &str,
    query: &BookingQuery,
    now: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<QueryBuilder<Postgres>, Error> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(prefix);
    qb.push(LIST_BOOKINGS);
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
    // The effective status: a hold that ran out by `now` (the store's clock, `None`
    // for the database's) counts as expired.
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
        .push_bind(super::super::fetch_limit(limit));
    Ok(qb)
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1..$13` to a booking's columns in table order (id, professional_id, client_id,
/// starts_at, ends_at, blocked_range, status, price_cents, currency, hold_expires_at,
/// request_ref, created_at, updated_at), as both insert statements expect.
pub(super) fn bind_booking<'q>(query: PgQuery<'q>, booking: &'q Booking) -> PgQuery<'q> {
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

/// Binds an optional request answer as `$n..$n+5` (scope, key, lease, status, headers,
/// body), all `NULL` for none.
pub(crate) fn bind_answer<'q>(
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
