//! [`SubscriptionStore`]: outbound webhook subscriptions and their deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cursor, Page};
use crate::domain::{DeliveryId, SubscriptionId};
use crate::error::Result;
use crate::events::DomainEvent;
use crate::idempotency::LeaseId;
use crate::webhook::outbound::{AttemptOutcome, Delivery, DueDelivery, Subscription};

/// What [`SubscriptionStore::record_deliveries`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanOut {
    /// Events marked for [`Consumer::Webhooks`](crate::events::Consumer::Webhooks) (those the
    /// lease still held).
    pub events_marked: usize,
    /// Deliveries created for them (one per event and matching subscription).
    pub deliveries_created: usize,
}

/// Outbound webhooks: subscriptions and their deliveries (see
/// [`crate::webhook::outbound`]). Each method is one atomic step.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription ([`Error::AlreadyExists`](crate::Error::AlreadyExists) if its
    /// id is taken).
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()>;

    /// One subscription by id.
    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>>;

    /// A page of subscriptions in `(created_at, id)` order (`limit` 1..=100, see
    /// [`check_limit`](super::check_limit)), after `after` (exclusive).
    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>>;

    /// Deletes a subscription and its deliveries: no delivery is created for it afterwards, and
    /// an attempt in flight settles nothing. [`Error::NotFound`](crate::Error::NotFound) if
    /// there is none.
    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()>;

    /// The fan-out, exactly once: marks `events` (claimed for
    /// [`Consumer::Webhooks`](crate::events::Consumer::Webhooks) under `lease`) and, for each
    /// event the lease still held, creates one pending delivery due at `now` per subscription
    /// that [`Subscription::matches`] it, in the same step. An event the lease no longer holds
    /// (it ran out and was claimed again) is neither marked nor fanned out, so a stale claimer
    /// creates nothing.
    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut>;

    /// Claims up to `limit` pending deliveries due at `now`, earliest first, under one fresh
    /// lease until `now + lease`: each counts one more attempt, starts its retry window
    /// (`first_attempt_at`) if not started, and is not due again until the lease runs out, so
    /// no other claimer gets it meanwhile.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>>;

    /// Records the outcome of an attempt if `lease` still owns the pending delivery;
    /// returns whether it did. Errors are clipped
    /// ([`crate::webhook::inbox::clip_error`]).
    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// A page of a subscription's deliveries in `(created_at, id)` order, after `after`.
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such subscription.
    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>>;

    /// Sends a delivery again, whatever its status: pending, due at `now`, any claim
    /// released, a new retry window; the id and the attempt count are kept. Returns it.
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such delivery.
    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery>;
}
