//! # booking-postgres
//!
//! The PostgreSQL (15+) storage adapter of [`booking_core`], on sqlx. [`PgStore`]
//! implements every storage trait; each trait operation is one transaction that also
//! writes its domain event.
//!
//! ## Where the guarantees live
//!
//! * **No double booking**: the exclusion constraint `bookings_no_overlap`
//!   (`EXCLUDE USING gist (professional_id WITH =, blocked_range WITH &&) WHERE status IN
//!   ('pending_payment', 'confirmed')`, with `btree_gist`). A constraint cannot call
//!   `now()`, so holds that ran out are marked `expired` inside the transaction of the insert
//!   (or confirm, or reschedule) that needs their slot, and by the sweep
//!   ([`BookingStore::expire_due_holds`](booking_core::store::BookingStore::expire_due_holds)).
//! * **One booking per request**: unique `(professional_id, request_ref)`; a retry whose first
//!   attempt committed gets [`Inserted::Existing`](booking_core::Inserted::Existing), never
//!   a second booking and never a conflict with its own booking.
//! * **One subject per request**: a unique `request_ref` on `api_tokens` (written in the
//!   transaction that stores the professional or client, before it, with `ON CONFLICT DO
//!   NOTHING`); a retried create gets [`Registered::Existing`](booking_core::store::Registered).
//! * **Idempotency**: one row per `(scope, key)`, claimed with `INSERT .. ON CONFLICT DO
//!   NOTHING`, decided with [`booking_core::idempotency::decide`]; a record is replaced (a
//!   lease that ran out, an expired record) only under its row lock.
//! * **Outbox**: events are rows written in the same transaction as the change, read back
//!   in recording order without gaps.
//! * **Webhook inbox**: primary key `(provider, event_id)`, so an event is recorded once
//!   (`INSERT .. ON CONFLICT DO NOTHING`); claims take due rows with `FOR UPDATE SKIP
//!   LOCKED` and settling statements match the claim's lease, so several servers can run
//!   the worker.
//! * **Payments**: an intent pays for one booking (unique `(professional_id,
//!   payment_intent_id)`, provider and intent set together); a provider event's effect on
//!   its booking and the event's `processed` mark commit in one transaction
//!   ([`PaymentStore::settle_payment`](booking_core::store::PaymentStore::settle_payment)),
//!   only while the claim's lease still owns the event.
//!
//! Every unique or exclusion constraint on booking data includes `professional_id`, so the
//! schema can be distributed by that column.
//!
//! ## Round trips
//!
//! The hot operations are one statement each, in its own implicit transaction:
//!
//! | operation | statement |
//! |---|---|
//! | `begin` | claim the key, or read the record holding it |
//! | `begin_booking` ([`RequestStore`](booking_core::store::RequestStore)) | the same claim, and the professional, their schedule and whether the client exists |
//! | `insert_booking_answered` | look-up of the request's earlier booking, the insert, its outbox event and the key's answer (data-modifying CTEs) |
//! | `availability_snapshot` | professional, schedule and the blocked ranges in reach of the window |
//! | `transition_booking`, `reschedule_booking` | a read, then the change and its event in one statement that applies only if the row is still as read |
//! | `complete`, `abandon`, the reads | one each |
//!
//! So `POST /v1/bookings` costs two round trips in the usual case (the server caches
//! token look-ups), and the booking and its key's answer commit together: a crash can
//! never leave a booking whose key has no answer. The rarer cases (taking over an
//! idempotency record, releasing holds that ran out, a booking whose instants are not whole
//! microseconds) use an explicit transaction with the same effects. Inserts take a
//! transaction-scoped advisory lock on their professional first, so two overlapping
//! inserts queue rather than deadlock in the exclusion check.
//!
//! ## Clock
//!
//! Hold expiry is decided on one clock. By default ([`PgClock::Database`], what
//! [`PgConfig::from_url`] and [`PgStore::connect`] give) that is the database server's:
//! every comparison with `hold_expires_at` (an insert's release of holds that ran out, the
//! expiry sweep, transitions, reschedules, payments and their obligations, list filters,
//! blocked ranges and availability) reads `now()` in SQL instead of the `now` argument,
//! and bookings are stamped with it (`created_at`, `updated_at`; a new hold keeps the
//! length the engine gave it). Several application servers with skewed clocks therefore
//! cannot disagree about whether a hold has run out. One statement text serves both modes:
//! the clock is bound as `COALESCE($n, now())`, `NULL` on the database's clock; where Rust
//! code decides after reading a row, the read also returns `now()`, so no round trip is
//! added. [`PgClock::Caller`] decides with the `now` argument, as the memory adapter does
//! (the conformance suite runs on a manual clock in that mode). See [`PgClock`] for what
//! stays on the caller's clock.
//!
//! ## Errors
//!
//! `23P01` (exclusion violation) is [`Error::SlotUnavailable`](booking_core::Error);
//! a unique violation is `AlreadyExists` of the entity its constraint protects;
//! `40001` / `40P01` re-run the whole transaction a few times, then `Unavailable`; pool
//! time-outs, I/O errors and cancelled statements are `Unavailable`; anything else is
//! `Internal` (its message is for logs; the server never shows it to clients).
//!
//! ## Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), booking_core::Error> {
//! use booking_postgres::{PgConfig, PgStore};
//! let store = PgStore::connect(&PgConfig::from_url("postgres://postgres@127.0.0.1/booking")).await?;
//! store.migrate().await?; // idempotent: safe at every start-up
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod rows;
mod store;

#[doc(hidden)]
pub mod test_support;

pub use config::{PgClock, PgConfig};
pub use store::PgStore;

/// The embedded migrations (`booking-postgres/migrations`). [`PgStore::migrate`] runs them;
/// running them again is a no-op.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
