//! Unit tests of working ranges, the admission check and slot generation.

use super::*;
use crate::schedule::{LocalTime, WeeklyInterval};
use chrono::{TimeZone, Weekday};

fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, d, h, m, 0).unwrap()
}

fn range(a: DateTime<Utc>, b: DateTime<Utc>) -> TimeRange {
    TimeRange::new(a, b).unwrap()
}

fn nine_to_five() -> Schedule {
    let mut s = Schedule::always_open(chrono_tz::UTC);
    s.weekly = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
    .into_iter()
    .map(|weekday| WeeklyInterval {
        weekday,
        start: LocalTime::new(9, 0).unwrap(),
        end: LocalTime::new(17, 0).unwrap(),
    })
    .collect();
    s.slot_step_minutes = 30;
    s.horizon_days = 60;
    s
}

#[test]
fn rejects_long_windows_and_odd_durations() {
    let s = nine_to_five();
    let now = at(1, 0, 0);
    let long = range(
        at(1, 0, 0),
        at(1, 0, 0) + Duration::days(31) + Duration::seconds(1),
    );
    let e = s
        .available_slots(&long, Duration::minutes(30), now, &[])
        .unwrap_err();
    assert_eq!(
        e,
        Error::invalid("to", "the query range must be at most 31 days")
    );
    let ok = range(at(1, 0, 0), at(1, 0, 0) + Duration::days(31));
    assert!(
        s.available_slots(&ok, Duration::minutes(30), now, &[])
            .is_ok()
    );
    for d in [
        Duration::minutes(4),
        Duration::minutes(1441),
        Duration::seconds(5 * 60 + 1),
        Duration::zero(),
        Duration::minutes(-30),
    ] {
        let e = s.available_slots(&ok, d, now, &[]).unwrap_err();
        assert!(matches!(e, Error::Invalid(ref v) if v[0].field == "duration_minutes"));
    }
}

#[test]
fn basic_day_with_buffers_and_bookings() {
    let mut s = nine_to_five();
    s.buffer_after_minutes = 15;
    // 2027-03-01 is a Monday.
    let day = range(at(1, 0, 0), at(2, 0, 0));
    let booked = range(at(1, 11, 0), at(1, 12, 0))
        .widen(s.buffer_before(), s.buffer_after())
        .unwrap();
    let slots = s
        .available_slots(&day, Duration::minutes(60), at(1, 0, 0), &[booked])
        .unwrap();
    let starts: Vec<_> = slots.iter().map(|r| r.start()).collect();
    // 10:00 would block until 11:15 (overlaps the booking); 12:00 overlaps the
    // booking's after-buffer; the last slot ends at 17:00 (buffer may reach outside).
    assert_eq!(
        starts,
        vec![
            at(1, 9, 0),
            at(1, 9, 30),
            at(1, 12, 30),
            at(1, 13, 0),
            at(1, 13, 30),
            at(1, 14, 0),
            at(1, 14, 30),
            at(1, 15, 0),
            at(1, 15, 30),
            at(1, 16, 0)
        ]
    );
}

#[test]
fn notice_and_horizon() {
    let mut s = nine_to_five();
    s.min_notice_minutes = 90;
    s.horizon_days = 1;
    let now = at(1, 9, 10);
    let window = range(at(1, 0, 0), at(3, 0, 0));
    let slots = s
        .available_slots(&window, Duration::minutes(30), now, &[])
        .unwrap();
    assert_eq!(slots.first().unwrap().start(), at(1, 11, 0));
    // Horizon: start < now + 24 h = 2027-03-02 09:10.
    assert_eq!(slots.last().unwrap().start(), at(2, 9, 0));
    assert!(s.admits(&range(at(1, 10, 40), at(1, 11, 0)), now).is_ok());
    assert!(matches!(
        s.admits(&range(at(1, 10, 39), at(1, 11, 0)), now),
        Err(Error::OutsideAvailability(_))
    ));
    assert!(s.admits(&range(at(2, 9, 9), at(2, 9, 30)), now).is_ok());
    assert!(s.admits(&range(at(2, 9, 10), at(2, 9, 30)), now).is_err());
}

#[test]
fn notice_is_inclusive_and_horizon_exclusive() {
    let mut s = Schedule::always_open(chrono_tz::UTC);
    s.min_notice_minutes = 60;
    s.horizon_days = 1;
    let now = at(1, 12, 0);
    let window = range(at(1, 0, 0), at(3, 0, 0));
    let slots = s
        .available_slots(&window, Duration::minutes(5), now, &[])
        .unwrap();
    assert_eq!(slots.first().unwrap().start(), at(1, 13, 0));
    assert_eq!(slots.last().unwrap().start(), at(2, 11, 55));
    assert_eq!(slots.len(), 23 * 12);
    assert!(s.admits(&range(at(1, 13, 0), at(1, 13, 5)), now).is_ok());
    assert!(s.admits(&range(at(2, 11, 59), at(2, 13, 0)), now).is_ok());
    assert!(s.admits(&range(at(2, 12, 0), at(2, 13, 0)), now).is_err());
}

#[test]
fn admits_requires_one_working_interval() {
    let mut s = nine_to_five();
    s.weekly.push(WeeklyInterval {
        weekday: Weekday::Mon,
        start: LocalTime::new(17, 0).unwrap(),
        end: LocalTime::new(18, 0).unwrap(),
    });
    s.weekly.push(WeeklyInterval {
        weekday: Weekday::Mon,
        start: LocalTime::new(22, 0).unwrap(),
        end: LocalTime::END_OF_DAY,
    });
    s.weekly.push(WeeklyInterval {
        weekday: Weekday::Tue,
        start: LocalTime::MIDNIGHT,
        end: LocalTime::new(2, 0).unwrap(),
    });
    let now = at(1, 0, 0);
    // Touching intervals on one day form one.
    assert!(s.admits(&range(at(1, 16, 0), at(1, 18, 0)), now).is_ok());
    assert!(s.admits(&range(at(1, 16, 0), at(1, 18, 1)), now).is_err());
    // Across midnight.
    assert!(s.admits(&range(at(1, 23, 0), at(2, 1, 0)), now).is_ok());
    assert!(s.admits(&range(at(1, 17, 30), at(1, 22, 30)), now).is_err());
    assert!(s.admits(&range(at(1, 8, 59), at(1, 9, 30)), now).is_err());
    let ranges = s.working_ranges(&range(at(1, 0, 0), at(3, 0, 0)));
    assert_eq!(
        ranges,
        vec![
            range(at(1, 9, 0), at(1, 18, 0)),
            range(at(1, 22, 0), at(2, 2, 0)),
            range(at(2, 9, 0), at(2, 17, 0)),
        ]
    );
    // A slot may cross midnight too.
    let slots = s
        .available_slots(
            &range(at(1, 20, 0), at(2, 3, 0)),
            Duration::minutes(120),
            now,
            &[],
        )
        .unwrap();
    let starts: Vec<_> = slots.iter().map(|r| r.start()).collect();
    assert_eq!(
        starts,
        vec![
            at(1, 22, 0),
            at(1, 22, 30),
            at(1, 23, 0),
            at(1, 23, 30),
            at(2, 0, 0)
        ]
    );
}

#[test]
fn overrides_replace_weekly_hours() {
    let mut s = nine_to_five();
    s.overrides = vec![
        crate::schedule::DateOverride {
            date: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
            intervals: vec![],
        },
        crate::schedule::DateOverride {
            date: NaiveDate::from_ymd_opt(2027, 3, 6).unwrap(), // a Saturday
            intervals: vec![LocalInterval {
                start: LocalTime::new(10, 0).unwrap(),
                end: LocalTime::new(12, 0).unwrap(),
            }],
        },
    ];
    let ranges = s.working_ranges(&range(at(1, 0, 0), at(8, 0, 0)));
    assert_eq!(ranges.len(), 5);
    assert_eq!(ranges[0], range(at(2, 9, 0), at(2, 17, 0)));
    assert_eq!(ranges[4], range(at(6, 10, 0), at(6, 12, 0)));
}

#[test]
fn grid_counts_from_interval_start_not_window_start() {
    let mut s = nine_to_five();
    s.slot_step_minutes = 45;
    let now = at(1, 0, 0);
    let window = range(at(1, 10, 0), at(1, 13, 0));
    let slots = s
        .available_slots(&window, Duration::minutes(30), now, &[])
        .unwrap();
    let starts: Vec<_> = slots.iter().map(|r| r.start()).collect();
    assert_eq!(starts, vec![at(1, 10, 30), at(1, 11, 15), at(1, 12, 0)]);
}

#[test]
fn sub_second_inputs_are_exact() {
    let s = nine_to_five();
    let ns = Duration::nanoseconds(1);
    let now = at(1, 0, 0);
    // Window starting a nanosecond after 09:00 excludes the 09:00 slot; one ending a
    // nanosecond before 10:00 excludes the 09:30 slot.
    let w = range(at(1, 9, 0) + ns, at(1, 10, 0) - ns);
    assert!(
        s.available_slots(&w, Duration::minutes(30), now, &[])
            .unwrap()
            .is_empty()
    );
    // A blocked range ending a nanosecond after 09:30 blocks 09:30.
    let b = range(at(1, 9, 0), at(1, 9, 30) + ns);
    let w = range(at(1, 9, 0), at(1, 10, 0));
    assert!(
        s.available_slots(&w, Duration::minutes(30), now, &[b])
            .unwrap()
            .is_empty()
    );
    // A nanosecond of notice past 09:00 excludes 09:00.
    let slots = s
        .available_slots(&w, Duration::minutes(30), at(1, 9, 0) + ns, &[])
        .unwrap();
    assert_eq!(slots, vec![range(at(1, 9, 30), at(1, 10, 0))]);
}

#[test]
fn hand_built_invalid_schedules_do_not_panic() {
    let mut s = nine_to_five();
    s.slot_step_minutes = 0;
    s.horizon_days = u32::MAX;
    s.min_notice_minutes = u32::MAX;
    s.weekly.push(WeeklyInterval {
        weekday: Weekday::Mon,
        start: LocalTime::END_OF_DAY,
        end: LocalTime::MIDNIGHT,
    });
    let w = range(at(1, 0, 0), at(2, 0, 0));
    assert!(
        s.available_slots(&w, Duration::minutes(30), at(1, 0, 0), &[])
            .unwrap()
            .is_empty()
    );
    s.min_notice_minutes = 0;
    assert_eq!(
        s.available_slots(&w, Duration::minutes(30), at(1, 0, 0), &[])
            .unwrap()
            .len(),
        451
    );
    let far = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap();
    let w = range(far, far + Duration::days(1));
    let _ = s.available_slots(&w, Duration::minutes(30), far, &[]);
    let _ = s.working_ranges(&w);
}

#[test]
fn unsorted_overlapping_blocked_ranges() {
    let s = Schedule::always_open(chrono_tz::UTC);
    let w = range(at(1, 0, 0), at(1, 2, 0));
    let blocked = [
        range(at(1, 1, 0), at(1, 1, 20)),
        range(at(1, 0, 10), at(1, 0, 20)),
        range(at(1, 0, 15), at(1, 0, 40)),
    ];
    let slots = s
        .available_slots(&w, Duration::minutes(10), at(1, 0, 0), &blocked)
        .unwrap();
    let starts: Vec<_> = slots.iter().map(|r| r.start()).collect();
    assert_eq!(
        starts,
        vec![
            at(1, 0, 0),
            at(1, 0, 40),
            at(1, 0, 45),
            at(1, 0, 50),
            at(1, 1, 20),
            at(1, 1, 25),
            at(1, 1, 30),
            at(1, 1, 35),
            at(1, 1, 40),
            at(1, 1, 45),
            at(1, 1, 50)
        ]
    );
}

/// `pieces` returns what its contract says and nothing more: non-empty pieces that
/// overlap `[from, to)`, sorted. (Slot generation would give the same answers with extra
/// pieces; this pins the filter itself.)
#[test]
fn pieces_are_non_empty_and_overlap_the_query() {
    let secs = |t: DateTime<Utc>| t.timestamp();
    let mut s = nine_to_five();
    // Mon 2027-03-01 and Tue 2027-03-02, 09:00-17:00 UTC.
    let (mon_9, mon_17) = (secs(at(1, 9, 0)), secs(at(1, 17, 0)));
    let (tue_9, tue_17) = (secs(at(2, 9, 0)), secs(at(2, 17, 0)));
    let piece = |start, end| Piece { start, end };
    // A query touching Monday's piece at its end and Tuesday's at its start overlaps
    // neither.
    assert_eq!(s.pieces(mon_17, tue_9), vec![]);
    assert_eq!(s.pieces(mon_17 - 1, tue_9), vec![piece(mon_9, mon_17)]);
    assert_eq!(s.pieces(mon_17, tue_9 + 1), vec![piece(tue_9, tue_17)]);
    assert_eq!(
        s.pieces(mon_9, tue_17),
        vec![piece(mon_9, mon_17), piece(tue_9, tue_17)]
    );
    // An interval wholly inside a spring-forward gap has an empty image: no piece.
    // New York skips 02:00-03:00 on Sunday 2027-03-14.
    s.timezone = chrono_tz::America::New_York;
    s.weekly = vec![WeeklyInterval {
        weekday: Weekday::Sun,
        start: LocalTime::new(2, 0).unwrap(),
        end: LocalTime::new(2, 30).unwrap(),
    }];
    let day = (secs(at(14, 0, 0)), secs(at(15, 0, 0)));
    assert_eq!(s.pieces(day.0, day.1), vec![]);
}

#[test]
fn busy_ranges_keep_what_reaches_the_query_merged_and_sorted() {
    let secs = |t: DateTime<Utc>| t.timestamp();
    let (from, to) = (secs(at(1, 9, 0)), secs(at(1, 12, 0)));
    let blocked = [
        // Ends exactly where the reach starts, starts exactly where it ends: left out.
        range(at(1, 8, 0), at(1, 9, 0)),
        range(at(1, 12, 0), at(1, 13, 0)),
        // Far outside.
        range(at(2, 9, 0), at(2, 10, 0)),
        // Overlapping, touching and separate, out of order.
        range(at(1, 11, 0), at(1, 11, 30)),
        range(at(1, 10, 0), at(1, 10, 30)),
        range(at(1, 8, 30), at(1, 9, 10)),
        range(at(1, 10, 15), at(1, 10, 45)),
        range(at(1, 10, 45), at(1, 10, 50)),
    ];
    assert_eq!(
        busy_ranges(&blocked, from, to),
        vec![
            (secs(at(1, 8, 30)), secs(at(1, 9, 10))),
            (secs(at(1, 10, 0)), secs(at(1, 10, 50))),
            (secs(at(1, 11, 0)), secs(at(1, 11, 30))),
        ]
    );
    // Sub-second ends round outwards.
    let ns = Duration::nanoseconds(1);
    let odd = [range(at(1, 9, 30) + ns, at(1, 9, 40) + ns)];
    assert_eq!(
        busy_ranges(&odd, from, to),
        vec![(secs(at(1, 9, 30)), secs(at(1, 9, 40)) + 1)]
    );
}
