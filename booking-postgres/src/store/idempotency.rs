//! Idempotency records: claimed with `INSERT .. ON CONFLICT DO NOTHING`, decided with
//! [`booking_core::idempotency::decide`], completed or abandoned only by the lease that owns
//! them.
//!
//! `begin` is one statement (one round trip, one implicit transaction) in the common cases:
//! it claims the key, or returns the committed record that holds it, and `decide` runs on
//! that record. Only when `decide` asks to *replace* a record (a lease that ran out, a record
//! past its expiry) or the holder committed after the statement's snapshot was taken does
//! `begin` fall back to a transaction that re-reads the record under a row lock and decides
//! again, so every write `decide` asks for is still made under that lock.

use async_trait::async_trait;
use booking_core::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, IdempotencyRecord, LeaseId,
    RecordState, Scope, StoredResponse, decide,
};
use booking_core::store::IdempotencyStore;
use booking_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::error::{PgError, retrying};
use crate::rows::{self, idempotency_columns};

/// `purge_expired`: `$1` now, `$2` the limit, `$3` the `expires_at` where the previous
/// full batch stopped (`NULL`: the beginning; see `super::purge`). Answers the rows deleted
/// and the greatest `expires_at` among them. SKIP LOCKED: a record a `begin` is re-claiming
/// right now is left alone.
pub(crate) const PURGE: &str = "WITH due AS ( \
         SELECT scope, key FROM idempotency_keys \
         WHERE expires_at <= $1 AND expires_at >= COALESCE($3, '-infinity'::timestamptz) \
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
     gone AS ( \
         DELETE FROM idempotency_keys AS k USING due \
         WHERE k.scope = due.scope AND k.key = due.key RETURNING k.expires_at) \
     SELECT count(*), max(expires_at) FROM gone";

/// How often `begin` retries when the row it conflicted with was deleted before it could
/// lock it (an abandon or a purge in between).
const CLAIM_ATTEMPTS: usize = 4;

/// The in-flight state of a record `decide` asked to store.
fn lease_of(record: &IdempotencyRecord) -> Result<(LeaseId, DateTime<Utc>), PgError> {
    match record.state {
        RecordState::InFlight {
            lease,
            locked_until,
        } => Ok((lease, locked_until)),
        RecordState::Completed(_) => Err(PgError::Domain(Error::Internal(
            "idempotency: a new record must be in flight".into(),
        ))),
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1..$7` to a record in flight: scope, key, fingerprint, lease, locked until,
/// created, expires (the parameter order every statement that writes one uses).
pub(crate) fn bind_in_flight<'q>(
    query: PgQuery<'q>,
    record: &'q IdempotencyRecord,
) -> Result<PgQuery<'q>, PgError> {
    let (lease, locked_until) = lease_of(record)?;
    Ok(query
        .bind(record.scope.as_str())
        .bind(record.key.as_str())
        .bind(record.fingerprint.0.as_slice())
        .bind(lease.0)
        .bind(locked_until)
        .bind(record.created_at)
        .bind(record.expires_at))
}

async fn try_claim(conn: &mut PgConnection, record: &IdempotencyRecord) -> Result<bool, PgError> {
    let done = bind_in_flight(
        sqlx::query(
            "INSERT INTO idempotency_keys \
             (scope, key, fingerprint, lease_id, locked_until, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (scope, key) DO NOTHING",
        ),
        record,
    )?
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the locked record with the one `decide` produced (a take-over after a lease ran
/// out, or a fresh start over an expired record).
async fn take_over(conn: &mut PgConnection, record: &IdempotencyRecord) -> Result<(), PgError> {
    bind_in_flight(
        sqlx::query(
            "UPDATE idempotency_keys SET fingerprint = $3, lease_id = $4, locked_until = $5, \
             response_status = NULL, response_headers = NULL, response_body = NULL, \
             created_at = $6, expires_at = $7 \
         WHERE scope = $1 AND key = $2",
        ),
        record,
    )?
    .execute(conn)
    .await?;
    Ok(())
}

/// `begin`'s one statement: claims `($1, $2)` for a record in flight (`$3` fingerprint,
/// `$4` lease, `$5` locked until, `$6` created, `$7` expires), or reads the record holding
/// it; see [`claim_or_read`].
///
/// The claim commits with `synchronous_commit = off` (for its own transaction only): it
/// does not wait for its WAL to reach the disk. That is safe because a claim only keeps
/// concurrent attempts of one request apart. Every durable effect of the attempt (the
/// booking, the stored answer) commits synchronously later and so flushes the WAL up to
/// and including the claim; a claim lost in a database crash before that had no effect
/// yet, and the retry simply claims the key again. It saves one disk flush per request.
pub(crate) const CLAIM_OR_READ: &str = concat!(
    claim_ctes!(),
    " SELECT TRUE AS claimed, ",
    no_record_columns!(),
    " FROM async_commit, claimed \
     UNION ALL \
     SELECT FALSE AS claimed, ",
    idempotency_columns!(),
    " FROM idempotency_keys \
     WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM claimed)"
);

/// The claim's CTEs, shared by every statement that claims a key: `claimed` (a row when
/// `($1, $2)` was free and is now claimed for a record in flight: `$3` fingerprint, `$4`
/// lease, `$5` locked until, `$6` created, `$7` expires) and `async_commit` (the claim's
/// transaction commits without waiting for its WAL flush; see [`CLAIM_OR_READ`]).
macro_rules! claim_ctes {
    () => {
        "WITH claimed AS ( \
             INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, lease_id, locked_until, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, key) DO NOTHING \
             RETURNING 1), \
         async_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
    };
}
pub(crate) use claim_ctes;

/// The record columns of a claim's result row when the key was claimed (all `NULL`, typed
/// like [`idempotency_columns`]).
macro_rules! no_record_columns {
    () => {
        "NULL::text AS scope, NULL::text AS key, NULL::bytea AS fingerprint, \
         NULL::uuid AS lease_id, NULL::timestamptz AS locked_until, \
         NULL::integer AS response_status, NULL::jsonb AS response_headers, \
         NULL::bytea AS response_body, NULL::timestamptz AS created_at, \
         NULL::timestamptz AS expires_at"
    };
}
pub(crate) use no_record_columns;

/// `complete`: `$1` scope, `$2` key, `$3` lease, `$4` status, `$5` headers, `$6` body.
pub(crate) const COMPLETE: &str = "UPDATE idempotency_keys \
     SET lease_id = NULL, locked_until = NULL, \
         response_status = $4, response_headers = $5, response_body = $6 \
     WHERE scope = $1 AND key = $2 AND lease_id = $3";

/// Stores `answer` in the caller's transaction (see [`COMPLETE`]); whether the lease still
/// owned the record.
pub(crate) async fn complete_in(
    conn: &mut PgConnection,
    answer: &booking_core::store::RequestAnswer,
) -> Result<bool, PgError> {
    let done = sqlx::query(COMPLETE)
        .bind(answer.scope.as_str())
        .bind(answer.key.as_str())
        .bind(answer.lease.0)
        .bind(i32::from(answer.response.status))
        .bind(Json(&answer.response.headers))
        .bind(answer.response.body.as_slice())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The decision and the record of a claim of a key nobody holds (what every claim
/// statement tries to insert).
pub(crate) fn fresh_claim(
    scope: &Scope,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
    now: DateTime<Utc>,
    policy: &IdempotencyPolicy,
) -> Result<(Decision, IdempotencyRecord), PgError> {
    match decide(None, scope, key, fingerprint, now, policy) {
        (started, Some(fresh)) => Ok((started, fresh)),
        (_, None) => Err(PgError::Domain(Error::Internal(
            "idempotency: Started without a record".into(),
        ))),
    }
}

/// What the one-statement claim found.
enum Claim {
    /// The key was free and is now ours.
    Claimed,
    /// The committed record holding the key (as of the statement's snapshot).
    Held(IdempotencyRecord),
    /// The key is held by a record committed after the statement's snapshot (or deleted
    /// meanwhile): the statement cannot see it.
    Unknown,
}

/// Claims the key of `record` in one statement, or returns the record that holds it.
///
/// The data-modifying CTE and the outer `SELECT` share one snapshot, so the `SELECT` never
/// sees the row the CTE inserted: exactly one branch yields a row, or none when the
/// conflicting row committed after the snapshot was taken ([`Claim::Unknown`]).
async fn claim_or_read(pool: &sqlx::PgPool, record: &IdempotencyRecord) -> Result<Claim, PgError> {
    let row = bind_in_flight(sqlx::query(CLAIM_OR_READ), record)?
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(Claim::Unknown);
    };
    if row.try_get::<bool, _>("claimed")? {
        Ok(Claim::Claimed)
    } else {
        Ok(Claim::Held(rows::idempotency_record(&row)?))
    }
}

impl PgStore {
    /// One statement in the common cases; see the module docs.
    async fn begin_once(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision, PgError> {
        let (started, fresh) = fresh_claim(scope, key, fingerprint, now, policy)?;
        match claim_or_read(&self.pool, &fresh).await? {
            Claim::Claimed => Ok(started),
            Claim::Held(existing) => {
                self.decide_held(&existing, scope, key, fingerprint, now, policy)
                    .await
            }
            Claim::Unknown => self.begin_tx(scope, key, fingerprint, now, policy).await,
        }
    }

    /// The decision over a committed record that holds the key, as a claim statement read
    /// it: replay, in flight and mismatch hold as read (nothing to write); a take-over is
    /// decided again under the row lock ([`PgStore::begin_tx`]).
    pub(crate) async fn decide_held(
        &self,
        existing: &IdempotencyRecord,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision, PgError> {
        match decide(Some(existing), scope, key, fingerprint, now, policy) {
            (decision, None) => Ok(decision),
            (_, Some(_)) => self.begin_tx(scope, key, fingerprint, now, policy).await,
        }
    }

    pub(crate) async fn begin_tx(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision, PgError> {
        let mut tx = self.pool.begin().await?;
        for _ in 0..CLAIM_ATTEMPTS {
            // Fast path: nobody used the key yet. A concurrent claim of the same key waits
            // here for ours to commit, then finds the row.
            let (started, fresh) = fresh_claim(scope, key, fingerprint, now, policy)?;
            if try_claim(&mut tx, &fresh).await? {
                tx.commit().await?;
                return Ok(started);
            }
            let existing = sqlx::query(concat!(
                "SELECT ",
                idempotency_columns!(),
                " FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE"
            ))
            .bind(scope.as_str())
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = existing else {
                continue; // deleted in between: claim again
            };
            let existing = rows::idempotency_record(&row)?;
            let (decision, replacement) =
                decide(Some(&existing), scope, key, fingerprint, now, policy);
            if let Some(record) = replacement {
                take_over(&mut tx, &record).await?;
            }
            tx.commit().await?;
            return Ok(decision);
        }
        Err(PgError::Domain(Error::Unavailable(
            "idempotency key kept changing; retry the request".into(),
        )))
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision> {
        retrying!(
            self.retry,
            self.begin_once(scope, key, fingerprint, now, policy)
        )
    }

    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        retrying!(self.retry, async {
            let done = sqlx::query(COMPLETE)
                .bind(scope.as_str())
                .bind(key.as_str())
                .bind(lease.0)
                .bind(i32::from(response.status))
                .bind(Json(&response.headers))
                .bind(response.body.as_slice())
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() == 1)
        })
    }

    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool> {
        retrying!(self.retry, async {
            let done = sqlx::query(
                // Release the lease rather than delete the record: the retry takes over at
                // once and keeps the record's created_at, hence the same request reference.
                "UPDATE idempotency_keys SET locked_until = created_at \
                 WHERE scope = $1 AND key = $2 AND lease_id = $3",
            )
            .bind(scope.as_str())
            .bind(key.as_str())
            .bind(lease.0)
            .execute(&self.pool)
            .await?;
            Ok::<_, PgError>(done.rows_affected() == 1)
        })
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.purge_batch(&self.purge.idempotency, PURGE, now, limit)
            .await
    }
}
