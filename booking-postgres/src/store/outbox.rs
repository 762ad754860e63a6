//! The outbox: domain events written in the transaction of their change, read in
//! recording order.
//!
//! Gap-free reading: `seq` values are handed out at insert time but become visible at
//! commit, so a reader could see seq 7 committed while seq 6 is still in flight and skip 6
//! for good. Writers therefore take a *shared* transaction-scoped advisory lock before they
//! take a seq (in the same statement), and a reader takes it *exclusively* before it reads:
//! at that point every writer that holds a seq has committed or rolled back. Writers never
//! wait for each other; only a reader briefly waits for (and holds back) writers.

use async_trait::async_trait;
use booking_core::domain::EventId;
use booking_core::events::DomainEvent;
use booking_core::store::OutboxStore;
use booking_core::{Error, Result};
use sqlx::PgConnection;
use sqlx::Row;
use sqlx::types::Json;

use super::PgStore;
use crate::error::{PgError, retrying};

/// The advisory lock key of the outbox ("bkoutbox").
pub(crate) const OUTBOX_LOCK: i64 = 0x626b_6f75_7462_6f78;

/// [`record`] of one event: `$1` [`OUTBOX_LOCK`], `$2` id, `$3` kind, `$4` booking,
/// `$5` professional, `$6` occurred at, `$7` the event as JSON.
pub(crate) const RECORD_ONE: &str = "WITH outbox_lock AS (SELECT pg_advisory_xact_lock_shared($1)) \
     INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
     SELECT $2, $3, $4, $5, $6, $7 FROM outbox_lock";

/// Records `events` in order, in the caller's transaction.
pub(super) async fn record(conn: &mut PgConnection, events: &[DomainEvent]) -> Result<(), PgError> {
    match events {
        [] => Ok(()),
        [event] => {
            sqlx::query(RECORD_ONE)
                .bind(OUTBOX_LOCK)
                .bind(event.id.as_uuid())
                .bind(event.kind.as_str())
                .bind(event.booking_id.as_uuid())
                .bind(event.professional_id.as_uuid())
                .bind(event.occurred_at)
                .bind(Json(event))
                .execute(conn)
                .await?;
            Ok(())
        }
        many => {
            let mut ids = Vec::with_capacity(many.len());
            let mut kinds = Vec::with_capacity(many.len());
            let mut bookings = Vec::with_capacity(many.len());
            let mut professionals = Vec::with_capacity(many.len());
            let mut occurred = Vec::with_capacity(many.len());
            let mut payloads = Vec::with_capacity(many.len());
            for e in many {
                ids.push(e.id.as_uuid());
                kinds.push(e.kind.as_str());
                bookings.push(e.booking_id.as_uuid());
                professionals.push(e.professional_id.as_uuid());
                occurred.push(e.occurred_at);
                payloads.push(serde_json::to_string(e).map_err(PgError::corrupt)?);
            }
            sqlx::query(
                "WITH outbox_lock AS (SELECT pg_advisory_xact_lock_shared($1)) \
                 INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
                 SELECT e.id, e.kind, e.booking_id, e.professional_id, e.occurred_at, e.payload::jsonb \
                 FROM outbox_lock, \
                      UNNEST($2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::text[]) \
                      WITH ORDINALITY AS e(id, kind, booking_id, professional_id, occurred_at, payload, n) \
                 ORDER BY e.n",
            )
            .bind(OUTBOX_LOCK)
            .bind(ids)
            .bind(kinds)
            .bind(bookings)
            .bind(professionals)
            .bind(occurred)
            .bind(payloads)
            .execute(conn)
            .await?;
            Ok(())
        }
    }
}

impl PgStore {
    async fn events_after_tx(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<DomainEvent>, PgError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = match after {
            None => {
                sqlx::query("SELECT payload FROM domain_events ORDER BY seq LIMIT $1")
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            }
            Some(after) => {
                let position: Option<i64> =
                    sqlx::query_scalar("SELECT seq FROM domain_events WHERE id = $1")
                        .bind(after.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(position) = position else {
                    return Err(Error::invalid("after", "is not the id of a recorded event").into());
                };
                sqlx::query(
                    "SELECT payload FROM domain_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(position)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let Json(event): Json<DomainEvent> = row.try_get("payload")?;
                Ok(event)
            })
            .collect()
    }
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        retrying!(self.retry, self.events_after_tx(after, limit))
    }
}
