//! Domain events, recorded in an outbox atomically with the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Booking, BookingId, EventId, ProfessionalId, TimeRange};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A booking (confirmed or held) was created.
    BookingCreated,
    /// A booking was confirmed.
    BookingConfirmed,
    /// A booking was cancelled.
    BookingCancelled,
    /// A hold ran out.
    BookingExpired,
    /// A booking moved to another range.
    BookingRescheduled,
}

impl EventKind {
    /// The wire name, e.g. `booking_created`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::BookingCreated => "booking_created",
            EventKind::BookingConfirmed => "booking_confirmed",
            EventKind::BookingCancelled => "booking_cancelled",
            EventKind::BookingExpired => "booking_expired",
            EventKind::BookingRescheduled => "booking_rescheduled",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "booking_created" => EventKind::BookingCreated,
            "booking_confirmed" => EventKind::BookingConfirmed,
            "booking_cancelled" => EventKind::BookingCancelled,
            "booking_expired" => EventKind::BookingExpired,
            "booking_rescheduled" => EventKind::BookingRescheduled,
            _ => return None,
        })
    }
}

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Identity; UUID v7, so ids increase with `occurred_at` for one writer.
    pub id: EventId,
    /// What happened.
    pub kind: EventKind,
    /// The booking concerned.
    pub booking_id: BookingId,
    /// Its professional (the shard key).
    pub professional_id: ProfessionalId,
    /// When it happened (the engine's clock).
    pub occurred_at: DateTime<Utc>,
    /// The booking as it was right after the change.
    pub booking: Booking,
    /// For reschedules, the booked range before the move.
    pub previous_range: Option<TimeRange>,
}

impl DomainEvent {
    /// The event describing `booking` right after a change of kind `kind`.
    pub fn new(kind: EventKind, booking: &Booking, previous_range: Option<TimeRange>) -> Self {
        Self {
            id: EventId::new_at(booking.updated_at),
            kind,
            booking_id: booking.id,
            professional_id: booking.professional_id,
            occurred_at: booking.updated_at,
            booking: booking.clone(),
            previous_range,
        }
    }
}

/// A reader of the outbox that delivers events somewhere. Each consumer keeps its own
/// marks: an event is delivered to each consumer independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    /// The relay to NATS JetStream.
    Nats,
    /// The fan-out to outbound webhook subscriptions.
    Webhooks,
}

impl Consumer {
    /// Every consumer.
    pub const ALL: [Consumer; 2] = [Consumer::Nats, Consumer::Webhooks];

    /// The consumer's name, e.g. `nats`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Consumer::Nats => "nats",
            Consumer::Webhooks => "webhooks",
        }
    }
}

/// Events handed to one claimer of a [`Consumer`] (see
/// [`crate::store::OutboxStore::claim_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvents {
    /// The claim; only it may mark these events.
    pub lease: crate::idempotency::LeaseId,
    /// The events, in recording order, at most one per booking.
    pub events: Vec<DomainEvent>,
}
