//! Domain types: identifiers, money, time ranges, professionals, clients and bookings.

mod booking;
mod client;
mod ids;
mod money;
mod professional;
mod time_range;

pub use booking::{Booking, BookingStatus, NewBooking, Transition};
pub use client::{Client, NewClient};
pub use ids::{BookingId, ClientId, DeliveryId, EventId, ProfessionalId, SubscriptionId};
pub use money::{Currency, Money, price_for};
pub use professional::{
    Category, GeoPoint, NewProfessional, Professional, ProfessionalPatch, parse_timezone,
};
pub use time_range::TimeRange;
