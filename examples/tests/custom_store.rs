//! A storage adapter of your own, checked by the same conformance suite as the built-in
//! ones.
//!
//! `booking_core::conformance_suite!(Factory)` expands to one `#[test]` per promised
//! behaviour (no double booking under races, holds, the status machine, idempotency, the
//! outbox, the webhook inbox, payments, outbound deliveries, search, and a model-based
//! property test of the whole engine). An adapter that passes it can stand in for the
//! memory or PostgreSQL store.
//!
//! The adapter here is deliberately thin: `CountingStore` wraps the in-memory store and
//! counts the calls of each storage operation (the shape of a metrics or tracing layer).
//! A real adapter implements the same traits over its own database; the factory and the
//! suite stay exactly as below.
//!
//! Run it with `cargo test -p examples --test custom_store`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use booking_core::auth::{Principal, TokenHash};
use booking_core::domain::{
    Booking, BookingId, Client, ClientId, DeliveryId, EventId, Professional, ProfessionalId,
    ProfessionalPatch, SubscriptionId, TimeRange, Transition,
};
use booking_core::error::Result;
use booking_core::events::{ClaimedEvents, Consumer, DomainEvent};
use booking_core::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use booking_core::payment::{ObligationMet, Payment, PaymentChange};
use booking_core::schedule::Schedule;
use booking_core::store::{
    AvailabilitySnapshot, BookingContext, BookingQuery, BookingStore, Cursor, DirectoryStore,
    FanOut, HealthCheck, IdempotencyStore, InboxStore, Inserted, OutboxStore, Page, PaymentStore,
    ProfessionalQuery, Registered, RequestAnswer, RequestStore, ScheduleStore, Settled,
    SubscriptionStore,
};
use booking_core::testing::StoreFactory;
use booking_core::webhook::inbox::{Claimed, InboxEvent, InboxKey, NewInboxEvent, Recorded};
use booking_core::webhook::outbound::{AttemptOutcome, Delivery, DueDelivery, Subscription};
use booking_memory::MemoryStore;
use chrono::{DateTime, Utc};

/// The adapter: every storage operation is counted, then handed to the memory store.
#[derive(Default)]
pub struct CountingStore {
    inner: MemoryStore,
    calls: Mutex<HashMap<&'static str, u64>>,
}

impl CountingStore {
    fn count(&self, operation: &'static str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(operation).or_default() += 1;
    }

    /// How often `operation` (a storage method's name) was called.
    pub fn calls(&self, operation: &str) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.get(operation).copied().unwrap_or_default()
    }
}

/// Implements one storage trait for `CountingStore`: each listed method counts its call
/// and forwards its arguments to the memory store.
macro_rules! delegate {
    ($trait:ident: $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        #[async_trait]
        impl $trait for CountingStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> $ret {
                    self.count(stringify!($name));
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

delegate! { BookingStore:
    fn insert_booking(booking: &Booking, now: DateTime<Utc>) -> Result<Inserted>;
    fn find_booking_by_request(professional_id: ProfessionalId, request_ref: &str) -> Result<Option<Booking>>;
    fn get_booking(id: BookingId) -> Result<Option<Booking>>;
    fn transition_booking(id: BookingId, transition: Transition, now: DateTime<Utc>) -> Result<Booking>;
    fn reschedule_booking(id: BookingId, range: TimeRange, blocked: TimeRange, now: DateTime<Utc>) -> Result<Booking>;
    fn transition_booking_from(current: &Booking, transition: Transition, now: DateTime<Utc>) -> Result<Booking>;
    fn reschedule_booking_from(current: &Booking, range: TimeRange, blocked: TimeRange, now: DateTime<Utc>) -> Result<Booking>;
    fn list_bookings(query: &BookingQuery) -> Result<Page<Booking>>;
    fn blocked_ranges(professional_id: ProfessionalId, window: TimeRange, now: DateTime<Utc>) -> Result<Vec<TimeRange>>;
    fn expire_due_holds(now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>>;
}
delegate! { DirectoryStore:
    fn insert_professional(professional: &Professional, token: TokenHash, request_ref: Option<&str>) -> Result<Registered<Professional>>;
    fn get_professional(id: ProfessionalId) -> Result<Option<Professional>>;
    fn update_professional(id: ProfessionalId, patch: &ProfessionalPatch, now: DateTime<Utc>) -> Result<Professional>;
    fn search_professionals(query: &ProfessionalQuery) -> Result<Page<Professional>>;
    fn insert_client(client: &Client, token: TokenHash, request_ref: Option<&str>) -> Result<Registered<Client>>;
    fn get_client(id: ClientId) -> Result<Option<Client>>;
    fn principal_for_token(token: TokenHash) -> Result<Option<Principal>>;
}
delegate! { ScheduleStore:
    fn put_schedule(professional_id: ProfessionalId, schedule: &Schedule) -> Result<()>;
    fn get_schedule(professional_id: ProfessionalId) -> Result<Option<Schedule>>;
}
delegate! { IdempotencyStore:
    fn begin(scope: &Scope, key: &IdempotencyKey, fingerprint: Fingerprint, now: DateTime<Utc>, policy: &IdempotencyPolicy) -> Result<Decision>;
    fn complete(scope: &Scope, key: &IdempotencyKey, lease: LeaseId, response: &StoredResponse) -> Result<bool>;
    fn abandon(scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool>;
    fn purge_expired(now: DateTime<Utc>, limit: usize) -> Result<u64>;
}
delegate! { OutboxStore:
    fn events_after(after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>>;
    fn claim_events(consumer: Consumer, now: DateTime<Utc>, limit: usize, lease: chrono::Duration) -> Result<ClaimedEvents>;
    fn mark_events(consumer: Consumer, lease: LeaseId, ids: &[EventId], now: DateTime<Utc>) -> Result<usize>;
    fn prune_events(older_than: DateTime<Utc>, consumers: &[Consumer], limit: usize) -> Result<u64>;
}
delegate! { RequestStore:
    fn insert_booking_answered(booking: &Booking, now: DateTime<Utc>, answer: &RequestAnswer) -> Result<(Inserted, bool)>;
    fn begin_booking(scope: &Scope, key: &IdempotencyKey, fingerprint: Fingerprint, now: DateTime<Utc>, policy: &IdempotencyPolicy, client_id: ClientId, professional_id: ProfessionalId) -> Result<(Decision, Option<BookingContext>)>;
    fn availability_snapshot(professional_id: ProfessionalId, window: TimeRange, now: DateTime<Utc>) -> Result<Option<AvailabilitySnapshot>>;
}
delegate! { InboxStore:
    fn record(event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded>;
    fn inbox_event(key: &InboxKey) -> Result<Option<InboxEvent>>;
    fn claim_due(now: DateTime<Utc>, limit: usize, lease: chrono::Duration) -> Result<Vec<Claimed>>;
    fn mark_processed(key: &InboxKey, lease: LeaseId, now: DateTime<Utc>) -> Result<bool>;
    fn schedule_retry(key: &InboxKey, lease: LeaseId, at: DateTime<Utc>, error: &str) -> Result<bool>;
    fn dead_letter(key: &InboxKey, lease: LeaseId, error: &str, now: DateTime<Utc>) -> Result<bool>;
    fn list_dead_letters(limit: u32, after: Option<Cursor>) -> Result<Page<InboxEvent>>;
    fn replay_dead_letter(key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent>;
    fn prune_processed(older_than: DateTime<Utc>, limit: usize) -> Result<u64>;
}
delegate! { PaymentStore:
    fn attach_payment(id: BookingId, payment: &Payment, answer: Option<&RequestAnswer>, now: DateTime<Utc>) -> Result<(Booking, bool)>;
    fn release_unpaid_hold(id: BookingId, now: DateTime<Utc>) -> Result<Option<Booking>>;
    fn settle_payment(key: &InboxKey, lease: LeaseId, id: BookingId, change: PaymentChange, now: DateTime<Utc>) -> Result<Option<Settled>>;
    fn booking_by_intent(intent_id: &str) -> Result<Option<Booking>>;
    fn payment_obligations(now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>>;
    fn obligation_met(id: BookingId, met: &ObligationMet, now: DateTime<Utc>) -> Result<Booking>;
}
delegate! { SubscriptionStore:
    fn create_subscription(subscription: &Subscription) -> Result<()>;
    fn get_subscription(id: SubscriptionId) -> Result<Option<Subscription>>;
    fn list_subscriptions(limit: u32, after: Option<Cursor>) -> Result<Page<Subscription>>;
    fn delete_subscription(id: SubscriptionId) -> Result<()>;
    fn record_deliveries(lease: LeaseId, events: &[DomainEvent], now: DateTime<Utc>) -> Result<FanOut>;
    fn claim_deliveries(now: DateTime<Utc>, limit: usize, lease: chrono::Duration) -> Result<Vec<DueDelivery>>;
    fn settle_delivery(id: DeliveryId, lease: LeaseId, outcome: &AttemptOutcome, now: DateTime<Utc>) -> Result<bool>;
    fn list_deliveries(subscription: SubscriptionId, limit: u32, after: Option<Cursor>) -> Result<Page<Delivery>>;
    fn redeliver(id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery>;
}
delegate! { HealthCheck:
    fn ping() -> Result<()>;
}

/// Hands every check a fresh, empty store. A database adapter would create a fresh
/// database here, and return `None` (after saying so loudly) when none is reachable
/// outside CI.
struct Factory;

#[async_trait]
impl StoreFactory for Factory {
    type Store = CountingStore;

    async fn new_store(&self) -> Option<Arc<CountingStore>> {
        Some(Arc::new(CountingStore::default()))
    }
}

booking_core::conformance_suite!(Factory);

/// The wrapper really is in the path: a booking made through the engine reaches it.
#[test]
fn the_engine_calls_the_adapter() {
    booking_core::testing::run(&Factory, |store| async move {
        let fx = booking_core::testing::Fixture::new(store.clone()).await;
        let before = store.calls("insert_booking") + store.calls("insert_booking_answered");
        fx.book(60, 120).await.expect("the slot is free");
        let after = store.calls("insert_booking") + store.calls("insert_booking_answered");
        assert_eq!(after, before + 1);
    });
}
