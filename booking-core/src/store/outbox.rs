//! [`OutboxStore`]: the outbox of domain events and its claims.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::EventId;
use crate::error::Result;
use crate::events::{ClaimedEvents, Consumer, DomainEvent};
use crate::idempotency::LeaseId;

/// The outbox of domain events.
///
/// Consumers ([`Consumer`]) read it through claims: [`OutboxStore::claim_events`] hands a
/// claimer the next unmarked events, at most one per booking (the earliest unmarked one,
/// and only if no live claim holds it), so that per booking events leave in the order they
/// happened even when several claimers run at once; [`OutboxStore::mark_events`] marks
/// them delivered. A claim that is never marked (its claimer died) runs out and the events
/// are handed out again: delivery is at least once, and a consumer deduplicates by event
/// id (NATS JetStream's `Nats-Msg-Id` window, a webhook receiver's `Booking-Event-Id`).
/// Writers take no lock shared with other professionals' writes.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Events in recording order after `after` (exclusive), at most `limit`. Pruned events are
    /// gone; an `after` that names no stored event is
    /// [`Error::Invalid`](crate::Error::Invalid).
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>>;

    /// Claims up to `limit` events `consumer` has not marked, in recording order, each the
    /// earliest unmarked event of its booking and held by no live claim, for `lease` from
    /// `now`. The claim may be empty.
    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents>;

    /// Marks `ids` delivered to `consumer` at `now`, those of them that `lease` still holds
    /// (a claim that ran out and was handed to another claimer no longer does); returns
    /// how many it marked.
    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<usize>;

    /// Deletes up to `limit` events recorded before `older_than` that every consumer in
    /// `consumers` has marked; returns how many. Unmarked events are never pruned.
    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64>;
}
