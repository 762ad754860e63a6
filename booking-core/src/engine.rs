//! [`BookingEngine`]: the use cases, and the only caller of the stores.
//!
//! The use cases by area, one file each under `engine/`: `directory` (professionals,
//! clients), `availability` (schedules, slots, what may be booked), `bookings`,
//! `requests` (idempotent requests) and `payments`.

mod availability;
mod bookings;
mod directory;
mod payments;
mod requests;

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::clock::Clock;
use crate::idempotency::IdempotencyPolicy;
use crate::store::Store;

pub use bookings::{AnsweredRequest, BookingFilter, BookingRequest, Render};
pub use payments::{EventOutcome, ObligationReport, STRIPE};

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// `Some(ttl)`: new bookings start as `pending_payment` holds that block their slot for
    /// `ttl` (payments are configured). `None`: bookings are confirmed at once.
    pub hold_ttl: Option<Duration>,
    /// Idempotency lease and retention.
    pub idempotency: IdempotencyPolicy,
    /// The longest booking accepted (default 24 hours).
    pub max_booking_length: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            hold_ttl: None,
            idempotency: IdempotencyPolicy::default(),
            max_booking_length: Duration::hours(24),
        }
    }
}

/// The booking engine: every use case, over a [`Store`] and a [`Clock`].
///
/// Build one over any adapter (`booking-memory`, `booking-postgres` or your own) with
/// [`BookingEngine::new`]; the repository's `examples/` show a complete program.
pub struct BookingEngine<S: ?Sized, C> {
    store: Arc<S>,
    clock: C,
    config: EngineConfig,
    payments: Option<Arc<dyn crate::payment::PaymentGateway>>,
}

impl<S: ?Sized, C: Clone> Clone for BookingEngine<S, C> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: self.clock.clone(),
            config: self.config,
            payments: self.payments.clone(),
        }
    }
}

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// An engine over `store`, reading time from `clock`.
    pub fn new(store: Arc<S>, clock: C, config: EngineConfig) -> Self {
        Self {
            store,
            clock,
            config,
            payments: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current instant, from the clock, truncated to whole microseconds: the finest
    /// precision every store keeps (PostgreSQL's), so what is stored reads back equal.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }
}
