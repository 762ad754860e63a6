//! Bookings: the list query, the insert result and [`BookingStore`], the one place where
//! "no two active bookings of one professional overlap" is enforced.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cursor, Page};
use crate::domain::{
    Booking, BookingId, BookingStatus, ClientId, ProfessionalId, TimeRange, Transition,
};
use crate::error::Result;

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
    /// booking of the same professional
    /// ([`Error::SlotUnavailable`](crate::Error::SlotUnavailable)). Holds of that professional
    /// that ran out (`hold_expires_at <= now`) and overlap are marked `expired` (with their
    /// event) in the same step. If `booking.request_ref` is set and a booking of the same
    /// professional carries it, that booking is returned as [`Inserted::Existing`] before any
    /// conflict check, and nothing changes.
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
    /// hold also requires its blocked range to be free
    /// ([`Error::SlotUnavailable`](crate::Error::SlotUnavailable)).
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such booking.
    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking>;

    /// Moves an active booking to `range` / `blocked` in one step: the old range is released
    /// and the new one taken, or nothing changes
    /// ([`Error::SlotUnavailable`](crate::Error::SlotUnavailable) when the new blocked range
    /// hits another active booking; the booking's own old range never counts).
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
