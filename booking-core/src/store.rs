//! Storage traits: use-case sized, each operation atomic.
//!
//! Every method is one transaction in a database adapter and one critical section in the
//! memory adapter. Methods that change a booking record the matching
//! [`DomainEvent`] in the outbox in that same step. The engine
//! never needs a transaction spanning two calls.
//!
//! All traits are object safe; [`Store`] bundles them.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::{Principal, TokenHash};
use crate::domain::{
    Booking, BookingId, BookingStatus, Category, Client, ClientId, EventId, Professional,
    ProfessionalId, ProfessionalPatch, TimeRange, Transition,
};
use crate::domain::{DeliveryId, SubscriptionId};
use crate::error::{Error, Result};
use crate::events::{ClaimedEvents, Consumer, DomainEvent};
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use crate::payment::{ObligationMet, Payment, PaymentChange, PaymentOutcome};
use crate::schedule::Schedule;
use crate::search::{GeoFilter, TextQuery};
use crate::webhook::inbox::{Claimed, InboxEvent, InboxKey, NewInboxEvent, Recorded};
use crate::webhook::outbound::{AttemptOutcome, Delivery, DueDelivery, Subscription};

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// A keyset position: the sort key of the last item returned.
///
/// Rendered as an opaque string; clients must not build their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// Primary sort key (microseconds since the epoch for bookings, cents for professionals).
    pub primary: i64,
    /// Tie breaker: the id.
    pub id: uuid::Uuid,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.primary, self.id.simple())
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "is not a cursor returned by this list");
        let (p, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            primary: p.parse().map_err(|_| bad())?,
            id: uuid::Uuid::try_parse(id).map_err(|_| bad())?,
        })
    }
}

impl Cursor {
    /// The cursor after booking `b` in `(start, id)` order.
    pub fn after_booking(b: &Booking) -> Self {
        Self {
            primary: b.range.start().timestamp_micros(),
            id: b.id.as_uuid(),
        }
    }

    /// The cursor after professional `p` in `(hourly_rate_cents, id)` order.
    pub fn after_professional(p: &Professional) -> Self {
        Self {
            primary: p.hourly_rate_cents,
            id: p.id.as_uuid(),
        }
    }
}

/// Whose bookings a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingOwner {
    /// Every booking (admin).
    All,
    /// One client's.
    Client(ClientId),
    /// One professional's.
    Professional(ProfessionalId),
}

/// A booking list query, ordered by `(start, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingQuery {
    /// Whose bookings.
    pub owner: BookingOwner,
    /// Only this (effective) status: a hold that ran out counts as `expired`.
    pub status: Option<BookingStatus>,
    /// Only bookings starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Only this professional's bookings.
    pub professional_id: Option<ProfessionalId>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Continue after this position.
    pub after: Option<Cursor>,
    /// The instant used to tell live holds from expired ones.
    pub now: DateTime<Utc>,
}

impl BookingQuery {
    /// Whether `b` matches the filters (not the cursor); adapters may use it as the spec.
    pub fn matches(&self, b: &Booking) -> bool {
        let owner = match self.owner {
            BookingOwner::All => true,
            BookingOwner::Client(c) => b.client_id == c,
            BookingOwner::Professional(p) => b.professional_id == p,
        };
        owner
            && self
                .status
                .is_none_or(|s| b.effective_status(self.now) == s)
            && self.from.is_none_or(|f| b.range.start() >= f)
            && self.to.is_none_or(|t| b.range.start() < t)
            && self.professional_id.is_none_or(|p| b.professional_id == p)
    }
}

/// A professional search over active professionals.
///
/// Ordered by `(hourly_rate_cents, id)`, or by `(distance_mm, id)` when [`near`] is set (see
/// [`crate::search`] for the distance and the text match). [`ProfessionalQuery::matches`] and
/// [`ProfessionalQuery::sort_key`] are the specification every store implements.
///
/// [`near`]: ProfessionalQuery::near
#[derive(Debug, Clone, PartialEq)]
pub struct ProfessionalQuery {
    /// Only this category.
    pub category: Option<Category>,
    /// Minimum hourly rate, inclusive.
    pub min_rate_cents: Option<i64>,
    /// Maximum hourly rate, inclusive.
    pub max_rate_cents: Option<i64>,
    /// Only professionals within this radius; also switches the order to distance.
    pub near: Option<GeoFilter>,
    /// Only professionals whose name and category match this text.
    pub text: Option<TextQuery>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Continue after this position (a cursor of the same query).
    pub after: Option<Cursor>,
}

impl ProfessionalQuery {
    /// A query without filters: the first `limit` active professionals by rate.
    pub fn all(limit: u32) -> Self {
        Self {
            category: None,
            min_rate_cents: None,
            max_rate_cents: None,
            near: None,
            text: None,
            limit,
            after: None,
        }
    }

    /// Whether `p` matches the filters (not the cursor).
    pub fn matches(&self, p: &Professional) -> bool {
        p.is_active
            && self.category.as_ref().is_none_or(|c| &p.category == c)
            && self.min_rate_cents.is_none_or(|m| p.hourly_rate_cents >= m)
            && self.max_rate_cents.is_none_or(|m| p.hourly_rate_cents <= m)
            && self.near.is_none_or(|g| g.contains(p.location))
            && self
                .text
                .as_ref()
                .is_none_or(|t| t.matches(&p.name, p.category.as_str()))
    }

    /// `p`'s position in this query's order: `(distance_mm, id)` with a geo filter,
    /// `(hourly_rate_cents, id)` otherwise. Pages hold the keys after `after`, ascending.
    pub fn sort_key(&self, p: &Professional) -> Cursor {
        match &self.near {
            Some(g) => Cursor {
                primary: g.distance_mm(p.location),
                id: p.id.as_uuid(),
            },
            None => Cursor::after_professional(p),
        }
    }

    /// Whether `p` comes after the cursor (always, without one).
    pub fn is_after_cursor(&self, p: &Professional) -> bool {
        self.after.is_none_or(|c| self.sort_key(p) > c)
    }

    /// The distance from the geo filter's centre to `p` in kilometres (whole millimetres,
    /// as ordered), if the query has a geo filter.
    pub fn distance_km(&self, p: &Professional) -> Option<f64> {
        self.near
            .map(|g| crate::search::mm_to_km(g.distance_mm(p.location)))
    }
}

/// The result of inserting a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The booking was stored (and its `BookingCreated` event recorded).
    Created(Booking),
    /// A booking created by the same request (same `request_ref`) already exists; nothing
    /// changed.
    Existing(Booking),
}

impl Inserted {
    /// The booking, either way.
    pub fn booking(&self) -> &Booking {
        match self {
            Inserted::Created(b) | Inserted::Existing(b) => b,
        }
    }
}

/// Bookings: the only place where "no two active bookings of one professional overlap" is
/// enforced.
#[async_trait]
pub trait BookingStore: Send + Sync {
    /// Stores `booking` unless its blocked range overlaps the blocked range of an active
    /// booking of the same professional ([`Error::SlotUnavailable`]). Holds of that
    /// professional that ran out (`hold_expires_at <= now`) and overlap are marked `expired`
    /// (with their event) in the same step. If `booking.request_ref` is set and a booking of
    /// the same professional carries it, that booking is returned as [`Inserted::Existing`]
    /// before any conflict check, and nothing changes.
    async fn insert_booking(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted>;

    /// The booking of `professional_id` created by the request `request_ref`, if any.
    async fn find_booking_by_request(
        &self,
        professional_id: ProfessionalId,
        request_ref: &str,
    ) -> Result<Option<Booking>>;

    /// One booking by id.
    async fn get_booking(&self, id: BookingId) -> Result<Option<Booking>>;

    /// Applies `transition` if [`Booking::plan`] allows it at `now`; re-confirming an expired
    /// hold also requires its blocked range to be free ([`Error::SlotUnavailable`]).
    /// [`Error::NotFound`] if there is no such booking.
    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking>;

    /// Moves an active booking to `range` / `blocked` in one step: the old range is released
    /// and the new one taken, or nothing changes ([`Error::SlotUnavailable`] when the new
    /// blocked range hits another active booking; the booking's own old range never counts).
    async fn reschedule_booking(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking>;

    /// [`BookingStore::transition_booking`] of a booking the caller has just read
    /// (`current`), so that an adapter may skip reading it again. The decision is still
    /// made on the stored row: a `current` that is out of date costs a re-read, never a
    /// wrong answer. The default forgets `current`.
    async fn transition_booking_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.transition_booking(current.id, transition, now).await
    }

    /// [`BookingStore::reschedule_booking`] of a booking the caller has just read; see
    /// [`BookingStore::transition_booking_from`].
    async fn reschedule_booking_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.reschedule_booking(current.id, range, blocked, now)
            .await
    }

    /// A page of bookings in `(start, id)` order.
    async fn list_bookings(&self, query: &BookingQuery) -> Result<Page<Booking>>;

    /// Blocked ranges of the professional's bookings active at `now` that overlap `window`,
    /// sorted by start.
    async fn blocked_ranges(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TimeRange>>;

    /// Marks up to `limit` holds with `hold_expires_at <= now` as `expired`, recording their
    /// events; returns the bookings changed.
    async fn expire_due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>>;
}

/// The result of storing a professional or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered<T> {
    /// The subject was stored with its token hash.
    Created(T),
    /// A subject stored by the same request (same `request_ref`) already exists: it is
    /// returned as it is now, and nothing changed (its token hash is the first attempt's).
    Existing(T),
}

impl<T> Registered<T> {
    /// The subject, either way.
    pub fn get(&self) -> &T {
        match self {
            Registered::Created(t) | Registered::Existing(t) => t,
        }
    }

    /// The subject, either way, by value.
    pub fn into_inner(self) -> T {
        match self {
            Registered::Created(t) | Registered::Existing(t) => t,
        }
    }
}

/// Professionals, clients and their API tokens.
///
/// A subject may carry the reference of the idempotent request that created it (see
/// [`crate::idempotency::request_ref`]); references are unique across professionals and
/// clients, so a retry of a create after a crash finds the first attempt's subject.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Stores a new professional with the hash of their API token. If `request_ref` is set
    /// and a professional stored with it exists, that one is returned as
    /// [`Registered::Existing`] before any other check, and nothing changes (a client
    /// stored with it: [`Error::AlreadyExists`]).
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>>;

    /// One professional by id.
    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>>;

    /// Applies a validated partial update atomically.
    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional>;

    /// A page of active professionals matching the query.
    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>>;

    /// Stores a new client with the hash of their API token; `request_ref` as for
    /// [`DirectoryStore::insert_professional`].
    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>>;

    /// One client by id.
    async fn get_client(&self, id: ClientId) -> Result<Option<Client>>;

    /// The owner of an API token, if any.
    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>>;
}

/// Professionals' weekly schedules.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Replaces the professional's schedule ([`Error::NotFound`] if no such professional).
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()>;

    /// The professional's schedule, if one was set.
    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>>;
}

/// Idempotency records; see [`crate::idempotency`].
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically looks up `(scope, key)` and applies [`crate::idempotency::decide`].
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision>;

    /// Stores the final response, if `lease` still owns the record (otherwise does nothing
    /// and returns `false`).
    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool>;

    /// Releases the lease of the in-flight record owned by `lease`, so that a retry runs the
    /// request again at once (used after a 5xx). The record itself stays, with its
    /// fingerprint and `created_at`: the retry takes over with the same `first_seen`, hence
    /// the same request reference, and finds whatever the failed attempt committed. Returns
    /// whether a lease was released.
    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool>;

    /// Deletes up to `limit` records with `expires_at <= now`; returns how many.
    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64>;
}

/// The outbox of domain events.
///
/// Consumers ([`Consumer`]) read it through claims: [`OutboxStore::claim_events`] hands a
/// claimer the next unmarked events, at most one per booking (the earliest unmarked one,
/// and only if no live claim holds it), so that per booking events leave in the order they
/// happened even when several claimers run at once; [`OutboxStore::mark_events`] marks
/// them delivered. A claim that is never marked (its claimer died) runs out and the events
/// are handed out again: delivery is at least once, and a consumer deduplicates by event
/// id (NATS JetStream's `Nats-Msg-Id` window, a webhook receiver's `Booking-Event-Id`).
/// Writers take no lock shared with other professionals' writes.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Events in recording order after `after` (exclusive), at most `limit`. Pruned events
    /// are gone; an `after` that names no stored event is [`Error::Invalid`].
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>>;

    /// Claims up to `limit` events `consumer` has not marked, in recording order, each the
    /// earliest unmarked event of its booking and held by no live claim, for `lease` from
    /// `now`. The claim may be empty.
    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents>;

    /// Marks `ids` delivered to `consumer` at `now`, those of them that `lease` still holds
    /// (a claim that ran out and was handed to another claimer no longer does); returns
    /// how many it marked.
    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<usize>;

    /// Deletes up to `limit` events recorded before `older_than` that every consumer in
    /// `consumers` has marked; returns how many. Unmarked events are never pruned.
    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64>;
}

/// The final answer of an idempotent request, to be committed in the same atomic step as
/// the change it reports (see [`RequestStore::insert_booking_answered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAnswer {
    /// The caller's scope.
    pub scope: Scope,
    /// The request's key.
    pub key: IdempotencyKey,
    /// The lease the attempt holds; the answer is stored only while it still owns the record.
    pub lease: LeaseId,
    /// The response to store and replay.
    pub response: StoredResponse,
}

/// What deciding a new booking needs, read in one step (see [`RequestStore::begin_booking`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BookingContext {
    /// The professional to be booked, if they exist.
    pub professional: Option<Professional>,
    /// Their schedule, if one was set.
    pub schedule: Option<Schedule>,
    /// Whether the booking client exists.
    pub client_exists: bool,
}

impl BookingContext {
    /// The context read with one call per part (what a store without a combined read
    /// does).
    pub async fn read<S>(
        store: &S,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<Self>
    where
        S: DirectoryStore + ScheduleStore + ?Sized,
    {
        Ok(Self {
            professional: store.get_professional(professional_id).await?,
            schedule: store.get_schedule(professional_id).await?,
            client_exists: store.get_client(client_id).await?.is_some(),
        })
    }
}

/// What availability needs, read in one step (see [`RequestStore::availability_snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilitySnapshot {
    /// The professional.
    pub professional: Professional,
    /// Their schedule, if one was set.
    pub schedule: Option<Schedule>,
    /// Blocked ranges of their bookings active at `now` that overlap the queried window
    /// widened by the schedule's buffers, sorted by start (empty without a schedule).
    pub blocked: Vec<TimeRange>,
}

/// Use cases that span several of the other traits, each still one atomic step (or, for the
/// reads, one consistent read): what an adapter does in one round trip instead of several.
///
/// `begin_booking` and `availability_snapshot` have default implementations composed of the
/// other traits' methods (correct, one call each); an adapter overrides them to save round
/// trips. `insert_booking_answered` has none: the booking and the request's answer must
/// commit together, which only the adapter can do.
#[async_trait]
pub trait RequestStore: BookingStore + DirectoryStore + ScheduleStore + IdempotencyStore {
    /// [`BookingStore::insert_booking`] and [`IdempotencyStore::complete`] as one atomic
    /// step: when the booking is stored ([`Inserted::Created`]), `answer` is stored in the
    /// same step if `answer.lease` still owns the record. Returns whether the answer was
    /// stored. For [`Inserted::Existing`] (the request's earlier booking) and for errors
    /// nothing is stored, and the caller answers the request itself.
    async fn insert_booking_answered(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: &RequestAnswer,
    ) -> Result<(Inserted, bool)>;

    /// [`IdempotencyStore::begin`] for a new booking by `client_id` of `professional_id`,
    /// and, when the decision is [`Decision::Started`], the [`BookingContext`] read in the
    /// same step.
    #[allow(clippy::too_many_arguments)]
    async fn begin_booking(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
        client_id: ClientId,
        professional_id: ProfessionalId,
    ) -> Result<(Decision, Option<BookingContext>)> {
        let decision = self.begin(scope, key, fingerprint, now, policy).await?;
        if !matches!(decision, Decision::Started { .. }) {
            return Ok((decision, None));
        }
        let context = BookingContext::read(self, client_id, professional_id).await?;
        Ok((decision, Some(context)))
    }

    /// The professional, their schedule and the blocked ranges that can affect slots in
    /// `window` at `now`; `None` if there is no such professional.
    async fn availability_snapshot(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Option<AvailabilitySnapshot>> {
        let Some(professional) = self.get_professional(professional_id).await? else {
            return Ok(None);
        };
        let schedule = self.get_schedule(professional_id).await?;
        let blocked = match &schedule {
            Some(s) => {
                let reach = window
                    .widen(s.buffer_before(), s.buffer_after())
                    .unwrap_or(window);
                self.blocked_ranges(professional_id, reach, now).await?
            }
            None => Vec::new(),
        };
        Ok(Some(AvailabilitySnapshot {
            professional,
            schedule,
            blocked,
        }))
    }
}

/// The inbound webhook inbox; see [`crate::webhook::inbox`] for an event's life.
///
/// Each method is one atomic step. Settling methods (`mark_processed`, `schedule_retry`,
/// `dead_letter`) act only for the lease that claimed the event, and only while the event is
/// still pending under that lease (a later claim, after the lease ran out, takes ownership
/// away); they return whether they did. A lease that ran out but was not yet superseded by
/// another claim may still settle: nobody else is processing the event.
///
/// Applying an event's effect (e.g. confirming a booking) and marking the event processed
/// commit together in [`PaymentStore::settle_payment`]; `mark_processed` alone serves
/// events without an effect on bookings.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Records a new event, pending and due at `now`. If an event with the same key is
    /// already in the inbox, in any state, nothing changes ([`Recorded::Duplicate`]).
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded>;

    /// The event with this key, in whatever state.
    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>>;

    /// Claims up to `limit` pending events due at `now` (`next_attempt_at <= now`), earliest
    /// first, under one fresh lease that lasts until `now + lease`: each claimed event counts
    /// one more attempt and is not due again until the lease runs out, so no other claimer
    /// gets it meanwhile.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>>;

    /// Marks the event processed at `now` if `lease` owns it; returns whether it did.
    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Releases the claim of `lease` and makes the event due again at `at`, keeping `error`
    /// (clipped, see [`crate::webhook::inbox::clip_error`]) as its last error; returns whether
    /// `lease` owned it.
    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool>;

    /// Moves the event to the dead letters at `now` with `error` (clipped) as its last
    /// error, if `lease` owns it; returns whether it did.
    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// A page of dead-lettered events in `(dead_lettered_at, key.list_id())` order
    /// (`limit` 1..=100, see [`check_limit`]), after `after` (exclusive).
    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>>;

    /// Puts a dead-lettered event back to pending, due at `now`, with its attempt count reset
    /// (its last error stays, for the record); returns it. [`Error::NotFound`] if there is no
    /// dead-lettered event with this key.
    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent>;

    /// Deletes up to `limit` processed events with `processed_at < older_than`; returns how
    /// many. Pending and dead-lettered events are never pruned.
    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64>;
}

/// What [`PaymentStore::settle_payment`] did.
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
    /// Attaches `payment` to booking `id` if it has none yet, and stores `answer` (if any)
    /// in the same step while `answer.lease` still owns its record. If the booking already
    /// has the same intent, nothing changes. Returns the booking and whether the answer was
    /// stored. [`Error::NotFound`] if there is no such booking; [`Error::InvalidState`] if it
    /// has another intent.
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

    /// Applies a provider event to booking `id` and marks inbox event `key` processed, as
    /// one atomic step, using [`crate::payment::apply_change`] (asking it whether the
    /// booking's blocked range is free of other active bookings when
    /// [`crate::payment::needs_free_slot`] says so; holds that ran out by `now` do not
    /// count). Nothing happens unless `lease` still owns the pending event: then
    /// `Ok(None)`. [`Error::NotFound`] if there is no booking `id` (the event is not marked).
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

/// What [`SubscriptionStore::record_deliveries`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanOut {
    /// Events marked for [`Consumer::Webhooks`] (those the lease still held).
    pub events_marked: usize,
    /// Deliveries created for them (one per event and matching subscription).
    pub deliveries_created: usize,
}

/// Outbound webhooks: subscriptions and their deliveries (see
/// [`crate::webhook::outbound`]). Each method is one atomic step.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription ([`Error::AlreadyExists`] if its id is taken).
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()>;

    /// One subscription by id.
    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>>;

    /// A page of subscriptions in `(created_at, id)` order (`limit` 1..=100, see
    /// [`check_limit`]), after `after` (exclusive).
    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>>;

    /// Deletes a subscription and its deliveries: no delivery is created for it afterwards,
    /// and an attempt in flight settles nothing. [`Error::NotFound`] if there is none.
    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()>;

    /// The fan-out, exactly once: marks `events` (claimed for [`Consumer::Webhooks`] under
    /// `lease`) and, for each event the lease still held, creates one pending delivery due
    /// at `now` per subscription that [`Subscription::matches`] it, in the same step. An
    /// event the lease no longer holds (it ran out and was claimed again) is neither marked
    /// nor fanned out, so a stale claimer creates nothing.
    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut>;

    /// Claims up to `limit` pending deliveries due at `now`, earliest first, under one fresh
    /// lease until `now + lease`: each counts one more attempt, starts its retry window
    /// (`first_attempt_at`) if not started, and is not due again until the lease runs out, so
    /// no other claimer gets it meanwhile.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>>;

    /// Records the outcome of an attempt if `lease` still owns the pending delivery;
    /// returns whether it did. Errors are clipped
    /// ([`crate::webhook::inbox::clip_error`]).
    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// A page of a subscription's deliveries in `(created_at, id)` order, after `after`.
    /// [`Error::NotFound`] if there is no such subscription.
    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>>;

    /// Sends a delivery again, whatever its status: pending, due at `now`, any claim
    /// released, a new retry window; the id and the attempt count are kept. Returns it.
    /// [`Error::NotFound`] if there is no such delivery.
    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery>;
}

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

/// Page size validation shared by adapters and the server: 1..=100.
pub fn check_limit(limit: u32) -> Result<u32> {
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid("limit", "must be between 1 and 100"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_rejects_garbage() {
        let c = Cursor {
            primary: -42,
            id: uuid::Uuid::from_u128(7),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("nope".parse::<Cursor>().is_err());
        assert!("1.zz".parse::<Cursor>().is_err());
    }
}
