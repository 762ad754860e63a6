//! # booking-core
//!
//! The pure domain logic of a booking engine that lets clients book time with
//! professionals and never double-books. No I/O, no async runtime, no wall clock: storage
//! sits behind the traits in [`store`], time behind [`Clock`].
//!
//! ```
//! use std::sync::Arc;
//!
//! use booking_core::{
//!     Actor, BookingEngine, BookingRequest, BookingStatus, EngineConfig, Error, GeoPoint,
//!     ManualClock, NewClient, NewProfessional, Schedule, TimeRange, TokenHash,
//! };
//! // Any adapter: `booking-memory`, `booking-postgres`, or your own.
//! use booking_memory::MemoryStore;
//! use chrono::{Duration, TimeZone, Utc};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0).single().ok_or("no such instant")?;
//! // `SystemClock` in production; a manual clock makes the example repeatable.
//! let engine = BookingEngine::new(
//!     Arc::new(MemoryStore::new()),
//!     ManualClock::new(now),
//!     EngineConfig::default(),
//! );
//!
//! let pro = NewProfessional {
//!     name: "Ada".into(),
//!     category: "physiotherapy".into(),
//!     location: GeoPoint::new(52.52, 13.405)?,
//!     hourly_rate_cents: 8_000,
//!     currency: "eur".into(),
//!     timezone: "Europe/Berlin".into(),
//!     is_active: None,
//! };
//! let pro = engine.create_professional(&pro, TokenHash::of("ada-token")).await?;
//! engine
//!     .set_schedule(Actor::Admin, pro.id, Schedule::always_open(pro.timezone))
//!     .await?;
//! let client = NewClient { name: "Lin".into(), email: "lin@example.com".into() };
//! let client = engine.create_client(&client, TokenHash::of("lin-token")).await?;
//!
//! // 09:00-10:00 UTC: free, so it is booked (and confirmed: no payments configured).
//! let range = TimeRange::new(now + Duration::hours(1), now + Duration::hours(2))?;
//! let request = BookingRequest {
//!     client_id: client.id,
//!     professional_id: pro.id,
//!     range,
//!     request_ref: None,
//! };
//! let booking = engine.create_booking(&request).await?.booking().clone();
//! assert_eq!(booking.status, BookingStatus::Confirmed);
//! assert_eq!(booking.price.amount_cents, 8_000);
//!
//! // The same slot again is refused, however many requests race for it.
//! assert!(matches!(engine.create_booking(&request).await, Err(Error::SlotUnavailable)));
//!
//! // Cancelling frees it.
//! engine.cancel_booking(Actor::Client(client.id), booking.id).await?;
//! assert!(engine.create_booking(&request).await.is_ok());
//! # Ok(())
//! # }
//! ```
//!
//! The programs in the repository's `examples/` go further: PostgreSQL, a storage adapter
//! of your own under the conformance suite, property tests with [`testing`]'s strategies,
//! a consumer of the domain events.
//!
//! ## Guarantees (checked by [`testing`] against every adapter)
//!
//! * No two active bookings of one professional have overlapping blocked ranges, under any
//!   concurrency. Ranges are half-open, so back-to-back bookings never conflict; buffers
//!   widen the *blocked* range, never the booked one.
//! * A `pending_payment` hold blocks its slot until `hold_expires_at` and not an instant
//!   longer.
//! * Every booking change is recorded with its [`events::DomainEvent`] in the same atomic
//!   step.
//! * Idempotent requests run at most once at a time and replay their final answer; a
//!   retry after a crash never creates a second booking.
//! * With payments, a provider event's effect on its booking and the event's "processed"
//!   mark commit together, and any order or duplication of a set of events ends in the same
//!   states; a failed provider call never leaves a hold blocking a slot.
//! * Each outbox event is fanned out to the matching outbound webhook subscriptions exactly
//!   once ([`store::SubscriptionStore::record_deliveries`] marks and fans out in one step),
//!   and a delivery keeps its id across retries and redeliveries.
//! * Slots are computed in the professional's time zone and are correct across daylight
//!   saving transitions ([`schedule`]).
//!
//! ## Features
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `testing` | [`testing`]: the adapter conformance suite (`conformance_suite!`), proptest strategies and a reference model |
//! | (always)  | [`webhook`]: Stripe's `t=`/`v1=` webhook signatures: header parser, constant-time [`webhook::verify`] with tolerance and secret rotation, [`webhook::sign`] for outbound deliveries; the Stripe event envelope; the inbox and its retry policy; outbound subscriptions, deliveries and the retry decision ([`webhook::outbound`]) |
//! | (always)  | [`payment`]: the [`payment::PaymentGateway`] a provider implements, the payment kept on a booking, and the pure, order-independent effect of a provider event ([`payment::apply_change`]) |
//!
//! ## The conflict rule in isolation
//!
//! ```
//! use booking_core::{TimeRange, conflict::{IndexEntry, IntervalIndex}, BookingId};
//! use chrono::{TimeZone, Utc};
//!
//! let at = |h| Utc.with_ymd_and_hms(2027, 3, 1, h, 0, 0).unwrap();
//! let mut index = IntervalIndex::default();
//! let taken = TimeRange::new(at(9), at(10)).unwrap();
//! index.insert(IndexEntry { id: BookingId::new_at(at(0)), blocked: taken, hold_expires_at: None }).unwrap();
//! // 10:00-11:00 touches 9:00-10:00 but does not overlap it.
//! assert!(index.first_active_conflict(&TimeRange::new(at(10), at(11)).unwrap(), at(0)).is_none());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod clock;
pub mod conflict;
pub mod domain;
pub mod engine;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod payment;
pub mod schedule;
pub mod search;
pub mod store;
pub mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

#[doc(hidden)]
pub mod testing_doc;

pub use auth::{Actor, Principal, TokenHash};
pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::{
    Booking, BookingId, BookingStatus, Category, Client, ClientId, Currency, DeliveryId, EventId,
    GeoPoint, Money, NewBooking, NewClient, NewProfessional, Professional, ProfessionalId,
    ProfessionalPatch, SubscriptionId, TimeRange, Transition, price_for,
};
pub use engine::{AnsweredRequest, BookingEngine, BookingFilter, BookingRequest, EngineConfig};
pub use error::{Entity, Error, FieldError, Result};
pub use events::{DomainEvent, EventKind};
pub use idempotency::{Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope};
pub use schedule::Schedule;
pub use store::{
    AvailabilitySnapshot, BookingContext, Cursor, Inserted, Page, RequestAnswer, RequestStore,
    Store,
};
pub use webhook::{
    RetryPolicy, SignatureError, SignatureHeader, StripeEvent, StripeEventKind, VerifiedSignature,
    WebhookSecret,
};
