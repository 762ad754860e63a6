//! Outbound webhooks (`webhook_subscriptions`, `webhook_deliveries`, see their migration):
//! one statement per operation.
//!
//! The fan-out marks the events its lease holds and inserts their deliveries in one
//! statement (a data-modifying CTE), so marking and fanning out commit together: a stale
//! lease marks nothing and so creates nothing. Claims lock due deliveries with
//! `FOR UPDATE SKIP LOCKED`, like the inbox; settling matches on the lease.

use async_trait::async_trait;
use booking_core::events::DomainEvent;
use booking_core::idempotency::LeaseId;
use booking_core::store::{Cursor, FanOut, Page, SubscriptionStore, check_limit};
use booking_core::webhook::inbox::{clip_error, lease_end};
use booking_core::webhook::outbound::{
    AttemptOutcome, Delivery, DeliveryStatus, DueDelivery, Subscription,
};
use booking_core::{
    DeliveryId, Entity, Error, EventId, EventKind, ProfessionalId, Result, SubscriptionId,
};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::{PgStore, fetch_limit};
use crate::error::{PgError, retrying};

/// The delivery columns [`delivery`] reads, qualified by the table alias `d`.
macro_rules! delivery_columns {
    () => {
        "d.id, d.subscription_id, d.event_id, d.attempt, d.status, d.response_status, \
         d.last_error, d.next_attempt_at, d.first_attempt_at, d.delivered_at, d.created_at"
    };
}

/// `create_subscription`: `$1` id, `$2` url, `$3` event types, `$4` professional, `$5`
/// secret, `$6` created at.
const CREATE: &str = "INSERT INTO webhook_subscriptions \
         (id, url, event_types, professional_id, secret, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// `get_subscription`: `$1` id.
const GET: &str = "SELECT id, url, event_types, professional_id, secret, created_at \
     FROM webhook_subscriptions WHERE id = $1";

/// `list_subscriptions`: `$1` cursor instant (or NULL), `$2` cursor id, `$3` limit.
const LIST: &str = "SELECT id, url, event_types, professional_id, secret, created_at \
     FROM webhook_subscriptions \
     WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid)) \
     ORDER BY created_at, id LIMIT $3";

/// `delete_subscription`: `$1` id (its deliveries go by `ON DELETE CASCADE`).
const DELETE: &str = "DELETE FROM webhook_subscriptions WHERE id = $1";

/// A UUID v7 stamped with `$1` (random bits from `gen_random_uuid()`, version bits set).
macro_rules! uuid_v7_at_1 {
    () => {
        "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing \
           substring(int8send(floor(extract(epoch FROM $1::timestamptz) * 1000)::bigint) FROM 3) \
           FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
    };
}

/// `record_deliveries`: `$1` now, `$2` event ids, `$3` lease. Marks the events the lease
/// holds and creates one delivery per (marked event, matching subscription).
const FAN_OUT: &str = concat!(
    "WITH marked AS ( \
       UPDATE domain_events SET webhooks_marked_at = $1, webhooks_lease = NULL, \
              webhooks_lease_until = NULL \
       WHERE id = ANY($2) AND webhooks_lease = $3 AND webhooks_marked_at IS NULL \
       RETURNING id, kind, professional_id, payload), \
     created AS ( \
       INSERT INTO webhook_deliveries \
         (id, subscription_id, event_id, payload, status, attempt, next_attempt_at, created_at) \
       SELECT ",
    uuid_v7_at_1!(),
    ", s.id, m.id, m.payload, 'pending', 0, $1, $1 \
       FROM marked m JOIN webhook_subscriptions s \
         ON m.kind = ANY(s.event_types) \
        AND (s.professional_id IS NULL OR s.professional_id = m.professional_id) \
       ON CONFLICT (subscription_id, event_id) DO NOTHING \
       RETURNING 1) \
     SELECT (SELECT count(*) FROM marked) AS marked, (SELECT count(*) FROM created) AS created"
);

/// `claim_deliveries`: `$1` now, `$2` limit, `$3` lease, `$4` lease end.
const CLAIM: &str = concat!(
    "UPDATE webhook_deliveries AS d \
     SET lease_id = $3, next_attempt_at = $4, attempt = LEAST(d.attempt, 2147483646) + 1, \
         first_attempt_at = COALESCE(d.first_attempt_at, $1) \
     FROM (SELECT id, next_attempt_at FROM webhook_deliveries \
           WHERE status = 'pending' AND next_attempt_at <= $1 \
           ORDER BY next_attempt_at LIMIT $2 \
           FOR UPDATE SKIP LOCKED) AS due, webhook_subscriptions AS s \
     WHERE d.id = due.id AND s.id = d.subscription_id \
     RETURNING due.next_attempt_at AS due_at, d.payload, s.url, s.secret, ",
    delivery_columns!()
);

/// `settle_delivery`: `$1` id, `$2` lease, `$3` status, `$4` response status, `$5` error,
/// `$6` next attempt, `$7` delivered at.
const SETTLE: &str = "UPDATE webhook_deliveries \
     SET status = $3, response_status = $4, last_error = $5, next_attempt_at = $6, \
         delivered_at = $7, lease_id = NULL \
     WHERE id = $1 AND lease_id = $2 AND status = 'pending'";

/// `list_deliveries`: `$1` subscription, `$2` cursor instant (or NULL), `$3` cursor id,
/// `$4` limit.
const LIST_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries AS d \
     WHERE d.subscription_id = $1 \
       AND ($2::timestamptz IS NULL OR (d.created_at, d.id) > ($2, $3::uuid)) \
     ORDER BY d.created_at, d.id LIMIT $4"
);

/// Whether subscription `$1` exists.
const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = $1)";

/// `redeliver`: `$1` id, `$2` now.
const REDELIVER: &str = concat!(
    "UPDATE webhook_deliveries AS d \
     SET status = 'pending', next_attempt_at = $2, first_attempt_at = NULL, \
         delivered_at = NULL, lease_id = NULL \
     WHERE d.id = $1 RETURNING ",
    delivery_columns!()
);

/// A subscription row as the domain value.
fn subscription(row: &PgRow) -> Result<Subscription, PgError> {
    let names: Vec<String> = row.try_get("event_types")?;
    let event_types = names
        .iter()
        .map(|n| EventKind::parse(n).ok_or_else(|| PgError::corrupt(format!("event type {n:?}"))))
        .collect::<Result<Vec<_>, PgError>>()?;
    Ok(Subscription {
        id: SubscriptionId::from_uuid(row.try_get("id")?),
        url: row.try_get("url")?,
        event_types,
        professional_id: row
            .try_get::<Option<uuid::Uuid>, _>("professional_id")?
            .map(ProfessionalId::from_uuid),
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A delivery row as the domain value.
fn delivery(row: &PgRow) -> Result<Delivery, PgError> {
    let status: String = row.try_get("status")?;
    let attempt: i32 = row.try_get("attempt")?;
    let response_status: Option<i32> = row.try_get("response_status")?;
    Ok(Delivery {
        id: DeliveryId::from_uuid(row.try_get("id")?),
        subscription_id: SubscriptionId::from_uuid(row.try_get("subscription_id")?),
        event_id: EventId::from_uuid(row.try_get("event_id")?),
        attempt: u32::try_from(attempt)
            .map_err(|_| PgError::corrupt(format!("delivery attempt {attempt}")))?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| PgError::corrupt(format!("delivery status {status:?}")))?,
        response_status: response_status
            .map(|s| u16::try_from(s).map_err(|_| PgError::corrupt(format!("response status {s}"))))
            .transpose()?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        first_attempt_at: row.try_get("first_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The instant and id of a list cursor.
fn cursor_parts(after: Option<Cursor>) -> Result<(Option<DateTime<Utc>>, uuid::Uuid), PgError> {
    match after {
        None => Ok((None, uuid::Uuid::nil())),
        Some(c) => {
            let at = DateTime::<Utc>::from_timestamp_micros(c.primary).ok_or_else(|| {
                PgError::Domain(Error::invalid("cursor", "is not a cursor of this list"))
            })?;
            Ok((Some(at), c.id))
        }
    }
}

/// `items` fetched with one extra, cut to `limit`.
fn page<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next_cursor }
}

impl PgStore {
    async fn create_subscription_once(&self, s: &Subscription) -> Result<(), PgError> {
        let kinds: Vec<&str> = s.event_types.iter().map(EventKind::as_str).collect();
        sqlx::query(CREATE)
            .bind(s.id.as_uuid())
            .bind(&s.url)
            .bind(kinds)
            .bind(s.professional_id.map(|p| p.as_uuid()))
            .bind(&s.secret)
            .bind(s.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_subscription_once(
        &self,
        id: SubscriptionId,
    ) -> Result<Option<Subscription>, PgError> {
        sqlx::query(GET)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(subscription)
            .transpose()
    }

    async fn list_subscriptions_once(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>, PgError> {
        let (at, id) = cursor_parts(after)?;
        let rows = sqlx::query(LIST)
            .bind(at)
            .bind(id)
            .bind(fetch_limit(limit))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(subscription)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, Subscription::cursor))
    }

    async fn delete_subscription_once(&self, id: SubscriptionId) -> Result<(), PgError> {
        let done = sqlx::query(DELETE)
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(PgError::Domain(Error::NotFound(
                Entity::WebhookSubscription,
            )));
        }
        Ok(())
    }

    async fn record_deliveries_once(
        &self,
        lease: LeaseId,
        ids: &[uuid::Uuid],
        now: DateTime<Utc>,
    ) -> Result<FanOut, PgError> {
        let row = sqlx::query(FAN_OUT)
            .bind(now)
            .bind(ids)
            .bind(lease.0)
            .fetch_one(&self.pool)
            .await?;
        let marked: i64 = row.try_get("marked")?;
        let created: i64 = row.try_get("created")?;
        Ok(FanOut {
            events_marked: usize::try_from(marked).unwrap_or(0),
            deliveries_created: usize::try_from(created).unwrap_or(0),
        })
    }

    async fn claim_deliveries_once(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: LeaseId,
        until: DateTime<Utc>,
    ) -> Result<Vec<DueDelivery>, PgError> {
        let rows = sqlx::query(CLAIM)
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
                let Json(event): Json<DomainEvent> = row.try_get("payload")?;
                Ok((
                    due_at,
                    DueDelivery {
                        delivery: delivery(row)?,
                        lease,
                        url: row.try_get("url")?,
                        secret: row.try_get("secret")?,
                        event,
                    },
                ))
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        claimed.sort_by_key(|(due_at, d)| (*due_at, d.delivery.id));
        Ok(claimed.into_iter().map(|(_, d)| d).collect())
    }

    async fn settle_delivery_once(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, PgError> {
        let (status, response, error, next, delivered) = match outcome {
            AttemptOutcome::Delivered { response_status } => (
                DeliveryStatus::Delivered,
                Some(*response_status),
                None,
                None,
                Some(now),
            ),
            AttemptOutcome::Retry {
                at,
                response_status,
                error,
            } => (
                DeliveryStatus::Pending,
                *response_status,
                Some(clip_error(error)),
                Some(*at),
                None,
            ),
            AttemptOutcome::Failed {
                response_status,
                error,
            } => (
                DeliveryStatus::Failed,
                *response_status,
                Some(clip_error(error)),
                None,
                None,
            ),
        };
        let done = sqlx::query(SETTLE)
            .bind(id.as_uuid())
            .bind(lease.0)
            .bind(status.as_str())
            .bind(response.map(i32::from))
            .bind(error)
            .bind(next)
            .bind(delivered)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_deliveries_once(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>, PgError> {
        let (at, id) = cursor_parts(after)?;
        let rows = sqlx::query(LIST_DELIVERIES)
            .bind(subscription.as_uuid())
            .bind(at)
            .bind(id)
            .bind(fetch_limit(limit))
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            let exists: bool = sqlx::query_scalar(EXISTS)
                .bind(subscription.as_uuid())
                .fetch_one(&self.pool)
                .await?;
            if !exists {
                return Err(PgError::Domain(Error::NotFound(
                    Entity::WebhookSubscription,
                )));
            }
        }
        let items = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, Delivery::cursor))
    }

    async fn redeliver_once(
        &self,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery, PgError> {
        let row = sqlx::query(REDELIVER)
            .bind(id.as_uuid())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => delivery(&row),
            None => Err(PgError::Domain(Error::NotFound(Entity::WebhookDelivery))),
        }
    }
}

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()> {
        retrying!(self.retry, self.create_subscription_once(subscription))
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>> {
        retrying!(self.retry, self.get_subscription_once(id))
    }

    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>> {
        let limit = check_limit(limit)?;
        retrying!(self.retry, self.list_subscriptions_once(limit, after))
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()> {
        retrying!(self.retry, self.delete_subscription_once(id))
    }

    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut> {
        if events.is_empty() {
            return Ok(FanOut::default());
        }
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
        retrying!(self.retry, self.record_deliveries_once(lease, &ids, now))
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>> {
        let until = lease_end(now, lease)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let id = LeaseId::new_at(now);
        retrying!(
            self.retry,
            self.claim_deliveries_once(now, limit, id, until)
        )
    }

    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        retrying!(
            self.retry,
            self.settle_delivery_once(id, lease, outcome, now)
        )
    }

    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>> {
        let limit = check_limit(limit)?;
        retrying!(
            self.retry,
            self.list_deliveries_once(subscription, limit, after)
        )
    }

    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery> {
        retrying!(self.retry, self.redeliver_once(id, now))
    }
}
