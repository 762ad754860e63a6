//! The webhook inbox (`webhook_inbox`, see its migration): one statement per operation.
//!
//! `record` is an `INSERT .. ON CONFLICT DO NOTHING` on the primary key `(provider,
//! event_id)`. `claim_due` locks due rows with `FOR UPDATE SKIP LOCKED` (so claimers on
//! several servers never wait for, nor take, each other's rows) and, in the same statement,
//! gives them the claim's lease and moves them out of the due range until the lease ends.
//! A row a concurrent claimer committed meanwhile is re-checked under its lock and dropped,
//! since it is no longer due. The settling statements match on the lease, so a claim that
//! was superseded after its lease ran out changes nothing.

use async_trait::async_trait;
use booking_core::idempotency::LeaseId;
use booking_core::store::{Cursor, InboxStore, Page, check_limit};
use booking_core::webhook::inbox::{
    Claimed, InboxEvent, InboxKey, InboxState, NewInboxEvent, Recorded, clip_error, lease_end,
};
use booking_core::{Entity, Error, Result};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, fetch_limit};
use crate::error::{PgError, retrying};

/// The columns [`inbox_event`] reads, qualified by the table alias `i`.
macro_rules! inbox_columns {
    () => {
        "i.provider, i.event_id, i.event_type, i.payload, i.received_at, i.state, i.attempts, \
         i.next_attempt_at, i.last_error, i.processed_at, i.dead_lettered_at"
    };
}

/// An inbox row as the domain value.
fn inbox_event(row: &PgRow) -> Result<InboxEvent, PgError> {
    let key = InboxKey::new(
        row.try_get::<String, _>("provider")?,
        row.try_get::<String, _>("event_id")?,
    )
    .map_err(|e| PgError::corrupt(format!("inbox key: {e}")))?;
    let state: String = row.try_get("state")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(InboxEvent {
        key,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        received_at: row.try_get("received_at")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| PgError::corrupt(format!("inbox attempts {attempts}")))?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        state: InboxState::parse(&state)
            .ok_or_else(|| PgError::corrupt(format!("inbox state {state:?}")))?,
        last_error: row.try_get("last_error")?,
        processed_at: row.try_get("processed_at")?,
        dead_lettered_at: row.try_get("dead_lettered_at")?,
    })
}

/// `record`: `$1` provider, `$2` event id, `$3` list id, `$4` type, `$5` payload, `$6` now.
pub(crate) const RECORD: &str = "INSERT INTO webhook_inbox \
         (provider, event_id, list_id, event_type, payload, received_at, state, attempts, \
          next_attempt_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6) \
     ON CONFLICT (provider, event_id) DO NOTHING";

/// `claim_due`: `$1` now, `$2` limit, `$3` lease, `$4` lease end. Returns the claimed rows and
/// when each was due (`due_at`), for the order of the result.
pub(crate) const CLAIM_DUE: &str = concat!(
    "UPDATE webhook_inbox AS i \
     SET lease_id = $3, next_attempt_at = $4, attempts = LEAST(i.attempts, 2147483646) + 1 \
     FROM (SELECT provider, event_id, next_attempt_at FROM webhook_inbox \
           WHERE state = 'pending' AND next_attempt_at <= $1 \
           ORDER BY next_attempt_at LIMIT $2 \
           FOR UPDATE SKIP LOCKED) AS due \
     WHERE i.provider = due.provider AND i.event_id = due.event_id \
     RETURNING due.next_attempt_at AS due_at, ",
    inbox_columns!()
);

/// `mark_processed`: `$1` provider, `$2` event id, `$3` lease, `$4` now.
pub(crate) const MARK_PROCESSED: &str = "UPDATE webhook_inbox \
     SET state = 'processed', processed_at = $4, lease_id = NULL \
     WHERE provider = $1 AND event_id = $2 AND lease_id = $3 AND state = 'pending'";

/// `schedule_retry`: `$1` provider, `$2` event id, `$3` lease, `$4` at, `$5` error.
const SCHEDULE_RETRY: &str = "UPDATE webhook_inbox \
     SET next_attempt_at = $4, last_error = $5, lease_id = NULL \
     WHERE provider = $1 AND event_id = $2 AND lease_id = $3 AND state = 'pending'";

/// `dead_letter`: `$1` provider, `$2` event id, `$3` lease, `$4` error, `$5` now.
const DEAD_LETTER: &str = "UPDATE webhook_inbox \
     SET state = 'dead_lettered', dead_lettered_at = $5, last_error = $4, lease_id = NULL \
     WHERE provider = $1 AND event_id = $2 AND lease_id = $3 AND state = 'pending'";

/// `list_dead_letters`: `$1` cursor instant (or NULL), `$2` cursor list id, `$3` limit.
const LIST_DEAD_LETTERS: &str = concat!(
    "SELECT ",
    inbox_columns!(),
    " FROM webhook_inbox AS i \
     WHERE i.state = 'dead_lettered' \
       AND ($1::timestamptz IS NULL OR (i.dead_lettered_at, i.list_id) > ($1, $2::uuid)) \
     ORDER BY i.dead_lettered_at, i.list_id LIMIT $3"
);

/// `replay_dead_letter`: `$1` provider, `$2` event id, `$3` now.
const REPLAY: &str = concat!(
    "UPDATE webhook_inbox AS i \
     SET state = 'pending', dead_lettered_at = NULL, attempts = 0, next_attempt_at = $3 \
     WHERE i.provider = $1 AND i.event_id = $2 AND i.state = 'dead_lettered' \
     RETURNING ",
    inbox_columns!()
);

/// `prune_processed`: `$1` cutoff, `$2` limit, `$3` the `processed_at` where the previous
/// full batch stopped (`NULL`: the beginning; see `super::purge`). Answers the rows deleted
/// and the greatest `processed_at` among them. Rows locked by anyone else are left for the
/// next run.
const PRUNE: &str = "WITH old AS ( \
         SELECT provider, event_id FROM webhook_inbox \
         WHERE state = 'processed' AND processed_at < $1 \
           AND processed_at >= COALESCE($3, '-infinity'::timestamptz) \
         ORDER BY processed_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
     gone AS ( \
         DELETE FROM webhook_inbox AS i USING old \
         WHERE i.provider = old.provider AND i.event_id = old.event_id \
         RETURNING i.processed_at) \
     SELECT count(*), max(processed_at) FROM gone";

/// Runs a settling statement (already bound) and tells whether it matched the row.
async fn settled(
    pool: &sqlx::PgPool,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<bool, PgError> {
    Ok(query.execute(pool).await?.rows_affected() == 1)
}

#[async_trait]
impl InboxStore for PgStore {
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded> {
        retrying!(self.retry, async {
            let done = sqlx::query(RECORD)
                .bind(event.key.provider())
                .bind(event.key.event_id())
                .bind(event.key.list_id())
                .bind(event.event_type.as_str())
                .bind(event.payload.as_slice())
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(if done.rows_affected() == 1 {
                Recorded::New
            } else {
                Recorded::Duplicate
            })
        })
    }

    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>> {
        retrying!(self.retry, async {
            let row = sqlx::query(concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM webhook_inbox AS i WHERE i.provider = $1 AND i.event_id = $2"
            ))
            .bind(key.provider())
            .bind(key.event_id())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(inbox_event).transpose()
        })
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>> {
        let until = lease_end(now, lease)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = LeaseId::new_at(now);
        retrying!(self.retry, async {
            let rows = sqlx::query(CLAIM_DUE)
                .bind(now)
                .bind(limit)
                .bind(lease.0)
                .bind(until)
                .fetch_all(&self.pool)
                .await?;
            let mut claimed = rows
                .iter()
                .map(|row| {
                    let due_at: DateTime<Utc> = row.try_get("due_at")?;
                    Ok((due_at, inbox_event(row)?))
                })
                .collect::<Result<Vec<_>, PgError>>()?;
            // RETURNING has no order: earliest due first, as claimed.
            claimed.sort_by(|(a, x), (b, y)| (a, &x.key).cmp(&(b, &y.key)));
            Ok::<_, PgError>(
                claimed
                    .into_iter()
                    .map(|(_, event)| Claimed { event, lease })
                    .collect(),
            )
        })
    }

    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        retrying!(self.retry, async {
            let query = sqlx::query(MARK_PROCESSED)
                .bind(key.provider())
                .bind(key.event_id())
                .bind(lease.0)
                .bind(now);
            settled(&self.pool, query).await
        })
    }

    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let error = clip_error(error);
        retrying!(self.retry, async {
            let query = sqlx::query(SCHEDULE_RETRY)
                .bind(key.provider())
                .bind(key.event_id())
                .bind(lease.0)
                .bind(at)
                .bind(error.as_str());
            settled(&self.pool, query).await
        })
    }

    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let error = clip_error(error);
        retrying!(self.retry, async {
            let query = sqlx::query(DEAD_LETTER)
                .bind(key.provider())
                .bind(key.event_id())
                .bind(lease.0)
                .bind(error.as_str())
                .bind(now);
            settled(&self.pool, query).await
        })
    }

    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>> {
        let limit = check_limit(limit)?;
        let after = after
            .map(|c| {
                DateTime::<Utc>::from_timestamp_micros(c.primary)
                    .map(|at| (at, c.id))
                    .ok_or_else(|| {
                        Error::invalid("cursor", "is not a cursor returned by this list")
                    })
            })
            .transpose()?;
        retrying!(self.retry, async {
            let rows = sqlx::query(LIST_DEAD_LETTERS)
                .bind(after.map(|(at, _)| at))
                .bind(after.map(|(_, id)| id))
                .bind(fetch_limit(limit))
                .fetch_all(&self.pool)
                .await?;
            let mut items = rows
                .iter()
                .map(inbox_event)
                .collect::<Result<Vec<_>, PgError>>()?;
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().and_then(InboxEvent::dead_letter_cursor)
            } else {
                None
            };
            Ok::<_, PgError>(Page { items, next_cursor })
        })
    }

    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent> {
        retrying!(self.retry, async {
            let row = sqlx::query(REPLAY)
                .bind(key.provider())
                .bind(key.event_id())
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            match row {
                Some(row) => inbox_event(&row),
                None => Err(PgError::Domain(Error::NotFound(Entity::InboxEvent))),
            }
        })
    }

    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.purge_batch(&self.purge.inbox, PRUNE, older_than, limit)
            .await
    }
}
