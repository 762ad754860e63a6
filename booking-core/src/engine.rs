//! [`BookingEngine`]: the use cases, and the only caller of the stores.

mod payments;

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::auth::{Actor, Principal, TokenHash};
use crate::clock::Clock;
use crate::domain::{
    Booking, BookingId, BookingStatus, Client, ClientId, NewClient, NewProfessional, Professional,
    ProfessionalId, ProfessionalPatch, TimeRange, Transition, price_for,
};
use crate::error::{Entity, Error, Result};
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use crate::schedule::Schedule;
use crate::store::{
    BookingContext, BookingOwner, BookingQuery, Cursor, Inserted, Page, ProfessionalQuery,
    Registered, RequestAnswer, Store,
};

pub use payments::{EventOutcome, ObligationReport, STRIPE};

/// Renders a booking as the response of the request that created it.
pub type Render<'a> = dyn Fn(&Booking) -> StoredResponse + Send + Sync + 'a;

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

    // ---- directory -------------------------------------------------------------------

    /// Validates and stores a professional whose API token hashes to `token`.
    pub async fn create_professional(
        &self,
        input: &NewProfessional,
        token: TokenHash,
    ) -> Result<Professional> {
        self.register_professional(input, token, None)
            .await
            .map(Registered::into_inner)
    }

    /// [`create_professional`](Self::create_professional) for an idempotent request: with
    /// `request_ref` (see [`crate::idempotency::request_ref`]) a retry of the same request
    /// returns [`Registered::Existing`] with the professional its first attempt stored
    /// (whose token hash is the first attempt's), and stores nothing.
    pub async fn register_professional(
        &self,
        input: &NewProfessional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        let now = self.now();
        let p = input.validate(ProfessionalId::new_at(now), now)?;
        self.store.insert_professional(&p, token, request_ref).await
    }

    /// A professional by id.
    pub async fn get_professional(&self, id: ProfessionalId) -> Result<Professional> {
        self.store
            .get_professional(id)
            .await?
            .ok_or(Error::NotFound(Entity::Professional))
    }

    /// Updates a professional: the admin or the professional themself.
    pub async fn update_professional(
        &self,
        actor: Actor,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
    ) -> Result<Professional> {
        self.may_manage_professional(actor, id).await?;
        self.store.update_professional(id, patch, self.now()).await
    }

    /// Active professionals matching the query.
    pub async fn search_professionals(
        &self,
        query: &ProfessionalQuery,
    ) -> Result<Page<Professional>> {
        crate::store::check_limit(query.limit)?;
        self.store.search_professionals(query).await
    }

    /// Validates and stores a client whose API token hashes to `token`.
    pub async fn create_client(&self, input: &NewClient, token: TokenHash) -> Result<Client> {
        self.register_client(input, token, None)
            .await
            .map(Registered::into_inner)
    }

    /// [`create_client`](Self::create_client) for an idempotent request; `request_ref` as
    /// for [`register_professional`](Self::register_professional).
    pub async fn register_client(
        &self,
        input: &NewClient,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        let now = self.now();
        let c = input.validate(ClientId::new_at(now), now)?;
        self.store.insert_client(&c, token, request_ref).await
    }

    /// A client by id.
    pub async fn get_client(&self, id: ClientId) -> Result<Client> {
        self.store
            .get_client(id)
            .await?
            .ok_or(Error::NotFound(Entity::Client))
    }

    /// The owner of a bearer token, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        self.store.principal_for_token(TokenHash::of(token)).await
    }

    /// Whether `actor` may change professional `id` (profile, schedule): the admin or the
    /// professional themself. [`Error::NotFound`] if there is no such professional,
    /// [`Error::Forbidden`] otherwise. Servers call it before validating a body, so that a
    /// caller who may not change anything learns that first.
    pub async fn may_manage_professional(&self, actor: Actor, id: ProfessionalId) -> Result<()> {
        // Existence first, so that a missing professional is a 404 for everybody.
        self.get_professional(id).await?;
        match actor {
            Actor::Admin => Ok(()),
            Actor::Professional(p) if p == id => Ok(()),
            _ => Err(Error::Forbidden(
                "only the professional or an admin may change this".into(),
            )),
        }
    }

    // ---- schedules and availability --------------------------------------------------

    /// Replaces a professional's schedule (admin or the professional).
    pub async fn set_schedule(
        &self,
        actor: Actor,
        id: ProfessionalId,
        schedule: Schedule,
    ) -> Result<Schedule> {
        self.may_manage_professional(actor, id).await?;
        self.store.put_schedule(id, &schedule).await?;
        Ok(schedule)
    }

    /// A professional's schedule.
    pub async fn get_schedule(&self, id: ProfessionalId) -> Result<Schedule> {
        self.get_professional(id).await?;
        self.store
            .get_schedule(id)
            .await?
            .ok_or(Error::NotFound(Entity::Schedule))
    }

    /// Bookable slots of `duration` inside `window` (at most 31 days). An inactive
    /// professional or one without a schedule has none.
    pub async fn availability(
        &self,
        id: ProfessionalId,
        window: TimeRange,
        duration: Duration,
    ) -> Result<Vec<TimeRange>> {
        let now = self.now();
        let snapshot = self
            .store
            .availability_snapshot(id, window, now)
            .await?
            .ok_or(Error::NotFound(Entity::Professional))?;
        let Some(schedule) = snapshot.schedule else {
            // Validate the query all the same, so bad input is reported consistently.
            Schedule::always_open(snapshot.professional.timezone).available_slots(
                &window,
                duration,
                now,
                &[],
            )?;
            return Ok(Vec::new());
        };
        if !snapshot.professional.is_active {
            schedule.available_slots(&window, duration, now, &[])?;
            return Ok(Vec::new());
        }
        schedule.available_slots(&window, duration, now, &snapshot.blocked)
    }

    /// The seam where "may this range be booked at all" is decided: the professional is
    /// active, has a schedule whose working hours, notice and horizon admit `range`, and the
    /// range has a sane shape. Returns the blocked range (the range widened by the
    /// schedule's buffers). Conflicts with other bookings are the store's job.
    pub async fn check_bookable(
        &self,
        professional: &Professional,
        range: &TimeRange,
        now: DateTime<Utc>,
    ) -> Result<TimeRange> {
        let schedule = self.schedule_if_active(professional).await?;
        self.check_bookable_with(professional, schedule.as_ref(), range, now)
    }

    /// The professional's schedule when they accept bookings (an inactive professional's
    /// is never looked at).
    async fn schedule_if_active(&self, professional: &Professional) -> Result<Option<Schedule>> {
        if professional.is_active {
            self.store.get_schedule(professional.id).await
        } else {
            Ok(None)
        }
    }

    /// The range's shape: whole minutes, at most [`EngineConfig::max_booking_length`].
    fn shape_ok(config: &EngineConfig, range: &TimeRange) -> Result<()> {
        if !range.is_minute_aligned() {
            return Err(Error::invalid(
                "start",
                "start and end must be whole minutes",
            ));
        }
        if range.duration() > config.max_booking_length {
            return Err(Error::invalid(
                "end",
                format!(
                    "a booking lasts at most {} minutes",
                    config.max_booking_length.num_minutes()
                ),
            ));
        }
        Ok(())
    }

    /// [`BookingEngine::check_bookable`] over a schedule already read (`None`: the
    /// professional has none). Pure: reads nothing.
    pub fn check_bookable_with(
        &self,
        professional: &Professional,
        schedule: Option<&Schedule>,
        range: &TimeRange,
        now: DateTime<Utc>,
    ) -> Result<TimeRange> {
        Self::shape_ok(&self.config, range)?;
        if !professional.is_active {
            return Err(Error::OutsideAvailability(
                "the professional is not accepting bookings".into(),
            ));
        }
        let schedule = schedule.ok_or_else(|| {
            Error::OutsideAvailability("the professional has no schedule yet".into())
        })?;
        // The range must be a slot availability would offer (working hours, notice,
        // horizon, a bookable length, the step grid); bookings are not looked at here.
        let offered = schedule
            .available_slots(range, range.duration(), now, &[])
            .map_err(|_| {
                Error::OutsideAvailability(format!(
                    "bookings last from {} to {} whole minutes",
                    crate::schedule::MIN_SLOT_MINUTES,
                    crate::schedule::MAX_SLOT_MINUTES
                ))
            })?;
        if offered.as_slice() != [*range] {
            // Refused: name the reason. Hours, notice and horizon first, else the grid.
            schedule.admits(range, now)?;
            return Err(Error::OutsideAvailability(format!(
                "bookings start on the professional's {}-minute slot grid, counted from the \
                 start of working hours",
                schedule.slot_step_minutes
            )));
        }
        range.widen(schedule.buffer_before(), schedule.buffer_after())
    }

    /// Books `request.range` for the client: a confirmed booking, or a `pending_payment`
    /// hold when [`EngineConfig::hold_ttl`] is set. A retry of the same idempotent request
    /// returns [`Inserted::Existing`] with the first attempt's booking.
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
    /// `idem.context` is what [`BookingEngine::begin_booking_request`] read for a fresh
    /// claim; without it the engine reads the context itself and first looks for a booking
    /// an earlier attempt of the request created. `idem.render` turns the new booking into the response to store and send. Returns
    /// the outcome and whether the answer was stored with it (not for
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

    async fn visible_booking(&self, actor: Actor, id: BookingId) -> Result<Booking> {
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

    // ---- idempotency -----------------------------------------------------------------

    /// Begins an idempotent request.
    pub async fn begin_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
    ) -> Result<Decision> {
        self.store
            .begin(
                scope,
                key,
                fingerprint,
                self.now(),
                &self.config.idempotency,
            )
            .await
    }

    /// Stores the final response of a started request.
    pub async fn complete_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        self.store.complete(scope, key, lease, response).await
    }

    /// Releases a started request without a stored answer (a 5xx), so a retry runs again.
    pub async fn abandon_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
    ) -> Result<bool> {
        self.store.abandon(scope, key, lease).await
    }

    /// Deletes up to `limit` expired idempotency records.
    pub async fn purge_idempotency(&self, limit: usize) -> Result<u64> {
        self.store.purge_expired(self.now(), limit).await
    }
}
