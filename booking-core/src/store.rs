//! Storage traits: use-case sized, each operation atomic.
//!
//! Every method is one transaction in a database adapter and one critical section in the
//! memory adapter. Methods that change a booking record the matching
//! [`DomainEvent`](crate::events::DomainEvent) in the outbox in that same step. The engine
//! never needs a transaction spanning two calls.
//!
//! All traits are object safe; [`Store`] bundles them.
//!
//! The traits by area: [`BookingStore`] (bookings), [`DirectoryStore`] and
//! [`ScheduleStore`] (professionals, clients, schedules), [`IdempotencyStore`],
//! [`RequestStore`] (use cases spanning those), [`OutboxStore`], [`InboxStore`],
//! [`PaymentStore`], [`SubscriptionStore`] (outbound webhooks) and [`HealthCheck`].

mod bookings;
mod directory;
mod idempotency;
mod inbox;
mod outbox;
mod page;
mod payments;
mod requests;
mod webhooks;

use async_trait::async_trait;

use crate::error::Result;

pub use bookings::{BookingOwner, BookingQuery, BookingStore, Inserted};
pub use directory::{DirectoryStore, ProfessionalQuery, Registered, ScheduleStore};
pub use idempotency::IdempotencyStore;
pub use inbox::InboxStore;
pub use outbox::OutboxStore;
pub use page::{Cursor, Page, check_limit};
pub use payments::{PaymentStore, Settled};
pub use requests::{AvailabilitySnapshot, BookingContext, RequestAnswer, RequestStore};
pub use webhooks::{FanOut, SubscriptionStore};

/// Readiness of the backing store.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// A cheap round trip proving the store can serve requests.
    async fn ping(&self) -> Result<()>;
}

/// Everything the engine needs from storage.
pub trait Store:
    BookingStore
    + DirectoryStore
    + ScheduleStore
    + IdempotencyStore
    + RequestStore
    + OutboxStore
    + InboxStore
    + PaymentStore
    + SubscriptionStore
    + HealthCheck
{
}

impl<T> Store for T where
    T: BookingStore
        + DirectoryStore
        + ScheduleStore
        + IdempotencyStore
        + RequestStore
        + OutboxStore
        + InboxStore
        + PaymentStore
        + SubscriptionStore
        + HealthCheck
{
}
