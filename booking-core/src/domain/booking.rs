use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BookingId, ClientId, ProfessionalId};
use super::money::Money;
use super::time_range::TimeRange;
use crate::error::{Error, Result};
use crate::events::EventKind;

/// Where a booking is in its life.
///
/// ```text
/// pending_payment ──confirm──> confirmed ──cancel──> cancelled
///        │ └──────cancel──────────────────────────> cancelled
///        └──expire──> expired ──confirm (only if the slot is still free)──> confirmed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// A hold that blocks the slot until `hold_expires_at`.
    PendingPayment,
    /// Booked for good.
    Confirmed,
    /// Cancelled by a party; the slot is free.
    Cancelled,
    /// The hold ran out before payment; the slot is free.
    Expired,
}

impl BookingStatus {
    /// The wire name, e.g. `pending_payment`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BookingStatus::PendingPayment => "pending_payment",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Expired => "expired",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending_payment" => BookingStatus::PendingPayment,
            "confirmed" => BookingStatus::Confirmed,
            "cancelled" => BookingStatus::Cancelled,
            "expired" => BookingStatus::Expired,
            _ => {
                return Err(Error::invalid(
                    "status",
                    "must be one of pending_payment, confirmed, cancelled, expired",
                ));
            }
        })
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A requested change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Payment arrived: `pending_payment -> confirmed`, or `expired -> confirmed` when the
    /// slot is still free.
    Confirm,
    /// `pending_payment | confirmed -> cancelled`.
    Cancel,
    /// The hold ran out: `pending_payment -> expired` once `hold_expires_at <= now`.
    Expire,
}

/// The input of a new booking, before the engine prices and checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBooking {
    /// Who is booked.
    pub professional_id: ProfessionalId,
    /// Who books.
    pub client_id: ClientId,
    /// The booked range.
    pub range: TimeRange,
}

/// A booking of a professional's time by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Identity.
    pub id: BookingId,
    /// Who is booked.
    pub professional_id: ProfessionalId,
    /// Who booked.
    pub client_id: ClientId,
    /// The booked range.
    pub range: TimeRange,
    /// The booked range widened by the buffers in force when it was booked; this is what
    /// conflicts are checked on.
    pub blocked: TimeRange,
    /// Current stored status (see [`Booking::effective_status`] for holds that ran out).
    pub status: BookingStatus,
    /// Price for the booked range.
    pub price: Money,
    /// When a `pending_payment` hold stops blocking its slot.
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// The idempotent request that created the booking, if any (an opaque
    /// [`crate::idempotency::request_ref`] string). A retry of that request finds this booking
    /// instead of creating a second one.
    pub request_ref: Option<String>,
    /// The payment of a booking made with payments configured (see [`crate::payment`]).
    #[serde(default)]
    pub payment: Option<crate::payment::Payment>,
    /// When the booking was created.
    pub created_at: DateTime<Utc>,
    /// When the booking last changed.
    pub updated_at: DateTime<Utc>,
}

/// What applying a transition to a booking would do; the store carries it out atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// The booking after the change.
    pub booking: Booking,
    /// Whether the store must first check that `booking.blocked` overlaps no other active
    /// booking (re-confirming an expired hold).
    pub requires_free_slot: bool,
    /// The domain event to record with the change.
    pub event: EventKind,
}

impl Booking {
    /// Whether the booking blocks its slot at `now`: confirmed, or a hold that has not run out.
    ///
    /// ```
    /// # use booking_core::testing_doc::sample_booking;
    /// use booking_core::BookingStatus;
    /// let (b, now) = sample_booking(BookingStatus::PendingPayment);
    /// assert!(b.is_active(now));
    /// assert!(!b.is_active(b.hold_expires_at.unwrap()));
    /// ```
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            BookingStatus::Confirmed => true,
            BookingStatus::PendingPayment => self.hold_expires_at.is_some_and(|t| t > now),
            BookingStatus::Cancelled | BookingStatus::Expired => false,
        }
    }

    /// The status as seen at `now`: a hold whose `hold_expires_at <= now` is `expired`
    /// even before the sweep has stored that.
    pub fn effective_status(&self, now: DateTime<Utc>) -> BookingStatus {
        if self.status == BookingStatus::PendingPayment && !self.is_active(now) {
            BookingStatus::Expired
        } else {
            self.status
        }
    }

    /// Plans `transition` at `now`. Illegal transitions are [`Error::InvalidState`].
    pub fn plan(&self, transition: Transition, now: DateTime<Utc>) -> Result<PlannedChange> {
        let effective = self.effective_status(now);
        let mut next = self.clone();
        next.updated_at = now;
        let (status, requires_free_slot, event) = match (transition, effective) {
            (Transition::Confirm, BookingStatus::PendingPayment) => {
                (BookingStatus::Confirmed, false, EventKind::BookingConfirmed)
            }
            (Transition::Confirm, BookingStatus::Expired) => {
                (BookingStatus::Confirmed, true, EventKind::BookingConfirmed)
            }
            (Transition::Cancel, BookingStatus::PendingPayment | BookingStatus::Confirmed) => {
                (BookingStatus::Cancelled, false, EventKind::BookingCancelled)
            }
            (Transition::Expire, BookingStatus::Expired) if self.status != effective => {
                (BookingStatus::Expired, false, EventKind::BookingExpired)
            }
            (t, s) => {
                return Err(Error::InvalidState(format!(
                    "cannot {} a booking that is {s}",
                    match t {
                        Transition::Confirm => "confirm",
                        Transition::Cancel => "cancel",
                        Transition::Expire => "expire",
                    }
                )));
            }
        };
        next.status = status;
        if status != BookingStatus::PendingPayment {
            next.hold_expires_at = match status {
                // Keep the time the hold ran out for the record.
                BookingStatus::Expired => self.hold_expires_at,
                _ => None,
            };
        }
        Ok(PlannedChange {
            booking: next,
            requires_free_slot,
            event,
        })
    }

    /// Plans moving an active booking to `range` with the new `blocked` range.
    /// The booked duration must stay the same (the price was fixed for it).
    pub fn plan_reschedule(
        &self,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<PlannedChange> {
        if !self.is_active(now) {
            return Err(Error::InvalidState(format!(
                "cannot reschedule a booking that is {}",
                self.effective_status(now)
            )));
        }
        if range.duration() != self.range.duration() {
            return Err(Error::invalid(
                "end",
                "a reschedule keeps the booked duration; cancel and book again to change it",
            ));
        }
        if !blocked.contains(&range) {
            return Err(Error::Internal(
                "blocked range must contain the booked range".into(),
            ));
        }
        let mut next = self.clone();
        next.range = range;
        next.blocked = blocked;
        next.updated_at = now;
        Ok(PlannedChange {
            booking: next,
            requires_free_slot: true,
            event: EventKind::BookingRescheduled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing_doc::sample_booking;
    use chrono::Duration;

    const ALL: [BookingStatus; 4] = [
        BookingStatus::PendingPayment,
        BookingStatus::Confirmed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
    ];
    const TRANSITIONS: [Transition; 3] =
        [Transition::Confirm, Transition::Cancel, Transition::Expire];

    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        for status in ALL {
            for t in TRANSITIONS {
                let (b, now) = sample_booking(status);
                let result = b
                    .plan(t, now)
                    .map(|p| (p.booking.status, p.requires_free_slot));
                let expected = match (status, t) {
                    (BookingStatus::PendingPayment, Transition::Confirm) => {
                        Some((BookingStatus::Confirmed, false))
                    }
                    (
                        BookingStatus::PendingPayment | BookingStatus::Confirmed,
                        Transition::Cancel,
                    ) => Some((BookingStatus::Cancelled, false)),
                    (BookingStatus::Expired, Transition::Confirm) => {
                        Some((BookingStatus::Confirmed, true))
                    }
                    _ => None,
                };
                match expected {
                    Some(e) => assert_eq!(result.unwrap(), e, "{status} {t:?}"),
                    None => assert!(
                        matches!(result, Err(Error::InvalidState(_))),
                        "{status} {t:?} should be refused, got {result:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_hold_expires_exactly_at_its_deadline() {
        let (b, _) = sample_booking(BookingStatus::PendingPayment);
        let deadline = b.hold_expires_at.unwrap();
        assert!(b.is_active(deadline - Duration::nanoseconds(1)));
        assert!(!b.is_active(deadline));
        assert!(
            b.plan(Transition::Expire, deadline - Duration::seconds(1))
                .is_err()
        );
        let p = b.plan(Transition::Expire, deadline).unwrap();
        assert_eq!(p.booking.status, BookingStatus::Expired);
        // Cancelling a hold that ran out is refused; confirming it needs a free slot.
        assert!(b.plan(Transition::Cancel, deadline).is_err());
        assert!(
            b.plan(Transition::Confirm, deadline)
                .unwrap()
                .requires_free_slot
        );
    }

    #[test]
    fn reschedule_keeps_duration_and_needs_an_active_booking() {
        let (b, now) = sample_booking(BookingStatus::Confirmed);
        let moved = TimeRange::new(
            b.range.start() + Duration::hours(2),
            b.range.end() + Duration::hours(2),
        )
        .unwrap();
        let p = b.plan_reschedule(moved, moved, now).unwrap();
        assert_eq!(p.booking.range, moved);
        let longer = TimeRange::new(moved.start(), moved.end() + Duration::minutes(5)).unwrap();
        assert!(matches!(
            b.plan_reschedule(longer, longer, now),
            Err(Error::Invalid(_))
        ));
        let (c, now) = sample_booking(BookingStatus::Cancelled);
        assert!(matches!(
            c.plan_reschedule(moved, moved, now),
            Err(Error::InvalidState(_))
        ));
    }

    #[test]
    fn status_wire_names_roundtrip() {
        for s in ALL {
            assert_eq!(BookingStatus::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(BookingStatus::parse("done").is_err());
    }

    #[test]
    fn status_prints_its_wire_name() {
        for s in ALL {
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(BookingStatus::PendingPayment.to_string(), "pending_payment");
    }

    #[test]
    fn effective_status_only_turns_a_lapsed_hold_into_expired() {
        for status in ALL {
            let (b, now) = sample_booking(status);
            assert_eq!(b.effective_status(now), status, "{status} while held");
            let long_after = now + Duration::days(1);
            let want = match status {
                BookingStatus::PendingPayment => BookingStatus::Expired,
                other => other,
            };
            assert_eq!(b.effective_status(long_after), want, "{status} a day later");
        }
    }

    #[test]
    fn each_transition_records_its_event_and_settles_the_hold_deadline() {
        let (hold, now) = sample_booking(BookingStatus::PendingPayment);
        let deadline = hold.hold_expires_at.unwrap();
        let later = now + Duration::minutes(1);

        let confirmed = hold.plan(Transition::Confirm, later).unwrap();
        assert_eq!(confirmed.event, EventKind::BookingConfirmed);
        assert_eq!(confirmed.booking.hold_expires_at, None);
        assert_eq!(confirmed.booking.updated_at, later);

        let cancelled = hold.plan(Transition::Cancel, later).unwrap();
        assert_eq!(cancelled.event, EventKind::BookingCancelled);
        assert_eq!(cancelled.booking.hold_expires_at, None);

        let expired = hold.plan(Transition::Expire, deadline).unwrap();
        assert_eq!(expired.event, EventKind::BookingExpired);
        assert_eq!(expired.booking.hold_expires_at, Some(deadline));

        let reconfirmed = expired.booking.plan(Transition::Confirm, deadline).unwrap();
        assert!(reconfirmed.requires_free_slot);
        assert_eq!(reconfirmed.event, EventKind::BookingConfirmed);
        assert_eq!(reconfirmed.booking.hold_expires_at, None);
    }

    #[test]
    fn a_refused_transition_names_the_effective_status() {
        let (b, now) = sample_booking(BookingStatus::Cancelled);
        let Err(Error::InvalidState(msg)) = b.plan(Transition::Confirm, now) else {
            panic!("cancelled bookings cannot be confirmed")
        };
        assert_eq!(msg, "cannot confirm a booking that is cancelled");
        let (hold, _) = sample_booking(BookingStatus::PendingPayment);
        let deadline = hold.hold_expires_at.unwrap();
        let Err(Error::InvalidState(msg)) = hold.plan(Transition::Cancel, deadline) else {
            panic!("a lapsed hold cannot be cancelled")
        };
        assert_eq!(msg, "cannot cancel a booking that is expired");
    }

    #[test]
    fn a_reschedule_moves_both_ranges_and_needs_a_free_slot() {
        let (b, now) = sample_booking(BookingStatus::PendingPayment);
        let moved = TimeRange::new(
            b.range.start() + Duration::hours(3),
            b.range.end() + Duration::hours(3),
        )
        .unwrap();
        let blocked = TimeRange::new(moved.start() - Duration::minutes(10), moved.end()).unwrap();
        let p = b.plan_reschedule(moved, blocked, now).unwrap();
        assert!(p.requires_free_slot);
        assert_eq!(p.event, EventKind::BookingRescheduled);
        assert_eq!((p.booking.range, p.booking.blocked), (moved, blocked));
        assert_eq!(p.booking.status, BookingStatus::PendingPayment);
        assert_eq!(p.booking.updated_at, now);
        // A blocked range narrower than the booked one is a bug of the caller.
        assert!(matches!(
            b.plan_reschedule(blocked, moved, now),
            Err(Error::Invalid(_))
        ));
        let narrow = TimeRange::new(moved.start() + Duration::minutes(1), moved.end()).unwrap();
        assert!(matches!(
            b.plan_reschedule(moved, narrow, now),
            Err(Error::Internal(_))
        ));
        // A hold that ran out can no longer move.
        let deadline = b.hold_expires_at.unwrap();
        assert!(matches!(
            b.plan_reschedule(moved, moved, deadline),
            Err(Error::InvalidState(_))
        ));
    }
}
