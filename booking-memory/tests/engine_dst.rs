//! DST through the engine: bookings, reschedules and availability on the days clocks
//! change, and schedules (hours, buffers, time zone) changed while bookings exist, with the
//! memory store. Every expectation is a concrete UTC instant.
//!
//! Europe/Berlin changes on 2026-03-29 (02:00 CET -> 03:00 CEST, at 01:00Z) and on
//! 2026-10-25 (03:00 CEST -> 02:00 CET, at 01:00Z); America/New_York on 2026-03-08
//! (02:00 EST -> 03:00 EDT, at 07:00Z).

#![cfg(not(booking_loom))]
// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use booking_core::schedule::{LocalTime, Schedule, WeeklyInterval};
use booking_core::testing::fixtures::{new_client, new_professional};
use booking_core::{
    Actor, Booking, BookingEngine, BookingRequest, BookingStatus, Client, EngineConfig, Error,
    Inserted, ManualClock, Professional, TimeRange,
};
use booking_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn span(a: DateTime<Utc>, b: DateTime<Utc>) -> TimeRange {
    TimeRange::new(a, b).unwrap()
}

/// `[start, start + minutes)`.
fn from(start: DateTime<Utc>, minutes: i64) -> TimeRange {
    span(start, start + Duration::minutes(minutes))
}

/// Working hours `start`-`end` (local, `"HH:MM"`) on `days` in `tz`, slots every `step`
/// minutes, no notice, no buffers.
fn hours(tz: Tz, days: &[Weekday], start: &str, end: &str, step: u32) -> Schedule {
    let mut s = Schedule::always_open(tz);
    let (start, end): (LocalTime, LocalTime) = (start.parse().unwrap(), end.parse().unwrap());
    s.weekly = days
        .iter()
        .map(|&weekday| WeeklyInterval {
            weekday,
            start,
            end,
        })
        .collect();
    s.slot_step_minutes = step;
    s
}

/// An engine over a fresh memory store at `now`, one professional with `schedule`, one
/// client.
struct Setup {
    engine: BookingEngine<MemoryStore, ManualClock>,
    pro: Professional,
    client: Client,
}

impl Setup {
    async fn new(now: DateTime<Utc>, schedule: Schedule) -> Self {
        let engine = BookingEngine::new(
            Arc::new(MemoryStore::new()),
            ManualClock::new(now),
            EngineConfig::default(),
        );
        let pro = new_professional(&engine).await;
        let client = new_client(&engine).await;
        let setup = Self {
            engine,
            pro,
            client,
        };
        setup.set_schedule(schedule).await;
        setup
    }

    async fn set_schedule(&self, schedule: Schedule) {
        self.engine
            .set_schedule(Actor::Admin, self.pro.id, schedule)
            .await
            .unwrap();
    }

    async fn book(&self, range: TimeRange) -> Result<Booking, Error> {
        let inserted = self
            .engine
            .create_booking(&BookingRequest {
                client_id: self.client.id,
                professional_id: self.pro.id,
                range,
                request_ref: None,
            })
            .await?;
        match inserted {
            Inserted::Created(b) => Ok(b),
            Inserted::Existing(b) => panic!("no request reference, yet found {b:?}"),
        }
    }

    async fn reschedule(&self, b: &Booking, range: TimeRange) -> Result<Booking, Error> {
        self.engine
            .reschedule_booking(Actor::Client(self.client.id), b.id, range)
            .await
    }

    async fn reload(&self, b: &Booking) -> Booking {
        self.engine.get_booking(Actor::Admin, b.id).await.unwrap()
    }

    /// The offered slots of `minutes` in `window`.
    async fn slots(&self, window: TimeRange, minutes: i64) -> Vec<TimeRange> {
        self.engine
            .availability(self.pro.id, window, Duration::minutes(minutes))
            .await
            .unwrap()
    }
}

fn outside(r: Result<Booking, Error>) -> bool {
    matches!(r, Err(Error::OutsideAvailability(_)))
}

/// Berlin, 2026-03-29: `01:00-04:00` local is two real hours, 00:00Z-02:00Z (01:00-02:00
/// CET, then 03:00-04:00 CEST). The grid counts real minutes from 00:00Z; a booking may
/// cross the gap; a reschedule across it keeps the slot free of doubles.
#[tokio::test]
async fn berlin_spring_forward_offers_the_real_hours_and_books_across_the_gap() {
    let s = Setup::new(
        utc(2026, 3, 28, 12, 0),
        hours(Berlin, &[Weekday::Sun], "01:00", "04:00", 30),
    )
    .await;
    let night = span(utc(2026, 3, 28, 20, 0), utc(2026, 3, 29, 6, 0));
    let (h0, h030, h1) = (
        utc(2026, 3, 29, 0, 0),
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1, 0),
    );
    assert_eq!(
        s.slots(night, 60).await,
        vec![from(h0, 60), from(h030, 60), from(h1, 60)]
    );

    // 01:30 CET to 03:30 CEST: one real hour across the gap, priced as one hour.
    let b = s.book(from(h030, 60)).await.unwrap();
    assert_eq!(b.range, from(h030, 60));
    assert_eq!(b.price.amount_cents, 6_000);
    assert!(s.slots(night, 60).await.is_empty());
    // Ends at 04:30 CEST, after working hours.
    assert!(outside(s.book(from(utc(2026, 3, 29, 1, 30), 60)).await));

    // Moving it by half an hour overlaps its own old range: allowed, and 00:00Z opens.
    let moved = s.reschedule(&b, from(h1, 60)).await.unwrap();
    assert_eq!(moved.range, from(h1, 60));
    assert_eq!(s.slots(night, 60).await, vec![from(h0, 60)]);
    assert!(matches!(
        s.book(from(h030, 60)).await,
        Err(Error::SlotUnavailable)
    ));
    s.book(from(h0, 60)).await.unwrap();
}

/// Berlin, 2026-10-25: `01:00-04:00` local is four real hours, 23:00Z-03:00Z; the
/// repeated hour 02:00-03:00 is two distinct slots, 00:00Z (CEST) and 01:00Z (CET), which
/// two bookings take without conflict.
#[tokio::test]
async fn berlin_fall_back_books_the_repeated_hour_twice() {
    let s = Setup::new(
        utc(2026, 10, 24, 12, 0),
        hours(Berlin, &[Weekday::Sun], "01:00", "04:00", 60),
    )
    .await;
    let night = span(utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 6, 0));
    let starts = [
        utc(2026, 10, 24, 23, 0),
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 25, 1, 0),
        utc(2026, 10, 25, 2, 0),
    ];
    let all: Vec<_> = starts.iter().map(|&t| from(t, 60)).collect();
    assert_eq!(s.slots(night, 60).await, all);

    let first = s.book(from(starts[1], 60)).await.unwrap();
    let second = s.book(from(starts[2], 60)).await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(
        s.slots(night, 60).await,
        vec![from(starts[0], 60), from(starts[3], 60)]
    );
    assert!(matches!(
        s.book(from(starts[1], 60)).await,
        Err(Error::SlotUnavailable)
    ));
    // Off the hourly grid counted from 23:00Z.
    assert!(outside(s.book(from(utc(2026, 10, 25, 2, 30), 30)).await));
}

/// New York, 2026-03-08: `09:00-17:00` is 14:00Z-22:00Z on Saturday (EST) and 13:00Z-21:00Z
/// from Sunday (EDT). A Saturday booking rescheduled to Monday is judged by Monday's
/// offset: 21:00Z was inside on Saturday and is outside on Monday.
#[tokio::test]
async fn new_york_hours_follow_the_offset_across_spring_forward() {
    let days = [Weekday::Sat, Weekday::Sun, Weekday::Mon];
    let s = Setup::new(
        utc(2026, 3, 6, 12, 0),
        hours(New_York, &days, "09:00", "17:00", 60),
    )
    .await;
    let window = span(utc(2026, 3, 7, 0, 0), utc(2026, 3, 10, 0, 0));
    let slots = s.slots(window, 60).await;
    let expected: Vec<_> = [(7, 14), (8, 13), (9, 13)]
        .into_iter()
        .flat_map(|(day, first)| (0..8).map(move |h| from(utc(2026, 3, day, first + h, 0), 60)))
        .collect();
    assert_eq!(slots, expected);

    let b = s.book(from(utc(2026, 3, 7, 21, 0), 60)).await.unwrap();
    // Monday 21:00Z is 17:00 EDT: outside, and nothing changes.
    assert!(outside(
        s.reschedule(&b, from(utc(2026, 3, 9, 21, 0), 60)).await
    ));
    assert_eq!(s.reload(&b).await.range, from(utc(2026, 3, 7, 21, 0), 60));
    // Monday 13:00Z is 09:00 EDT.
    let moved = s
        .reschedule(&b, from(utc(2026, 3, 9, 13, 0), 60))
        .await
        .unwrap();
    assert_eq!(moved.range, from(utc(2026, 3, 9, 13, 0), 60));
    let monday = span(utc(2026, 3, 9, 0, 0), utc(2026, 3, 10, 0, 0));
    assert_eq!(
        s.slots(monday, 60).await.first(),
        Some(&from(utc(2026, 3, 9, 14, 0), 60))
    );
    // Saturday 21:00Z is free again.
    s.book(from(utc(2026, 3, 7, 21, 0), 60)).await.unwrap();
}

/// A schedule moved to another time zone while bookings exist: the bookings keep their
/// instants and status and still block, new requests and reschedules are judged by the
/// new hours (Monday 2026-03-02, `09:00-17:00`: 08:00Z-16:00Z in Berlin, 14:00Z-22:00Z in
/// New York).
#[tokio::test]
async fn moving_the_schedule_to_another_zone_keeps_bookings_and_judges_by_the_new_hours() {
    let s = Setup::new(
        utc(2026, 3, 1, 12, 0),
        hours(Berlin, &[Weekday::Mon], "09:00", "17:00", 60),
    )
    .await;
    let monday = span(utc(2026, 3, 2, 0, 0), utc(2026, 3, 3, 0, 0));
    let early = s.book(from(utc(2026, 3, 2, 8, 0), 60)).await.unwrap();
    let late = s.book(from(utc(2026, 3, 2, 15, 0), 60)).await.unwrap();

    s.set_schedule(hours(New_York, &[Weekday::Mon], "09:00", "17:00", 60))
        .await;
    for b in [&early, &late] {
        let now = s.reload(b).await;
        assert_eq!((now.range, now.status), (b.range, BookingStatus::Confirmed));
    }
    // New York hours, minus the 15:00Z booking that still blocks.
    let expected: Vec<_> = [14, 16, 17, 18, 19, 20, 21]
        .into_iter()
        .map(|h| from(utc(2026, 3, 2, h, 0), 60))
        .collect();
    assert_eq!(s.slots(monday, 60).await, expected);
    // 09:00Z was working time in Berlin; it is 04:00 in New York.
    assert!(outside(s.book(from(utc(2026, 3, 2, 9, 0), 60)).await));
    assert!(outside(
        s.reschedule(&early, from(utc(2026, 3, 2, 9, 0), 60)).await
    ));
    assert!(matches!(
        s.reschedule(&early, from(utc(2026, 3, 2, 15, 0), 60)).await,
        Err(Error::SlotUnavailable)
    ));
    let moved = s
        .reschedule(&early, from(utc(2026, 3, 2, 21, 0), 60))
        .await
        .unwrap();
    assert_eq!(moved.range, from(utc(2026, 3, 2, 21, 0), 60));
}

/// Hours and buffers changed while a booking exists: the booking keeps the blocked range
/// it was made with, and the new buffers widen the new slots around it.
#[tokio::test]
async fn new_buffers_apply_to_new_slots_around_an_existing_booking() {
    let s = Setup::new(
        utc(2026, 3, 1, 12, 0),
        hours(Berlin, &[Weekday::Mon], "08:00", "12:00", 60),
    )
    .await;
    let morning = span(utc(2026, 3, 2, 0, 0), utc(2026, 3, 2, 12, 0));
    let b = s.book(from(utc(2026, 3, 2, 8, 0), 60)).await.unwrap();
    assert_eq!(b.blocked, b.range);
    assert_eq!(
        s.slots(morning, 60).await,
        vec![
            from(utc(2026, 3, 2, 7, 0), 60),
            from(utc(2026, 3, 2, 9, 0), 60),
            from(utc(2026, 3, 2, 10, 0), 60),
        ]
    );

    let mut wider = hours(Berlin, &[Weekday::Mon], "08:00", "12:00", 60);
    wider.buffer_after_minutes = 30;
    s.set_schedule(wider).await;
    assert_eq!(s.reload(&b).await.blocked, b.range);
    // 07:00Z-08:00Z plus 30 minutes after reaches into the booking; 09:00Z does not.
    assert_eq!(
        s.slots(morning, 60).await,
        vec![
            from(utc(2026, 3, 2, 9, 0), 60),
            from(utc(2026, 3, 2, 10, 0), 60),
        ]
    );
    assert!(matches!(
        s.book(from(utc(2026, 3, 2, 7, 0), 60)).await,
        Err(Error::SlotUnavailable)
    ));
    let next = s.book(from(utc(2026, 3, 2, 9, 0), 60)).await.unwrap();
    assert_eq!(
        next.blocked,
        span(utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 10, 30))
    );
}
