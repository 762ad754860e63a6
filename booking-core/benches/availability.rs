//! Slot generation cost: 31 days against 5,000 bookings, and 7 days against 1,000 (same
//! density) to show that the cost grows linearly with the window and the bookings.

use std::hint::black_box;

use booking_core::TimeRange;
use booking_core::schedule::{Schedule, ScheduleInput, WeeklyIntervalInput};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

/// A small deterministic generator (no extra dependencies).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn start() -> DateTime<Utc> {
    // A window across the Berlin spring-forward day.
    Utc.with_ymd_and_hms(2027, 3, 15, 0, 0, 0)
        .single()
        .expect("valid")
}

/// `count` non-overlapping 5-minute bookings on random 5-minute grid positions of
/// `days` days, widened by the buffers, in shuffled order.
fn bookings(days: i64, count: usize, schedule: &Schedule) -> Vec<TimeRange> {
    let positions = (days * 288) as usize;
    assert!(count <= positions);
    let mut rng = Lcg(42);
    let mut all: Vec<usize> = (0..positions).collect();
    for i in (1..all.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all.iter()
        .map(|&p| {
            let s = start() + Duration::minutes(p as i64 * 5);
            TimeRange::new(s, s + Duration::minutes(5))
                .expect("range")
                .widen(schedule.buffer_before(), schedule.buffer_after())
                .expect("widened")
        })
        .collect()
}

fn open_schedule() -> Schedule {
    Schedule::always_open(chrono_tz::Europe::Berlin)
}

fn office_hours() -> Schedule {
    ScheduleInput {
        timezone: "Europe/Berlin".into(),
        weekly: ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .flat_map(|d| {
                [("08:00", "12:00"), ("13:00", "19:00")].map(|(s, e)| WeeklyIntervalInput {
                    weekday: (*d).into(),
                    start: s.into(),
                    end: e.into(),
                })
            })
            .collect(),
        buffer_after_minutes: 10,
        slot_step_minutes: 15,
        horizon_days: 365,
        ..ScheduleInput::default()
    }
    .validate()
    .expect("valid")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("availability");
    let now = start() - Duration::days(1);
    for (days, count) in [(31, 5_000), (7, 1_000)] {
        let window = TimeRange::new(start(), start() + Duration::days(days)).expect("valid");
        // Around the clock, 5-minute grid: every grid point is a candidate.
        let schedule = open_schedule();
        let blocked = bookings(days, count, &schedule);
        group.bench_function(format!("always_open_{days}d_{count}_bookings"), |b| {
            b.iter(|| {
                schedule
                    .available_slots(
                        black_box(&window),
                        Duration::minutes(30),
                        now,
                        black_box(&blocked),
                    )
                    .expect("valid")
            })
        });
        // Office hours with a lunch break and an after-buffer.
        let schedule = office_hours();
        let blocked = bookings(days, count, &schedule);
        group.bench_function(format!("office_hours_{days}d_{count}_bookings"), |b| {
            b.iter(|| {
                schedule
                    .available_slots(
                        black_box(&window),
                        Duration::minutes(45),
                        now,
                        black_box(&blocked),
                    )
                    .expect("valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
