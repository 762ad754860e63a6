//! Payments: the [`PaymentGateway`] a payment provider implements, the [`Payment`] kept on
//! a booking, and the pure decision of what a provider's event does to a booking.
//!
//! No provider types appear here. The reference server implements the gateway for Stripe;
//! tests use a fake. Every gateway call carries an idempotency key derived from the booking
//! (or from the provider event), the same on every retry, so a retried call never creates
//! a second intent or a second refund.
//!
//! ## The order of "hold the slot" and "create the intent"
//!
//! The engine stores the hold first, then asks the provider for an intent, then attaches the
//! intent to the hold (with the request's idempotent answer in the same atomic step):
//!
//! 1. The hold decides the slot cheaply and without a provider call; a request that loses
//!    the slot costs no intent.
//! 2. If the provider fails, the hold is released at once (marked `expired`, its request
//!    reference cleared) and the request answers 502 `payment_provider_unavailable`: no hold
//!    blocks the slot, and a retry of the request starts over with a new booking.
//! 3. If the process dies between the hold and the attach, the hold blocks its slot only
//!    until `hold_expires_at`, like any unpaid hold, and a retry of the same request finds the
//!    hold by its request reference and creates (or, thanks to the idempotency key, finds)
//!    the same intent. An intent created just before such a crash was never shown to anyone
//!    (its client secret never left the server), so it cannot be paid.
//!
//! The opposite order would spend a provider call on every request that then loses the slot
//! and would leave intents at the provider for bookings that never existed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Booking, BookingId, BookingStatus, Money};
use crate::events::EventKind;

/// The payment attached to a booking held for payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Who processes it, e.g. `stripe`.
    pub provider: String,
    /// The provider's payment intent (`pi_…` at Stripe).
    pub intent_id: String,
    /// What the client's browser needs to pay; kept only while the hold is pending.
    pub client_secret: Option<String>,
    /// The total refunded so far, in minor units (the largest total the provider reported).
    pub amount_refunded_cents: i64,
    /// A payment arrived that the booking cannot honour (its slot was taken after the hold
    /// ran out, or it was cancelled): the engine owes a refund. Never reverts; a booking
    /// with a refund owed is never confirmed.
    pub refund_owed: bool,
    /// The provider's id of the refund the engine issued for [`Payment::refund_owed`].
    pub refund_id: Option<String>,
    /// The intent needs nothing more from the engine: it succeeded, was cancelled, or the
    /// engine's cancel call was answered.
    pub intent_closed: bool,
}

impl Payment {
    /// A fresh payment for an intent just created.
    ///
    /// ```
    /// let p = booking_core::payment::Payment::new("stripe", "pi_1", "pi_1_secret_x");
    /// assert_eq!(p.amount_refunded_cents, 0);
    /// assert!(!p.refund_owed && !p.intent_closed);
    /// ```
    pub fn new(
        provider: impl Into<String>,
        intent_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            intent_id: intent_id.into(),
            client_secret: Some(client_secret.into()),
            amount_refunded_cents: 0,
            refund_owed: false,
            refund_id: None,
            intent_closed: false,
        }
    }
}

/// A provider call the engine owes for a booking, retried by the sweep until the provider
/// answers (see [`obligation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obligation {
    /// The hold ended unpaid (expired or cancelled): cancel its intent.
    CancelIntent,
    /// A payment arrived that the booking cannot honour: refund it.
    Refund,
}

/// The provider call `booking` still needs at `now`, if any.
///
/// ```
/// use booking_core::payment::{obligation, Obligation, Payment};
/// use booking_core::BookingStatus;
/// # let (mut b, now) = booking_core::testing_doc::sample_booking(BookingStatus::Cancelled);
/// b.payment = Some(Payment::new("stripe", "pi_1", "secret"));
/// assert_eq!(obligation(&b, now), Some(Obligation::CancelIntent));
/// ```
pub fn obligation(booking: &Booking, now: DateTime<Utc>) -> Option<Obligation> {
    let p = booking.payment.as_ref()?;
    if p.refund_owed {
        return p.refund_id.is_none().then_some(Obligation::Refund);
    }
    let ended = matches!(
        booking.effective_status(now),
        BookingStatus::Expired | BookingStatus::Cancelled
    );
    (ended && !p.intent_closed).then_some(Obligation::CancelIntent)
}

/// What the provider answered to an [`Obligation`]'s call, for
/// [`crate::store::PaymentStore::obligation_met`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObligationMet {
    /// The intent was cancelled, or can no longer be.
    IntentClosed,
    /// The refund was issued with this provider id.
    Refunded(String),
}

/// `booking` after the provider answered `met`; `None` if that changes nothing.
pub fn meet_obligation(
    booking: &Booking,
    met: &ObligationMet,
    now: DateTime<Utc>,
) -> Option<Booking> {
    let mut next = booking.clone();
    let p = next.payment.as_mut()?;
    match met {
        ObligationMet::IntentClosed => {
            p.intent_closed = true;
            p.client_secret = None;
        }
        ObligationMet::Refunded(id) => {
            if p.refund_id.is_none() {
                p.refund_id = Some(id.clone());
            }
        }
    }
    if next == *booking {
        return None;
    }
    next.updated_at = now;
    Some(next)
}

/// The idempotency key of the intent of `booking`: the same on every retry.
///
/// ```
/// use booking_core::{BookingId, payment::intent_key};
/// let id: BookingId = "0190f0c8-0000-7000-8000-000000000001".parse().unwrap();
/// assert_eq!(intent_key(id), "booking-0190f0c8-0000-7000-8000-000000000001-intent");
/// ```
pub fn intent_key(booking: BookingId) -> String {
    format!("booking-{booking}-intent")
}

/// The idempotency key of the call that cancels the intent of `booking`.
pub fn cancel_key(booking: BookingId) -> String {
    format!("booking-{booking}-cancel")
}

/// The idempotency key of the refund of intent `intent_id`. It is derived from the intent
/// named by the event that made the refund owed, so however many events (or deliveries)
/// ask for it, the provider refunds once.
pub fn refund_key(intent_id: &str) -> String {
    format!("refund-{intent_id}")
}

/// What the engine asks the provider for when a hold is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRequest {
    /// The booking paid for; the provider keeps it in the intent's metadata (`booking_id`).
    pub booking_id: BookingId,
    /// The amount to collect.
    pub amount: Money,
    /// See [`intent_key`].
    pub idempotency_key: String,
}

/// An intent the provider created (or found by its idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIntent {
    /// The provider's intent id.
    pub id: String,
    /// What the client's browser needs to pay.
    pub client_secret: String,
}

/// What a cancel call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The intent is cancelled (now, or it already was).
    Cancelled,
    /// The intent can no longer be cancelled (it succeeded, or is being processed): its
    /// own event decides what happens to the booking.
    NotCancellable,
}

/// A refund the engine owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The intent whose payment is refunded (in full).
    pub intent_id: String,
    /// The booking, for the provider's metadata.
    pub booking_id: BookingId,
    /// See [`refund_key`].
    pub idempotency_key: String,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider could not be reached, timed out, or answered with a server error or a
    /// rate limit: the same call (same idempotency key) may succeed later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request; repeating it will not help.
    #[error("payment provider refused the request: {0}")]
    Rejected(String),
}

impl From<PaymentError> for crate::Error {
    fn from(e: PaymentError) -> Self {
        crate::Error::PaymentProvider(e.to_string())
    }
}

/// A payment provider, as the engine uses it. Implementations bound every call with a
/// timeout, send `idempotency_key` as the provider's idempotency key, and are never called
/// inside a store transaction.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// The provider's name as stored in [`Payment::provider`], e.g. `stripe`.
    fn provider(&self) -> &str;

    /// Creates the intent that pays for a hold.
    async fn create_intent(&self, request: &IntentRequest) -> Result<CreatedIntent, PaymentError>;

    /// Cancels an intent that will not be paid (its hold ran out or was cancelled).
    async fn cancel_intent(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<CancelOutcome, PaymentError>;

    /// Refunds a payment in full; returns the provider's refund id.
    async fn refund(&self, request: &RefundRequest) -> Result<String, PaymentError>;
}

/// What a provider event asks of its booking (see [`crate::store::PaymentStore::settle_payment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentChange {
    /// The intent succeeded: confirm the booking; if it cannot be honoured (cancelled, or
    /// its hold ran out and the slot is taken), owe a refund instead.
    Succeeded,
    /// The intent was cancelled: a pending hold becomes `cancelled`.
    Canceled,
    /// The charge was refunded, `amount_refunded_cents` in total so far.
    Refunded {
        /// The provider's running total.
        amount_refunded_cents: i64,
    },
}

/// What [`apply_change`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Only the payment record changed.
    Recorded,
    /// The booking was confirmed.
    Confirmed,
    /// The payment cannot be honoured: a refund is owed. The booking keeps its status, or
    /// is stored as `expired` if its hold had run out.
    RefundOwed,
    /// The hold was cancelled.
    Cancelled,
}

/// A change [`apply_change`] decided: the store writes `booking` (and records `event`, if
/// any) in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPayment {
    /// What happened.
    pub outcome: PaymentOutcome,
    /// The booking afterwards.
    pub booking: Booking,
    /// The domain event to record with it, if the status changed.
    pub event: Option<EventKind>,
}

/// What [`PaymentChange`] does to `booking` at `now`, given whether its blocked range is
/// free of every other active booking (only asked when it matters, see
/// [`needs_free_slot`]). Pure: stores call it inside their atomic step so that every
/// adapter decides alike.
///
/// Returns `None` when nothing changes: a duplicate, an event for a booking without a
/// payment, or an event that arrives after a later one already decided the outcome. The
/// final state never depends on the order or the number of deliveries of a set of events.
pub fn apply_change(
    booking: &Booking,
    change: PaymentChange,
    slot_free: bool,
    now: DateTime<Utc>,
) -> Option<PlannedPayment> {
    let payment = booking.payment.as_ref()?;
    let effective = booking.effective_status(now);
    let mut next = booking.clone();
    let mut p = payment.clone();
    let outcome = match change {
        PaymentChange::Succeeded => {
            p.intent_closed = true;
            p.client_secret = None;
            if payment.refund_owed || effective == BookingStatus::Confirmed {
                PaymentOutcome::Recorded
            } else if effective == BookingStatus::PendingPayment
                || (effective == BookingStatus::Expired && slot_free)
            {
                next.status = BookingStatus::Confirmed;
                next.hold_expires_at = None;
                PaymentOutcome::Confirmed
            } else {
                p.refund_owed = true;
                next.status = effective;
                PaymentOutcome::RefundOwed
            }
        }
        PaymentChange::Canceled => {
            p.intent_closed = true;
            p.client_secret = None;
            if effective == BookingStatus::PendingPayment {
                next.status = BookingStatus::Cancelled;
                next.hold_expires_at = None;
                PaymentOutcome::Cancelled
            } else {
                next.status = effective;
                PaymentOutcome::Recorded
            }
        }
        PaymentChange::Refunded {
            amount_refunded_cents,
        } => {
            p.amount_refunded_cents = p.amount_refunded_cents.max(amount_refunded_cents);
            PaymentOutcome::Recorded
        }
    };
    next.payment = Some(p);
    if next == *booking {
        return None;
    }
    next.updated_at = now;
    let event = (next.status != booking.status).then_some(match next.status {
        BookingStatus::Confirmed => EventKind::BookingConfirmed,
        BookingStatus::Cancelled => EventKind::BookingCancelled,
        _ => EventKind::BookingExpired,
    });
    Some(PlannedPayment {
        outcome,
        booking: next,
        event,
    })
}

/// Whether [`apply_change`] needs to know if the booking's slot is free: a payment that
/// arrives after the hold ran out confirms only if no other active booking overlaps.
pub fn needs_free_slot(booking: &Booking, change: PaymentChange, now: DateTime<Utc>) -> bool {
    change == PaymentChange::Succeeded
        && booking.effective_status(now) == BookingStatus::Expired
        && booking.payment.as_ref().is_some_and(|p| !p.refund_owed)
}
