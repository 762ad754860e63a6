//! [`RequestStore`]: use cases that span several traits, each still one atomic step, and
//! what they read or store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{BookingStore, DirectoryStore, IdempotencyStore, Inserted, ScheduleStore};
use crate::domain::{Booking, ClientId, Professional, ProfessionalId, TimeRange};
use crate::error::Result;
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use crate::schedule::Schedule;

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
