//! Postgres-only guarantees: the schema itself refuses overlaps, errors map to the core's
//! semantic errors, migrations are re-runnable, expired holds do not block, and races
//! between many real connections have exactly one winner.
//!
//! Each test runs on a fresh database (see `booking_postgres::test_support`). Without a
//! reachable server they print `SKIPPED: postgres unreachable` and return, unless
//! `BOOKING_REQUIRE_POSTGRES=1`, which makes that a failure.
//!
//! The fixtures are here; the tests are by area: `schema`, `bookings`, `races`, `indexes`,
//! `purge`.

#[path = "../common/mod.rs"]
mod common;

mod bookings;
mod indexes;
mod purge;
mod races;
mod schema;

use booking_core::domain::{
    Booking, BookingId, BookingStatus, Client, ClientId, Currency, GeoPoint, Money,
    NewProfessional, Professional, ProfessionalId, TimeRange,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant")
        + Duration::minutes(minutes)
}

fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(t(start), t(end)).expect("valid range")
}

/// A booking of `[start, end)` minutes after t(0), created at t(0).
fn booking(pro: ProfessionalId, start: i64, end: i64, status: BookingStatus) -> Booking {
    Booking {
        id: BookingId::new_at(t(0)),
        professional_id: pro,
        client_id: ClientId::new_at(t(0)),
        range: range(start, end),
        blocked: range(start, end),
        status,
        price: Money::new(1_000, Currency::parse("eur").expect("currency")).expect("money"),
        hold_expires_at: (status == BookingStatus::PendingPayment).then(|| t(15)),
        request_ref: None,
        payment: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn professional() -> Professional {
    NewProfessional {
        name: "Ada".into(),
        category: "massage".into(),
        location: GeoPoint {
            lat: 52.5,
            lng: 13.4,
        },
        hourly_rate_cents: 6_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
    .validate(ProfessionalId::new_at(t(0)), t(0))
    .expect("valid professional")
}

fn client() -> Client {
    Client {
        id: ClientId::new_at(t(0)),
        name: "Lin".into(),
        email: "lin@example.com".into(),
        created_at: t(0),
    }
}
