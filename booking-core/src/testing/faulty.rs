//! [`Faulty`]: a store that fails chosen operations on demand, for tests of what the engine
//! and its callers do when storage fails (retries, dead letters, nothing half done).
//!
//! It wraps any [`Store`] and forwards every call, except that a method named with
//! [`Faulty::fail`] answers [`Error::Unavailable`] (the next `times` calls, or until
//! [`Faulty::heal`]) without reaching the inner store, so a failed call changes nothing.
//!
//! ```ignore
//! use booking_core::testing::faulty::Faulty;
//! let store = Arc::new(Faulty::new(Arc::new(booking_memory::MemoryStore::new())));
//! store.fail("settle_payment", u32::MAX); // every webhook effect fails from now on
//! // ... deliver an event, watch it retried and dead-lettered ...
//! store.heal("settle_payment");
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::{Principal, TokenHash};
use crate::domain::{
    Booking, BookingId, Client, ClientId, EventId, Professional, ProfessionalId, ProfessionalPatch,
    TimeRange, Transition,
};
use crate::domain::{DeliveryId, SubscriptionId};
use crate::error::{Error, Result};
use crate::events::{ClaimedEvents, Consumer, DomainEvent};
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use crate::payment::{ObligationMet, Payment, PaymentChange};
use crate::schedule::Schedule;
use crate::store::*;
use crate::webhook::inbox::{Claimed, InboxEvent, InboxKey, NewInboxEvent, Recorded};
use crate::webhook::outbound::{AttemptOutcome, Delivery, DueDelivery, Subscription};

/// A store that fails chosen operations on demand (see the [module docs](self)).
pub struct Faulty<S: ?Sized> {
    inner: Arc<S>,
    /// Method name -> failures left (`u32::MAX`: until healed).
    failing: Mutex<HashMap<String, u32>>,
}

impl<S: ?Sized> std::fmt::Debug for Faulty<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faulty").finish_non_exhaustive()
    }
}

impl<S: ?Sized> Faulty<S> {
    /// Wraps `inner`; nothing fails until [`Faulty::fail`] says so.
    pub fn new(inner: Arc<S>) -> Self {
        Self {
            inner,
            failing: Mutex::new(HashMap::new()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `times` calls of the method named `method` (e.g. `settle_payment`)
    /// fail; `u32::MAX` fails them until [`Faulty::heal`].
    pub fn fail(&self, method: &str, times: u32) {
        self.failing().insert(method.to_owned(), times);
    }

    /// Lets `method` through again.
    pub fn heal(&self, method: &str) {
        self.failing().remove(method);
    }

    fn check(&self, method: &str) -> Result<()> {
        let mut failing = self.failing();
        match failing.get_mut(method) {
            Some(0) | None => Ok(()),
            Some(n) => {
                if *n != u32::MAX {
                    *n -= 1;
                }
                Err(Error::Unavailable(format!("injected failure of {method}")))
            }
        }
    }
}

#[async_trait]
impl<S: Store + ?Sized> BookingStore for Faulty<S> {
    async fn insert_booking(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted> {
        self.check("insert_booking")?;
        self.inner.insert_booking(booking, now).await
    }

    async fn find_booking_by_request(
        &self,
        professional_id: ProfessionalId,
        request_ref: &str,
    ) -> Result<Option<Booking>> {
        self.check("find_booking_by_request")?;
        self.inner
            .find_booking_by_request(professional_id, request_ref)
            .await
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<Booking>> {
        self.check("get_booking")?;
        self.inner.get_booking(id).await
    }

    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.check("transition_booking")?;
        self.inner.transition_booking(id, transition, now).await
    }

    async fn reschedule_booking(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.check("reschedule_booking")?;
        self.inner.reschedule_booking(id, range, blocked, now).await
    }

    async fn transition_booking_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.check("transition_booking_from")?;
        self.inner
            .transition_booking_from(current, transition, now)
            .await
    }

    async fn reschedule_booking_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.check("reschedule_booking_from")?;
        self.inner
            .reschedule_booking_from(current, range, blocked, now)
            .await
    }

    async fn list_bookings(&self, query: &BookingQuery) -> Result<Page<Booking>> {
        self.check("list_bookings")?;
        self.inner.list_bookings(query).await
    }

    async fn blocked_ranges(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TimeRange>> {
        self.check("blocked_ranges")?;
        self.inner
            .blocked_ranges(professional_id, window, now)
            .await
    }

    async fn expire_due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        self.check("expire_due_holds")?;
        self.inner.expire_due_holds(now, limit).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> DirectoryStore for Faulty<S> {
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        self.check("insert_professional")?;
        self.inner
            .insert_professional(professional, token, request_ref)
            .await
    }

    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>> {
        self.check("get_professional")?;
        self.inner.get_professional(id).await
    }

    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        self.check("update_professional")?;
        self.inner.update_professional(id, patch, now).await
    }

    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        self.check("search_professionals")?;
        self.inner.search_professionals(query).await
    }

    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        self.check("insert_client")?;
        self.inner.insert_client(client, token, request_ref).await
    }

    async fn get_client(&self, id: ClientId) -> Result<Option<Client>> {
        self.check("get_client")?;
        self.inner.get_client(id).await
    }

    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>> {
        self.check("principal_for_token")?;
        self.inner.principal_for_token(token).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ScheduleStore for Faulty<S> {
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()> {
        self.check("put_schedule")?;
        self.inner.put_schedule(professional_id, schedule).await
    }

    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>> {
        self.check("get_schedule")?;
        self.inner.get_schedule(professional_id).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> IdempotencyStore for Faulty<S> {
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision> {
        self.check("begin")?;
        self.inner.begin(scope, key, fingerprint, now, policy).await
    }

    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        self.check("complete")?;
        self.inner.complete(scope, key, lease, response).await
    }

    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool> {
        self.check("abandon")?;
        self.inner.abandon(scope, key, lease).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.check("purge_expired")?;
        self.inner.purge_expired(now, limit).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> OutboxStore for Faulty<S> {
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        self.check("events_after")?;
        self.inner.events_after(after, limit).await
    }

    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents> {
        self.check("claim_events")?;
        self.inner.claim_events(consumer, now, limit, lease).await
    }

    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        self.check("mark_events")?;
        self.inner.mark_events(consumer, lease, ids, now).await
    }

    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64> {
        self.check("prune_events")?;
        self.inner.prune_events(older_than, consumers, limit).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> RequestStore for Faulty<S> {
    async fn insert_booking_answered(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: &RequestAnswer,
    ) -> Result<(Inserted, bool)> {
        self.check("insert_booking_answered")?;
        self.inner
            .insert_booking_answered(booking, now, answer)
            .await
    }

    async fn begin_booking(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<(Decision, Option<BookingContext>)> {
        self.check("begin_booking")?;
        self.inner
            .begin_booking(
                scope,
                key,
                fingerprint,
                now,
                policy,
                client_id,
                professional_id,
            )
            .await
    }

    async fn availability_snapshot(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Option<AvailabilitySnapshot>> {
        self.check("availability_snapshot")?;
        self.inner
            .availability_snapshot(professional_id, window, now)
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> InboxStore for Faulty<S> {
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded> {
        self.check("record")?;
        self.inner.record(event, now).await
    }

    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>> {
        self.check("inbox_event")?;
        self.inner.inbox_event(key).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>> {
        self.check("claim_due")?;
        self.inner.claim_due(now, limit, lease).await
    }

    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.check("mark_processed")?;
        self.inner.mark_processed(key, lease, now).await
    }

    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        self.check("schedule_retry")?;
        self.inner.schedule_retry(key, lease, at, error).await
    }

    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.check("dead_letter")?;
        self.inner.dead_letter(key, lease, error, now).await
    }

    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>> {
        self.check("list_dead_letters")?;
        self.inner.list_dead_letters(limit, after).await
    }

    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent> {
        self.check("replay_dead_letter")?;
        self.inner.replay_dead_letter(key, now).await
    }

    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.check("prune_processed")?;
        self.inner.prune_processed(older_than, limit).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> PaymentStore for Faulty<S> {
    async fn attach_payment(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool)> {
        self.check("attach_payment")?;
        self.inner.attach_payment(id, payment, answer, now).await
    }

    async fn release_unpaid_hold(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>> {
        self.check("release_unpaid_hold")?;
        self.inner.release_unpaid_hold(id, now).await
    }

    async fn settle_payment(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>> {
        self.check("settle_payment")?;
        self.inner.settle_payment(key, lease, id, change, now).await
    }

    async fn booking_by_intent(&self, intent_id: &str) -> Result<Option<Booking>> {
        self.check("booking_by_intent")?;
        self.inner.booking_by_intent(intent_id).await
    }

    async fn payment_obligations(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        self.check("payment_obligations")?;
        self.inner.payment_obligations(now, limit).await
    }

    async fn obligation_met(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.check("obligation_met")?;
        self.inner.obligation_met(id, met, now).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> SubscriptionStore for Faulty<S> {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()> {
        self.check("create_subscription")?;
        self.inner.create_subscription(subscription).await
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>> {
        self.check("get_subscription")?;
        self.inner.get_subscription(id).await
    }

    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>> {
        self.check("list_subscriptions")?;
        self.inner.list_subscriptions(limit, after).await
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()> {
        self.check("delete_subscription")?;
        self.inner.delete_subscription(id).await
    }

    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut> {
        self.check("record_deliveries")?;
        self.inner.record_deliveries(lease, events, now).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>> {
        self.check("claim_deliveries")?;
        self.inner.claim_deliveries(now, limit, lease).await
    }

    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.check("settle_delivery")?;
        self.inner.settle_delivery(id, lease, outcome, now).await
    }

    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>> {
        self.check("list_deliveries")?;
        self.inner.list_deliveries(subscription, limit, after).await
    }

    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery> {
        self.check("redeliver")?;
        self.inner.redeliver(id, now).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> HealthCheck for Faulty<S> {
    async fn ping(&self) -> Result<()> {
        self.check("ping")?;
        self.inner.ping().await
    }
}
