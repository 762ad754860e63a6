//! The booking use cases of [`BookingEngine`]: creating a booking (plainly or in an
//! idempotent request whose answer is stored with it), reading, listing, cancelling,
//! confirming, rescheduling, and the expiry sweep.

use chrono::{DateTime, Utc};

use super::BookingEngine;
use crate::auth::Actor;
use crate::clock::Clock;
use crate::domain::{
    Booking, BookingId, BookingStatus, ClientId, Professional, ProfessionalId, TimeRange,
    Transition, price_for,
};
use crate::error::{Entity, Error, Result};
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, LeaseId, Scope, StoredResponse};
use crate::schedule::Schedule;
use crate::store::{
    BookingContext, BookingOwner, BookingQuery, Cursor, Inserted, Page, RequestAnswer, Store,
};

/// Renders a booking as the response of the request that created it.
pub type Render<'a> = dyn Fn(&Booking) -> StoredResponse + Send + Sync + 'a;

/// A client's request for a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// Who books.
    pub client_id: ClientId,
    /// Who is booked.
    pub professional_id: ProfessionalId,
    /// The range to book.
    pub range: TimeRange,
    /// The idempotent request this comes from (see [`crate::idempotency::request_ref`]);
    /// a retry with the same reference returns the booking the first attempt created.
    pub request_ref: Option<String>,
}

/// The idempotent request a booking is created in, for
/// [`BookingEngine::create_booking_answered`].
pub struct AnsweredRequest<'a> {
    /// The caller's scope.
    pub scope: &'a Scope,
    /// The request's key.
    pub key: &'a IdempotencyKey,
    /// The lease the attempt holds.
    pub lease: LeaseId,
    /// What [`BookingEngine::begin_booking_request`] read for a fresh claim, if it was
    /// used.
    pub context: Option<BookingContext>,
    /// Renders the new booking as the response to store and send.
    pub render: &'a Render<'a>,
}

impl std::fmt::Debug for AnsweredRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnsweredRequest")
            .field("scope", self.scope)
            .field("key", self.key)
            .field("lease", &self.lease)
            .field("context", &self.context.is_some())
            .finish_non_exhaustive()
    }
}

/// Filters of a booking list; whose bookings is decided by the actor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingFilter {
    /// Only this effective status.
    pub status: Option<BookingStatus>,
    /// Only bookings starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Only this professional's bookings.
    pub professional_id: Option<ProfessionalId>,
    /// Page size (1..=100; `None` = 20).
    pub limit: Option<u32>,
    /// Continue after this cursor.
    pub after: Option<Cursor>,
}

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// Books `request.range` for the client: a confirmed booking, or a `pending_payment` hold
    /// when [`EngineConfig::hold_ttl`](super::EngineConfig::hold_ttl) is set. A retry of the
    /// same idempotent request returns [`Inserted::Existing`] with the first attempt's booking.
    pub async fn create_booking(&self, request: &BookingRequest) -> Result<Inserted> {
        let now = self.now();
        let professional = self.get_professional(request.professional_id).await?;
        if let Some(r) = &request.request_ref
            && let Some(existing) = self
                .store
                .find_booking_by_request(request.professional_id, r)
                .await?
        {
            return self.pay_if_needed(Inserted::Existing(existing)).await;
        }
        self.get_client(request.client_id).await?;
        let schedule = self.schedule_if_active(&professional).await?;
        let booking = self.new_booking(request, &professional, schedule.as_ref(), now)?;
        let inserted = self.store.insert_booking(&booking, now).await?;
        self.pay_if_needed(inserted).await
    }

    /// With payments on, creates and attaches the intent of a hold that has none yet.
    async fn pay_if_needed(&self, inserted: Inserted) -> Result<Inserted> {
        if !self.needs_intent(inserted.booking()) {
            return Ok(inserted);
        }
        Ok(match inserted {
            Inserted::Created(b) => Inserted::Created(self.pay_for_hold(b, None).await?.0),
            Inserted::Existing(b) => Inserted::Existing(self.pay_for_hold(b, None).await?.0),
        })
    }

    /// Begins the idempotent request that creates a booking (see
    /// [`crate::store::RequestStore::begin_booking`]): the decision and, when the request
    /// runs, what [`BookingEngine::create_booking_answered`] needs, in one store call.
    pub async fn begin_booking_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<(Decision, Option<BookingContext>)> {
        let now = self.now();
        let (decision, context) = self
            .store
            .begin_booking(
                scope,
                key,
                fingerprint,
                now,
                &self.config.idempotency,
                client_id,
                professional_id,
            )
            .await?;
        // Only a fresh claim (a record created now) keeps the context: an attempt that took
        // over an earlier one must first look for what that attempt created, and
        // `create_booking_answered` does so when it has no context.
        let fresh = matches!(decision, Decision::Started { first_seen, .. } if first_seen == now);
        Ok((decision, context.filter(|_| fresh)))
    }

    /// [`BookingEngine::create_booking`] for an idempotent request whose answer is stored in
    /// the same atomic step as the booking, so that a crash can never leave a booking whose
    /// key has no answer.
    ///
    /// `idem.context` is what [`BookingEngine::begin_booking_request`] read for a fresh claim;
    /// without it the engine reads the context itself and first looks for a booking an earlier
    /// attempt of the request created. `idem.render` turns the new booking into the response to
    /// store and send. Returns the outcome and whether the answer was stored with it (not for
    /// [`Inserted::Existing`]: the caller answers that one itself).
    pub async fn create_booking_answered(
        &self,
        request: &BookingRequest,
        idem: AnsweredRequest<'_>,
    ) -> Result<(Inserted, bool)> {
        let now = self.now();
        let takeover = idem.context.is_none();
        let context = match idem.context {
            Some(c) => c,
            None => {
                BookingContext::read(&*self.store, request.client_id, request.professional_id)
                    .await?
            }
        };
        let professional = context
            .professional
            .ok_or(Error::NotFound(Entity::Professional))?;
        // A retry that took over an earlier attempt's key looks for what that attempt
        // created before judging the range again (time has passed since).
        if takeover
            && let Some(r) = &request.request_ref
            && let Some(existing) = self
                .store
                .find_booking_by_request(request.professional_id, r)
                .await?
        {
            return Ok((
                self.pay_if_needed(Inserted::Existing(existing)).await?,
                false,
            ));
        }
        if !context.client_exists {
            return Err(Error::NotFound(Entity::Client));
        }
        let booking = self.new_booking(request, &professional, context.schedule.as_ref(), now)?;
        let answer = RequestAnswer {
            scope: idem.scope.clone(),
            key: idem.key.clone(),
            lease: idem.lease,
            response: (idem.render)(&booking),
        };
        if self.payments.is_none() {
            return self
                .store
                .insert_booking_answered(&booking, now, &answer)
                .await;
        }
        // With payments, the answer needs the intent: hold first, then pay, then store the
        // answer with the attached intent (see crate::payment for why in this order).
        match self.store.insert_booking(&booking, now).await? {
            Inserted::Created(hold) => {
                let (paid, answered) = self
                    .pay_for_hold(hold, Some((&answer, idem.render)))
                    .await?;
                Ok((Inserted::Created(paid), answered))
            }
            existing => Ok((self.pay_if_needed(existing).await?, false)),
        }
    }

    /// The booking `request` asks for, checked against the professional and their
    /// schedule (not against other bookings: that is the store's job).
    fn new_booking(
        &self,
        request: &BookingRequest,
        professional: &Professional,
        schedule: Option<&Schedule>,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let blocked = self.check_bookable_with(professional, schedule, &request.range, now)?;
        let price = price_for(
            professional.hourly_rate(),
            request.range.duration().num_minutes(),
        )?;
        let (status, hold_expires_at) = match self.config.hold_ttl {
            Some(ttl) => (BookingStatus::PendingPayment, Some(now + ttl)),
            None => (BookingStatus::Confirmed, None),
        };
        Ok(Booking {
            id: BookingId::new_at(now),
            professional_id: professional.id,
            client_id: request.client_id,
            range: request.range,
            blocked,
            status,
            price,
            hold_expires_at,
            request_ref: request.request_ref.clone(),
            payment: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// The status a reader should see: a hold that ran out reads `expired` even before
    /// the sweep marks it.
    pub fn present(&self, mut b: Booking) -> Booking {
        b.status = b.effective_status(self.now());
        b
    }

    /// A booking the actor may see ([`Error::NotFound`] otherwise). The status is the
    /// effective one: a hold that ran out reads `expired` even before the sweep.
    pub async fn get_booking(&self, actor: Actor, id: BookingId) -> Result<Booking> {
        let b = self.visible_booking(actor, id).await?;
        Ok(self.present(b))
    }

    pub(super) async fn visible_booking(&self, actor: Actor, id: BookingId) -> Result<Booking> {
        let b = self
            .store
            .get_booking(id)
            .await?
            .ok_or(Error::NotFound(Entity::Booking))?;
        let visible = match actor {
            Actor::Admin => true,
            Actor::Client(c) => b.client_id == c,
            Actor::Professional(p) => b.professional_id == p,
        };
        if visible {
            Ok(b)
        } else {
            Err(Error::NotFound(Entity::Booking))
        }
    }

    /// The actor's bookings (admin: all), ordered by `(start, id)`.
    pub async fn list_bookings(
        &self,
        actor: Actor,
        filter: &BookingFilter,
    ) -> Result<Page<Booking>> {
        let limit = crate::store::check_limit(filter.limit.unwrap_or(20))?;
        if let (Some(f), Some(t)) = (filter.from, filter.to)
            && f > t
        {
            return Err(Error::invalid("to", "must not be before from"));
        }
        if let Some(c) = filter.after {
            // Cursors are opaque but travel through clients: refuse positions no booking can
            // have (every store keeps years 1 to 9999) instead of passing them on.
            let plausible = DateTime::from_timestamp_micros(c.primary)
                .is_some_and(|t| (1..=9999).contains(&chrono::Datelike::year(&t)));
            if !plausible {
                return Err(Error::invalid(
                    "cursor",
                    "is not a cursor returned by this list",
                ));
            }
        }
        let owner = match actor {
            Actor::Admin => BookingOwner::All,
            Actor::Client(c) => BookingOwner::Client(c),
            Actor::Professional(p) => BookingOwner::Professional(p),
        };
        let query = BookingQuery {
            owner,
            status: filter.status,
            from: filter.from,
            to: filter.to,
            professional_id: filter.professional_id,
            limit,
            after: filter.after,
            now: self.now(),
        };
        let mut page = self.store.list_bookings(&query).await?;
        page.items = page.items.into_iter().map(|b| self.present(b)).collect();
        Ok(page)
    }

    /// Cancels a booking: its client, its professional or the admin.
    ///
    /// Cancelling a booking that is already cancelled succeeds and changes nothing (no
    /// second event), so a retried cancel, or two parties cancelling at once, both get the
    /// cancelled booking rather than an error. Cancelling an expired hold is
    /// [`Error::InvalidState`].
    pub async fn cancel_booking(&self, actor: Actor, id: BookingId) -> Result<Booking> {
        let b = self.visible_booking(actor, id).await?;
        if b.status == BookingStatus::Cancelled {
            return Ok(b);
        }
        let cancelled = match self
            .store
            .transition_booking_from(&b, Transition::Cancel, self.now())
            .await
        {
            Err(Error::InvalidState(why)) => {
                // Lost a race against another cancel? Then the answer is the same.
                let again = self.visible_booking(actor, id).await?;
                if again.status == BookingStatus::Cancelled {
                    again
                } else {
                    return Err(Error::InvalidState(why));
                }
            }
            other => other?,
        };
        // A cancelled hold's intent is cancelled now; if the provider fails, the sweep
        // tries again (the obligation is stored with the booking).
        match self.discharge(&cancelled).await {
            Ok(Some(_)) => self.visible_booking(actor, id).await,
            _ => Ok(cancelled),
        }
    }

    /// Confirms a booking after payment (a hold, or an expired hold whose slot is still
    /// free). Called by payment processing, not by clients.
    pub async fn confirm_booking(&self, id: BookingId) -> Result<Booking> {
        self.store
            .transition_booking(id, Transition::Confirm, self.now())
            .await
    }

    /// Moves a booking to `range`, atomically: its client only. The new range must be
    /// bookable and free; otherwise nothing changes.
    pub async fn reschedule_booking(
        &self,
        actor: Actor,
        id: BookingId,
        range: TimeRange,
    ) -> Result<Booking> {
        let now = self.now();
        let b = self.visible_booking(actor, id).await?;
        if actor != Actor::Client(b.client_id) {
            return Err(Error::Forbidden(
                "only the booking's client may reschedule it".into(),
            ));
        }
        // Refuse a reschedule of a finished booking before looking at availability, so
        // the answer is about the booking rather than the calendar.
        if !b.is_active(now) {
            return Err(Error::InvalidState(format!(
                "cannot reschedule a booking that is {}",
                b.effective_status(now)
            )));
        }
        let professional = self.get_professional(b.professional_id).await?;
        let blocked = self.check_bookable(&professional, &range, now).await?;
        self.store
            .reschedule_booking_from(&b, range, blocked, now)
            .await
    }

    /// Marks up to `limit` holds that ran out as `expired`; returns them.
    pub async fn expire_due_holds(&self, limit: usize) -> Result<Vec<Booking>> {
        self.store.expire_due_holds(self.now(), limit).await
    }
}
