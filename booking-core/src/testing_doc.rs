//! Small fixtures for doc examples and unit tests. Not part of the public API.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Money, ProfessionalId, TimeRange,
};

/// A booking in `status` and an instant at which a `pending_payment` one is still held.
pub fn sample_booking(status: BookingStatus) -> (Booking, DateTime<Utc>) {
    let now = Utc
        .with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let range = TimeRange::new(now + Duration::hours(1), now + Duration::hours(2))
        .unwrap_or_else(|_| unreachable_range());
    let booking = Booking {
        id: BookingId::new_at(now),
        professional_id: ProfessionalId::new_at(now),
        client_id: ClientId::new_at(now),
        range,
        blocked: range,
        status,
        price: Money {
            amount_cents: 1000,
            currency: Currency::parse("usd").unwrap_or_else(|_| unreachable_currency()),
        },
        hold_expires_at: (status == BookingStatus::PendingPayment)
            .then(|| now + Duration::minutes(15)),
        request_ref: None,
        payment: None,
        created_at: now,
        updated_at: now,
    };
    (booking, now)
}

fn unreachable_range() -> TimeRange {
    panic!("fixture range is valid")
}

fn unreachable_currency() -> Currency {
    panic!("fixture currency is valid")
}
