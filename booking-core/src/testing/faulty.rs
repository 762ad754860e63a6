//! [`Faulty`]: a store that fails chosen operations on demand, for tests of what the engine
//! and its callers do when storage fails (retries, dead letters, nothing half done).
//!
//! It wraps any [`Store`] and forwards every call, except that a method named with
//! [`Faulty::fail`] answers [`Error::Unavailable`] (the next `times` calls, or until
//! [`Faulty::heal`]) without reaching the inner store, so a failed call changes nothing;
//! and a method named with [`Faulty::lose_answer`] does its work in the inner store and
//! then answers [`Error::Unavailable`] anyway (a commit whose outcome is unknown).
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

/// One call of the wrapped store through the injected faults: refused before it reaches
/// the inner store ([`Faulty::fail`]), or its answer lost after ([`Faulty::lose_answer`]).
macro_rules! forward {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        $self.check(stringify!($method))?;
        let out = $self.inner.$method($($arg),*).await;
        $self.after(stringify!($method), out)
    }};
}

/// A store that fails chosen operations on demand (see the [module docs](self)).
pub struct Faulty<S: ?Sized> {
    inner: Arc<S>,
    /// Method name -> failures left (`u32::MAX`: until healed).
    failing: Mutex<HashMap<String, u32>>,
    /// Method name -> answers left to lose after the inner store has done the work.
    losing: Mutex<HashMap<String, u32>>,
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
            losing: Mutex::new(HashMap::new()),
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

    /// Makes the next `times` successful calls of `method` do their work in the inner
    /// store (a commit) and then answer [`Error::Unavailable`] anyway: a commit whose
    /// outcome the caller never learns, as when a connection drops after `COMMIT` was sent.
    /// `u32::MAX` loses every answer until [`Faulty::heal`].
    pub fn lose_answer(&self, method: &str, times: u32) {
        self.losing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(method.to_owned(), times);
    }

    /// Lets `method` through again (undoes [`Faulty::fail`] and [`Faulty::lose_answer`]).
    pub fn heal(&self, method: &str) {
        self.failing().remove(method);
        self.losing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(method);
    }

    /// The answer of `method` after the inner store ran: `out`, or an injected
    /// [`Error::Unavailable`] in its place while [`Faulty::lose_answer`] says so.
    fn after<T>(&self, method: &str, out: Result<T>) -> Result<T> {
        let mut losing = self.losing.lock().unwrap_or_else(|p| p.into_inner());
        match losing.get_mut(method) {
            Some(n) if *n > 0 && out.is_ok() => {
                if *n != u32::MAX {
                    *n -= 1;
                }
                Err(Error::Unavailable(format!(
                    "injected: {method} committed but its answer was lost"
                )))
            }
            _ => out,
        }
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
        forward!(self.insert_booking(booking, now))
    }

    async fn find_booking_by_request(
        &self,
        professional_id: ProfessionalId,
        request_ref: &str,
    ) -> Result<Option<Booking>> {
        forward!(self.find_booking_by_request(professional_id, request_ref))
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<Booking>> {
        forward!(self.get_booking(id))
    }

    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        forward!(self.transition_booking(id, transition, now))
    }

    async fn reschedule_booking(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        forward!(self.reschedule_booking(id, range, blocked, now))
    }

    async fn transition_booking_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        forward!(self.transition_booking_from(current, transition, now))
    }

    async fn reschedule_booking_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        forward!(self.reschedule_booking_from(current, range, blocked, now))
    }

    async fn list_bookings(&self, query: &BookingQuery) -> Result<Page<Booking>> {
        forward!(self.list_bookings(query))
    }

    async fn blocked_ranges(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TimeRange>> {
        forward!(self.blocked_ranges(professional_id, window, now))
    }

    async fn expire_due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        forward!(self.expire_due_holds(now, limit))
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
        forward!(self.insert_professional(professional, token, request_ref))
    }

    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>> {
        forward!(self.get_professional(id))
    }

    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        forward!(self.update_professional(id, patch, now))
    }

    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        forward!(self.search_professionals(query))
    }

    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        forward!(self.insert_client(client, token, request_ref))
    }

    async fn get_client(&self, id: ClientId) -> Result<Option<Client>> {
        forward!(self.get_client(id))
    }

    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>> {
        forward!(self.principal_for_token(token))
    }
}

#[async_trait]
impl<S: Store + ?Sized> ScheduleStore for Faulty<S> {
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()> {
        forward!(self.put_schedule(professional_id, schedule))
    }

    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>> {
        forward!(self.get_schedule(professional_id))
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
        forward!(self.begin(scope, key, fingerprint, now, policy))
    }

    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        forward!(self.complete(scope, key, lease, response))
    }

    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool> {
        forward!(self.abandon(scope, key, lease))
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        forward!(self.purge_expired(now, limit))
    }
}

#[async_trait]
impl<S: Store + ?Sized> OutboxStore for Faulty<S> {
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        forward!(self.events_after(after, limit))
    }

    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents> {
        forward!(self.claim_events(consumer, now, limit, lease))
    }

    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        forward!(self.mark_events(consumer, lease, ids, now))
    }

    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64> {
        forward!(self.prune_events(older_than, consumers, limit))
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
        forward!(self.insert_booking_answered(booking, now, answer))
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
        forward!(self.begin_booking(
            scope,
            key,
            fingerprint,
            now,
            policy,
            client_id,
            professional_id
        ))
    }

    async fn availability_snapshot(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Option<AvailabilitySnapshot>> {
        forward!(self.availability_snapshot(professional_id, window, now))
    }
}

#[async_trait]
impl<S: Store + ?Sized> InboxStore for Faulty<S> {
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded> {
        forward!(self.record(event, now))
    }

    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>> {
        forward!(self.inbox_event(key))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>> {
        forward!(self.claim_due(now, limit, lease))
    }

    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        forward!(self.mark_processed(key, lease, now))
    }

    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        forward!(self.schedule_retry(key, lease, at, error))
    }

    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        forward!(self.dead_letter(key, lease, error, now))
    }

    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>> {
        forward!(self.list_dead_letters(limit, after))
    }

    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent> {
        forward!(self.replay_dead_letter(key, now))
    }

    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64> {
        forward!(self.prune_processed(older_than, limit))
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
        forward!(self.attach_payment(id, payment, answer, now))
    }

    async fn release_unpaid_hold(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>> {
        forward!(self.release_unpaid_hold(id, now))
    }

    async fn settle_payment(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>> {
        forward!(self.settle_payment(key, lease, id, change, now))
    }

    async fn booking_by_intent(&self, intent_id: &str) -> Result<Option<Booking>> {
        forward!(self.booking_by_intent(intent_id))
    }

    async fn payment_obligations(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        forward!(self.payment_obligations(now, limit))
    }

    async fn obligation_met(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        forward!(self.obligation_met(id, met, now))
    }
}

#[async_trait]
impl<S: Store + ?Sized> SubscriptionStore for Faulty<S> {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()> {
        forward!(self.create_subscription(subscription))
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>> {
        forward!(self.get_subscription(id))
    }

    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>> {
        forward!(self.list_subscriptions(limit, after))
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()> {
        forward!(self.delete_subscription(id))
    }

    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut> {
        forward!(self.record_deliveries(lease, events, now))
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>> {
        forward!(self.claim_deliveries(now, limit, lease))
    }

    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        forward!(self.settle_delivery(id, lease, outcome, now))
    }

    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>> {
        forward!(self.list_deliveries(subscription, limit, after))
    }

    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery> {
        forward!(self.redeliver(id, now))
    }
}

#[async_trait]
impl<S: Store + ?Sized> HealthCheck for Faulty<S> {
    async fn ping(&self) -> Result<()> {
        forward!(self.ping())
    }
}
