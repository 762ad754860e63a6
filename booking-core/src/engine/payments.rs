//! The payment use cases of [`BookingEngine`]: paying for a hold, the provider calls owed
//! after a hold ends, and applying provider events from the webhook inbox.

use std::sync::Arc;

use chrono::Duration;

use super::BookingEngine;
use crate::clock::Clock;
use crate::domain::{Booking, BookingId, BookingStatus};
use crate::error::{Error, Result};
use crate::payment::{
    CancelOutcome, IntentRequest, Obligation, ObligationMet, Payment, PaymentChange,
    PaymentGateway, PaymentOutcome, RefundRequest, cancel_key, intent_key, obligation, refund_key,
};
use crate::store::{RequestAnswer, Store};
use crate::webhook::inbox::Claimed;
use crate::webhook::{EventError, StripeEvent, StripeEventKind};

/// The provider name under which Stripe events are kept in the inbox.
pub const STRIPE: &str = "stripe";

/// What processing one inbox event did (see [`BookingEngine::process_webhook_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event changed its booking; it is marked processed.
    Applied(PaymentOutcome),
    /// The event changed nothing (a late or repeated effect); it is marked processed.
    Unchanged,
    /// An event type without an effect (e.g. `payment_intent.payment_failed`, unknown
    /// types); it is marked processed.
    Acknowledged,
    /// The event is about no booking of this engine (unknown booking, another intent); it
    /// is marked processed.
    Ignored(&'static str),
    /// The claim's lease no longer owns the event (another worker took it over); nothing
    /// was done.
    LeaseLost,
    /// The stored payload is not an event the engine can read: retrying cannot help, so
    /// the caller dead-letters it.
    Unprocessable(String),
}

/// What one round of [`BookingEngine::discharge_obligations`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObligationReport {
    /// Intents cancelled (or found no longer cancellable).
    pub intents_closed: usize,
    /// Refunds issued.
    pub refunds: usize,
    /// Calls that failed; they are tried again in the next round.
    pub failed: usize,
}

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// Turns payments on: new bookings become `pending_payment` holds lasting `hold_ttl`,
    /// each with an intent created through `gateway`.
    pub fn with_payments(mut self, gateway: Arc<dyn PaymentGateway>, hold_ttl: Duration) -> Self {
        self.payments = Some(gateway);
        self.config.hold_ttl = Some(hold_ttl);
        self
    }

    /// The payment gateway, when payments are on.
    pub fn payments(&self) -> Option<&Arc<dyn PaymentGateway>> {
        self.payments.as_ref()
    }

    /// Whether `booking` is a hold still waiting for its intent (a crash, or a retry, between
    /// the hold and the attach).
    pub(super) fn needs_intent(&self, booking: &Booking) -> bool {
        self.payments.is_some()
            && booking.payment.is_none()
            && booking.is_active(self.now())
            && booking.status == BookingStatus::PendingPayment
    }

    /// Creates the intent of a fresh hold and attaches it, storing `answer` (rendered with
    /// the payment) in the same step. If the provider fails, the hold is released so it
    /// blocks nothing, and the error is [`Error::PaymentProvider`].
    pub(super) async fn pay_for_hold(
        &self,
        hold: Booking,
        answer: Option<(&RequestAnswer, &super::Render<'_>)>,
    ) -> Result<(Booking, bool)> {
        let Some(gateway) = self.payments.as_ref() else {
            return Ok((hold, false));
        };
        let request = IntentRequest {
            booking_id: hold.id,
            amount: hold.price,
            idempotency_key: intent_key(hold.id),
        };
        let intent = match gateway.create_intent(&request).await {
            Ok(intent) => intent,
            Err(e) => {
                // Free the slot before answering. If even that fails, the hold still runs
                // out at hold_expires_at, and the provider's error is the better answer.
                let _ = self.store.release_unpaid_hold(hold.id, self.now()).await;
                return Err(e.into());
            }
        };
        let payment = Payment::new(gateway.provider(), intent.id, intent.client_secret);
        // The answer shows the booking exactly as the attach stores it.
        let now = self.now();
        let mut paid = hold.clone();
        paid.payment = Some(payment.clone());
        paid.updated_at = now;
        let answer = answer.map(|(a, render)| RequestAnswer {
            response: render(&paid),
            ..a.clone()
        });
        self.store
            .attach_payment(hold.id, &payment, answer.as_ref(), now)
            .await
    }

    /// Makes the provider calls owed by up to `limit` bookings: cancels the intents of holds
    /// that ended unpaid and issues refunds owed. A call that fails stays owed for the next
    /// round; none of them runs inside a store transaction.
    pub async fn discharge_obligations(&self, limit: usize) -> Result<ObligationReport> {
        let mut report = ObligationReport::default();
        if self.payments.is_none() {
            return Ok(report);
        }
        let due = self.store.payment_obligations(self.now(), limit).await?;
        for booking in due {
            match self.discharge(&booking).await {
                Ok(Some(Obligation::CancelIntent)) => report.intents_closed += 1,
                Ok(Some(Obligation::Refund)) => report.refunds += 1,
                Ok(None) => {}
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Makes the provider call `booking` owes, if any, and records the answer.
    pub(super) async fn discharge(&self, booking: &Booking) -> Result<Option<Obligation>> {
        let (Some(gateway), Some(payment)) = (self.payments.as_ref(), booking.payment.as_ref())
        else {
            return Ok(None);
        };
        let Some(owed) = obligation(booking, self.now()) else {
            return Ok(None);
        };
        let met = match owed {
            Obligation::CancelIntent => {
                match gateway
                    .cancel_intent(&payment.intent_id, &cancel_key(booking.id))
                    .await?
                {
                    CancelOutcome::Cancelled | CancelOutcome::NotCancellable => {
                        ObligationMet::IntentClosed
                    }
                }
            }
            Obligation::Refund => {
                let request = RefundRequest {
                    intent_id: payment.intent_id.clone(),
                    booking_id: booking.id,
                    idempotency_key: refund_key(&payment.intent_id),
                };
                ObligationMet::Refunded(gateway.refund(&request).await?)
            }
        };
        self.store
            .obligation_met(booking.id, &met, self.now())
            .await?;
        Ok(Some(owed))
    }

    /// Processes one claimed inbox event: applies its effect to its booking and marks it
    /// processed in one atomic step ([`crate::store::PaymentStore::settle_payment`]), then
    /// makes any provider call the effect made owed (a refund), outside that step.
    ///
    /// An `Err` is worth retrying (the store or the provider failed); the caller schedules
    /// the retry or dead-letters the event under its [`crate::webhook::RetryPolicy`].
    pub async fn process_webhook_event(&self, claimed: &Claimed) -> Result<EventOutcome> {
        let key = &claimed.event.key;
        let lease = claimed.lease;
        let event = match StripeEvent::parse(&claimed.event.payload) {
            Ok(e) => e,
            // A payment of some other integration on the same provider account.
            Err(EventError::Missing { field }) if field.ends_with("metadata.booking_id") => {
                return self
                    .finish(
                        claimed,
                        EventOutcome::Ignored("the intent names no booking"),
                    )
                    .await;
            }
            Err(e) => return Ok(EventOutcome::Unprocessable(e.to_string())),
        };
        let (booking, change) = match event.kind {
            StripeEventKind::PaymentSucceeded(pi) => (
                self.booking_for(Some(pi.booking_id), &pi.id).await?,
                PaymentChange::Succeeded,
            ),
            StripeEventKind::PaymentCanceled(pi) => (
                self.booking_for(Some(pi.booking_id), &pi.id).await?,
                PaymentChange::Canceled,
            ),
            StripeEventKind::ChargeRefunded(ch) => (
                self.booking_for(ch.booking_id, &ch.payment_intent).await?,
                PaymentChange::Refunded {
                    amount_refunded_cents: ch.amount_refunded.amount_cents,
                },
            ),
            StripeEventKind::PaymentFailed(_) | StripeEventKind::Other(_) => {
                return self.finish(claimed, EventOutcome::Acknowledged).await;
            }
        };
        let Some(id) = booking else {
            return self
                .finish(claimed, EventOutcome::Ignored("no booking has this intent"))
                .await;
        };
        let settled = match self
            .store
            .settle_payment(key, lease, id, change, self.now())
            .await
        {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(EventOutcome::LeaseLost),
            Err(Error::NotFound(_)) => {
                return self
                    .finish(claimed, EventOutcome::Ignored("the booking is gone"))
                    .await;
            }
            Err(e) => return Err(e),
        };
        // A refund this event made owed is issued now; if the provider fails, the sweep
        // issues it later (the obligation is stored with the booking).
        if settled
            .booking
            .payment
            .as_ref()
            .is_some_and(|p| p.refund_owed)
        {
            let _ = self.discharge(&settled.booking).await;
        }
        Ok(match settled.outcome {
            Some(outcome) => EventOutcome::Applied(outcome),
            None => EventOutcome::Unchanged,
        })
    }

    /// The booking an event is about: by `metadata.booking_id` when the event has it, else
    /// by intent; `None` unless that booking's payment is this very intent.
    async fn booking_for(
        &self,
        id: Option<BookingId>,
        intent_id: &str,
    ) -> Result<Option<BookingId>> {
        let booking = match id {
            Some(id) => self.store.get_booking(id).await?,
            None => self.store.booking_by_intent(intent_id).await?,
        };
        Ok(booking
            .filter(|b| b.payment.as_ref().is_some_and(|p| p.intent_id == intent_id))
            .map(|b| b.id))
    }

    /// Marks an event without an effect processed and reports `outcome`.
    async fn finish(&self, claimed: &Claimed, outcome: EventOutcome) -> Result<EventOutcome> {
        let owned = self
            .store
            .mark_processed(&claimed.event.key, claimed.lease, self.now())
            .await?;
        Ok(if owned {
            outcome
        } else {
            EventOutcome::LeaseLost
        })
    }
}
