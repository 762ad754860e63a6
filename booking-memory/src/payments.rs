//! [`PaymentStore`] for [`MemoryStore`]: each method is one critical section under the
//! booking's shard mutex; the idempotency table, the inbox and the payment maps are leaf
//! locks taken alone inside it.

use async_trait::async_trait;
use booking_core::idempotency::LeaseId;
use booking_core::payment::{
    ObligationMet, Payment, PaymentChange, apply_change, meet_obligation, needs_free_slot,
    obligation,
};
use booking_core::store::{PaymentStore, RequestAnswer, Settled};
use booking_core::webhook::inbox::InboxKey;
use booking_core::{Booking, BookingId, BookingStatus, Entity, Error, EventKind, Result};
use chrono::{DateTime, Utc};

use crate::MemoryStore;
use crate::shard::Effects;
use crate::sync::lock;

impl MemoryStore {
    /// Indexes a booking's payment: by intent, and as possibly owing a provider call.
    pub(crate) fn track_payment(&self, b: &Booking, p: &Payment) {
        lock(&self.intents).insert(p.intent_id.clone(), (b.id, b.professional_id));
        self.note_settlement(b);
    }

    /// Keeps `unsettled` in step with a booking's payment: a payment whose intent is closed
    /// and that owes no refund (or whose refund was issued) can never owe a call again.
    fn note_settlement(&self, b: &Booking) {
        let Some(p) = &b.payment else {
            return;
        };
        let finished = p.intent_closed && (!p.refund_owed || p.refund_id.is_some());
        let mut unsettled = lock(&self.unsettled);
        if finished {
            unsettled.remove(&b.id);
        } else {
            unsettled.insert(b.id, b.professional_id);
        }
    }

    fn attach_payment_now(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool)> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?;
        match &current.payment {
            Some(p) if p.intent_id == payment.intent_id => return Ok((current.clone(), false)),
            Some(_) => {
                return Err(Error::InvalidState(
                    "the booking already has another payment".into(),
                ));
            }
            None => {}
        }
        let mut next = current.clone();
        next.payment = Some(payment.clone());
        next.updated_at = now;
        let mut fx = Effects::default();
        let stored = s.replace(next, None, None, &mut fx)?;
        self.track_payment(&stored, payment);
        let answered = answer.is_some_and(|a| {
            lock(&self.idempotency).complete(&a.scope, &a.key, a.lease, &a.response)
        });
        self.commit(fx);
        Ok((stored, answered))
    }

    fn release_unpaid_hold_now(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?;
        if current.status != BookingStatus::PendingPayment || current.payment.is_some() {
            return Ok(None);
        }
        let mut next = current.clone();
        next.status = BookingStatus::Expired;
        next.hold_expires_at = Some(now.min(current.hold_expires_at.unwrap_or(now)));
        next.request_ref = None;
        next.updated_at = now;
        if let Some(r) = &current.request_ref {
            let r = r.clone();
            s.forget_request(&r, id);
        }
        let mut fx = Effects::default();
        let released = s.replace(next, Some(EventKind::BookingExpired), None, &mut fx)?;
        self.commit(fx);
        Ok(Some(released))
    }

    fn settle_payment_now(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?.clone();
        // The inbox is taken under the shard mutex and no other lock is taken while it is
        // held, so checking the lease, changing the booking and settling the event are one
        // critical section.
        let mut inbox = lock(&self.inbox);
        if !inbox.owns(key, lease) {
            return Ok(None);
        }
        let mut due = Vec::new();
        let slot_free = if needs_free_slot(&current, change, now) {
            match s.scan(&current.blocked, now, Some(id)) {
                Ok(d) => {
                    due = d;
                    true
                }
                Err(Error::SlotUnavailable) => false,
                Err(e) => return Err(e),
            }
        } else {
            false
        };
        let mut fx = Effects::default();
        let (booking, outcome) = match apply_change(&current, change, slot_free, now) {
            Some(plan) => {
                // Holds in the way ran out; they are expired before the range is taken.
                if plan.booking.status == BookingStatus::Confirmed && !due.is_empty() {
                    s.expire_holds(&due, now, &mut fx)?;
                }
                let stored = s.replace(plan.booking, plan.event, None, &mut fx)?;
                (stored, Some(plan.outcome))
            }
            None => (current, None),
        };
        inbox.mark_processed(key, lease, now);
        drop(inbox);
        self.note_settlement(&booking);
        self.commit(fx);
        Ok(Some(Settled { booking, outcome }))
    }

    fn obligation_met_now(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?.clone();
        let booking = match meet_obligation(&current, met, now) {
            Some(next) => {
                let mut fx = Effects::default();
                let stored = s.replace(next, None, None, &mut fx)?;
                self.commit(fx);
                stored
            }
            None => current,
        };
        self.note_settlement(&booking);
        Ok(booking)
    }

    fn payment_obligations_now(&self, now: DateTime<Utc>, limit: usize) -> Vec<Booking> {
        let candidates: Vec<_> = lock(&self.unsettled)
            .iter()
            .map(|(id, pro)| (*id, *pro))
            .collect();
        let mut due: Vec<Booking> = candidates
            .into_iter()
            .filter_map(|(id, pro)| {
                let shard = self.shard(pro)?;
                let s = lock(&shard);
                s.get(id).filter(|b| obligation(b, now).is_some()).cloned()
            })
            .collect();
        due.sort_by_key(|b| (b.updated_at, b.id));
        due.truncate(limit);
        due
    }

    fn booking_by_intent_now(&self, intent_id: &str) -> Option<Booking> {
        let (id, pro) = lock(&self.intents).get(intent_id).copied()?;
        let shard = self.shard(pro)?;
        let s = lock(&shard);
        s.get(id).cloned()
    }
}

#[async_trait]
impl PaymentStore for MemoryStore {
    async fn attach_payment(
        &self,
        id: BookingId,
        payment: &Payment,
        answer: Option<&RequestAnswer>,
        now: DateTime<Utc>,
    ) -> Result<(Booking, bool)> {
        self.attach_payment_now(id, payment, answer, now)
    }

    async fn release_unpaid_hold(
        &self,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Option<Booking>> {
        self.release_unpaid_hold_now(id, now)
    }

    async fn settle_payment(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        id: BookingId,
        change: PaymentChange,
        now: DateTime<Utc>,
    ) -> Result<Option<Settled>> {
        self.settle_payment_now(key, lease, id, change, now)
    }

    async fn booking_by_intent(&self, intent_id: &str) -> Result<Option<Booking>> {
        Ok(self.booking_by_intent_now(intent_id))
    }

    async fn payment_obligations(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        Ok(self.payment_obligations_now(now, limit))
    }

    async fn obligation_met(
        &self,
        id: BookingId,
        met: &ObligationMet,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.obligation_met_now(id, met, now)
    }
}
