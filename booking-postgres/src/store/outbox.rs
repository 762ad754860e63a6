//! The outbox: domain events written in the transaction of their change.
//!
//! Writers take no lock beyond the rows they change (there used to be a global advisory
//! lock every booking write shared, so that readers saw a gap-free prefix in `seq` order).
//! Consumers read through claims instead (see the migration `outbox_consumers`): a claim
//! takes unmarked events whatever their `seq`, so an event whose transaction commits after
//! a later `seq` was delivered is simply claimed in a later round, never skipped; and a
//! booking's next event is claimable only once its previous one is marked, which keeps
//! each booking's order. `events_after` is a plain read in `seq` order (for inspection and
//! tests): an event of a transaction still in flight may appear later below the cursor.

use async_trait::async_trait;
use booking_core::domain::EventId;
use booking_core::events::{ClaimedEvents, Consumer, DomainEvent};
use booking_core::idempotency::LeaseId;
use booking_core::store::OutboxStore;
use booking_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::Row;
use sqlx::types::Json;

use super::PgStore;
use crate::error::{PgError, retrying};

/// [`record`] of one event: `$1` id, `$2` kind, `$3` booking, `$4` professional, `$5`
/// occurred at, `$6` the event as JSON.
pub(crate) const RECORD_ONE: &str = "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// `events_after` from the start: `$1` limit.
pub(crate) const EVENTS_FIRST: &str = "SELECT payload FROM domain_events ORDER BY seq LIMIT $1";

/// `events_after` after the event at `seq` `$1`: `$2` limit.
pub(crate) const EVENTS_AFTER: &str =
    "SELECT payload FROM domain_events WHERE seq > $1 ORDER BY seq LIMIT $2";

/// Records `events` in order, in the caller's transaction.
pub(super) async fn record(conn: &mut PgConnection, events: &[DomainEvent]) -> Result<(), PgError> {
    match events {
        [] => Ok(()),
        [event] => {
            sqlx::query(RECORD_ONE)
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
                "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
                 SELECT e.id, e.kind, e.booking_id, e.professional_id, e.occurred_at, e.payload::jsonb \
                 FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[]) \
                      WITH ORDINALITY AS e(id, kind, booking_id, professional_id, occurred_at, payload, n) \
                 ORDER BY e.n",
            )
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
        let rows = match after {
            None => {
                sqlx::query(EVENTS_FIRST)
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
                sqlx::query(EVENTS_AFTER)
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

/// The claim of up to `$2` events for one consumer at `$1`, under lease `$3` until `$4`
/// (see the migration `outbox_consumers`). `{c}` is the consumer's column prefix.
macro_rules! claim_sql {
    ($c:literal) => {
        concat!(
            "WITH picked AS ( \
               SELECT d.professional_id, d.id FROM domain_events d \
               WHERE d.",
            $c,
            "_marked_at IS NULL \
                 AND (d.",
            $c,
            "_lease IS NULL OR d.",
            $c,
            "_lease_until <= $1) \
                 AND NOT EXISTS ( \
                   SELECT 1 FROM domain_events e \
                   WHERE e.booking_id = d.booking_id AND e.",
            $c,
            "_marked_at IS NULL \
                     AND e.seq < d.seq) \
               ORDER BY d.seq LIMIT $2 \
               FOR UPDATE OF d SKIP LOCKED) \
             UPDATE domain_events d SET ",
            $c,
            "_lease = $3, ",
            $c,
            "_lease_until = $4 \
             FROM picked WHERE d.professional_id = picked.professional_id AND d.id = picked.id \
             RETURNING d.seq, d.payload"
        )
    };
}

/// Marks events `$2` (ids) at `$1` for the lease `$3` that holds them.
macro_rules! mark_sql {
    ($c:literal) => {
        concat!(
            "UPDATE domain_events SET ",
            $c,
            "_marked_at = $1, ",
            $c,
            "_lease = NULL, ",
            $c,
            "_lease_until = NULL \
             WHERE id = ANY($2) AND ",
            $c,
            "_lease = $3 AND ",
            $c,
            "_marked_at IS NULL"
        )
    };
}

/// The SQL of `consumer`'s claim and mark.
fn consumer_sql(consumer: Consumer) -> (&'static str, &'static str) {
    match consumer {
        Consumer::Nats => (claim_sql!("nats"), mark_sql!("nats")),
        Consumer::Webhooks => (claim_sql!("webhooks"), mark_sql!("webhooks")),
    }
}

/// The condition "every consumer of `consumers` marked it".
fn marked_by_all(consumers: &[Consumer]) -> &'static str {
    let nats = consumers.contains(&Consumer::Nats);
    let webhooks = consumers.contains(&Consumer::Webhooks);
    match (nats, webhooks) {
        (true, true) => "nats_marked_at IS NOT NULL AND webhooks_marked_at IS NOT NULL",
        (true, false) => "nats_marked_at IS NOT NULL",
        (false, true) => "webhooks_marked_at IS NOT NULL",
        (false, false) => "TRUE",
    }
}

impl PgStore {
    async fn claim_events_once(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: i64,
        lease: LeaseId,
        until: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, PgError> {
        let (claim, _) = consumer_sql(consumer);
        let rows = sqlx::query(claim)
            .bind(now)
            .bind(limit)
            .bind(lease.0)
            .bind(until)
            .fetch_all(&self.pool)
            .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                let Json(event): Json<DomainEvent> = row.try_get("payload")?;
                Ok((seq, event))
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        events.sort_by_key(|(seq, _)| *seq);
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    async fn mark_events_once(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[uuid::Uuid],
        now: DateTime<Utc>,
    ) -> Result<usize, PgError> {
        let (_, mark) = consumer_sql(consumer);
        let done = sqlx::query(mark)
            .bind(now)
            .bind(ids)
            .bind(lease.0)
            .execute(&self.pool)
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    /// One batch of `prune_events`: the events before `older_than` that every consumer in
    /// `consumers` marked, in `seq` order from just after `after` (`i64::MIN`: the
    /// beginning; see `super::purge`). Answers the rows deleted and the greatest `seq`
    /// among them.
    async fn prune_events_once(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: i64,
        after: i64,
    ) -> Result<(i64, Option<i64>), PgError> {
        let sql = format!(
            "WITH old AS ( \
               SELECT professional_id, id FROM domain_events \
               WHERE occurred_at < $1 AND {} AND seq > $3 ORDER BY seq LIMIT $2), \
             gone AS ( \
               DELETE FROM domain_events d USING old \
               WHERE d.professional_id = old.professional_id AND d.id = old.id \
               RETURNING d.seq) \
             SELECT count(*), max(seq) FROM gone",
            marked_by_all(consumers)
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(older_than)
            .bind(limit)
            .bind(after)
            .fetch_one(&self.pool)
            .await?)
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

    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents> {
        let until = booking_core::webhook::inbox::lease_end(now, lease)?;
        let id = LeaseId::new_at(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let events = if limit == 0 {
            Vec::new()
        } else {
            retrying!(
                self.retry,
                self.claim_events_once(consumer, now, limit, id, until)
            )?
        };
        Ok(ClaimedEvents { lease: id, events })
    }

    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.as_uuid()).collect();
        retrying!(
            self.retry,
            self.mark_events_once(consumer, lease, &ids, now)
        )
    }

    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if limit == 0 {
            return Ok(0);
        }
        self.purge
            .outbox
            .run(limit, |from, n| async move {
                retrying!(
                    self.retry,
                    self.prune_events_once(older_than, consumers, n, from.unwrap_or(i64::MIN))
                )
            })
            .await
    }
}
