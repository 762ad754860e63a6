//! [`PaymentStore`]: payments kept on bookings.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RequestAnswer;
use crate::domain::{Booking, BookingId};
use crate::error::Result;
use crate::idempotency::LeaseId;
use crate::payment::{ObligationMet, Payment, PaymentChange, PaymentOutcome};
use crate::webhook::inbox::InboxKey;

/// What [`PaymentStore::settle_payment`](super::PaymentStore::settle_payment) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The booking afterwards (unchanged if the event changed nothing).
    pub booking: Booking,
    /// What the event decided; `None` if it changed nothing (a duplicate or a late event).
    pub outcome: Option<PaymentOutcome>,
}

/// Payments kept on bookings (see [`crate::payment`]). Each method is one atomic step.
#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Attaches `payment` to booking `id` if it has none yet, and stores `answer` (if any) in
    /// the same step while `answer.lease` still owns its record. If the booking already has the
    /// same intent, nothing changes. Returns the booking and whether the answer was stored.
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such booking;
    /// [`Error::InvalidState`](crate::Error::InvalidState) if it has another intent.
    async fn attach_payment(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool)>;

    /// Releases a hold whose intent could not be created: if booking `id` is still
    /// `pending_payment` without a payment, it becomes `expired` at `now` (recording
    /// `booking_expired`) and loses its request reference, so a retry of the request books
    /// afresh. Returns the booking afterwards, or `None` if it was not such a hold.
    async fn release_unpaid_hold(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>>;

    /// Applies a provider event to booking `id` and marks inbox event `key` processed, as one
    /// atomic step, using [`crate::payment::apply_change`] (asking it whether the booking's
    /// blocked range is free of other active bookings when [`crate::payment::needs_free_slot`]
    /// says so; holds that ran out by `now` do not count). Nothing happens unless `lease` still
    /// owns the pending event: then `Ok(None)`. [`Error::NotFound`](crate::Error::NotFound) if
    /// there is no booking `id` (the event is not marked).
    async fn settle_payment(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>>;

    /// The booking whose payment has intent `intent_id`, if any.
    async fn booking_by_intent(&self, intent_id: &str) -> Result<Option<Booking>>;

    /// Up to `limit` bookings with an [`crate::payment::obligation`] at `now`, oldest change
    /// first.
    async fn payment_obligations(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>>;

    /// Records the provider's answer to an obligation of booking `id`
    /// ([`crate::payment::meet_obligation`]). Returns the booking afterwards.
    async fn obligation_met(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking>;
}
