//! Schedules and availability ([`ScheduleStore`] through the engine).
//!
//! [`ScheduleStore`]: crate::store::ScheduleStore

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_client, new_professional, range, unique};
use crate::auth::{Actor, TokenHash};
use crate::domain::{Booking, GeoPoint, NewProfessional, ProfessionalPatch};
use crate::error::{Entity, Error};
use crate::schedule::Schedule;
use crate::store::Store;

/// `ScheduleStore::put_schedule`: schedules round trip, replace, and belong to one professional.
pub async fn schedule_roundtrip<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let input: crate::schedule::ScheduleInput = serde_json::from_value(serde_json::json!({
        "timezone": "America/New_York",
        "weekly": [
            {"weekday": "mon", "start": "09:00", "end": "12:00"},
            {"weekday": "mon", "start": "13:00", "end": "17:30"},
            {"weekday": "sat", "start": "10:00", "end": "24:00"}
        ],
        "overrides": [{"date": "2027-03-10", "intervals": []}],
        "buffer_before_minutes": 5, "buffer_after_minutes": 15,
        "min_notice_minutes": 120, "horizon_days": 60, "slot_step_minutes": 30
    }))
    .expect("schedule json");
    let schedule = input.validate().expect("valid schedule");
    // Has the always-open schedule from the fixture helper.
    let bare = new_professional(&fx.engine).await;
    fx.engine
        .set_schedule(Actor::Professional(fx.pro.id), fx.pro.id, schedule.clone())
        .await
        .expect("set");
    assert_eq!(
        fx.engine.get_schedule(fx.pro.id).await.expect("get"),
        schedule
    );
    assert_eq!(
        fx.engine.get_schedule(bare.id).await.expect("get"),
        Schedule::always_open(bare.timezone),
        "a schedule belongs to one professional"
    );
    // Replace, not merge.
    let open = Schedule::always_open(fx.pro.timezone);
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, open.clone())
        .await
        .expect("replace");
    assert_eq!(fx.engine.get_schedule(fx.pro.id).await.expect("get"), open);
    let stranger = new_client(&fx.engine).await;
    let r = fx
        .engine
        .set_schedule(Actor::Client(stranger.id), fx.pro.id, schedule.clone())
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))));
    let missing = crate::domain::ProfessionalId::new_at(at(0));
    assert_eq!(
        fx.engine.store().put_schedule(missing, &schedule).await,
        Err(Error::NotFound(Entity::Professional))
    );
}

/// Bookings and moves outside availability are `OutsideAvailability`.
pub async fn booking_outside_availability_is_refused<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    // Working hours 09:00-17:00 Berlin (UTC+1 in March 2027 before the switch) on
    // Monday 2027-03-01; t0 is 08:00 UTC = 09:00 Berlin.
    let input: crate::schedule::ScheduleInput = serde_json::from_value(serde_json::json!({
        "timezone": "Europe/Berlin",
        "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"}],
        "min_notice_minutes": 60, "horizon_days": 30, "slot_step_minutes": 30
    }))
    .expect("json");
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, input.validate().expect("valid"))
        .await
        .expect("set");
    let outside = |r: &Result<Booking, Error>| matches!(r, Err(Error::OutsideAvailability(_)));
    assert!(outside(&fx.book(30, 90).await), "inside notice");
    fx.book(60, 120).await.expect("10:00-11:00 Berlin");
    assert!(outside(&fx.book(420, 500).await), "past 17:00");
    assert!(
        outside(&fx.book(60 * 24, 60 * 24 + 60).await),
        "Tuesday is off"
    );
    assert!(outside(&fx.book(-120, -60).await), "in the past");
    // Only slots that availability would offer: on the 30-minute grid from 09:00, and
    // of a bookable length.
    assert!(outside(&fx.book(125, 155).await), "off the slot grid");
    assert!(outside(&fx.book(120, 121).await), "one minute is too short");
    fx.book(120, 150).await.expect("on the grid, 30 minutes");
    // Not whole minutes.
    let odd =
        crate::domain::TimeRange::new(at(200) + Duration::seconds(30), at(260)).expect("range");
    let r = fx.book_for(&fx.pro, &fx.client, odd).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    // Without a schedule nobody can book.
    let bare = fx
        .engine
        .create_professional(
            &NewProfessional {
                name: "No schedule".into(),
                category: "massage".into(),
                location: GeoPoint { lat: 0.0, lng: 0.0 },
                hourly_rate_cents: 1,
                currency: "eur".into(),
                timezone: "UTC".into(),
                is_active: None,
            },
            TokenHash::of(&unique("t")),
        )
        .await
        .expect("create");
    assert!(outside(
        &fx.book_for(&bare, &fx.client, range(60, 120)).await
    ));
    // Nor with an inactive professional.
    let off = new_professional(&fx.engine).await;
    fx.engine
        .update_professional(
            Actor::Admin,
            off.id,
            &ProfessionalPatch {
                is_active: Some(false),
                ..ProfessionalPatch::default()
            },
        )
        .await
        .expect("deactivate");
    assert!(outside(
        &fx.book_for(&off, &fx.client, range(60, 120)).await
    ));
    // Rescheduling into closed hours is refused and changes nothing.
    let b = fx.book(180, 240).await.expect("b");
    let r = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), b.id, range(60 * 24, 60 * 25))
        .await;
    assert!(matches!(r, Err(Error::OutsideAvailability(_))), "{r:?}");
    assert_eq!(fx.reload(&b).await.range, range(180, 240));
}

/// Availability offers only slots whose blocked range is free, each bookable.
pub async fn availability_excludes_blocked_slots<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let mut s = Schedule::always_open(fx.pro.timezone);
    s.slot_step_minutes = 30;
    s.buffer_after_minutes = 15;
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, s)
        .await
        .expect("set");
    let window = range(0, 240);
    let all = fx
        .engine
        .availability(fx.pro.id, window, Duration::minutes(60))
        .await
        .expect("availability");
    assert!(!all.is_empty());
    let b = fx.book(90, 150).await.expect("book");
    let after = fx
        .engine
        .availability(fx.pro.id, window, Duration::minutes(60))
        .await
        .expect("availability");
    for slot in &after {
        let blocked = slot
            .widen(Duration::zero(), Duration::minutes(15))
            .expect("widen");
        assert!(
            !blocked.overlaps(&b.blocked),
            "{slot:?} hits {:?}",
            b.blocked
        );
        // Every offered slot is bookable.
    }
    assert!(after.len() < all.len());
    let first = after[0];
    fx.book_for(&fx.pro, &fx.client, first)
        .await
        .expect("an offered slot can be booked");
}
