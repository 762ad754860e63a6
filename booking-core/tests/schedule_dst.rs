//! Daylight-saving and odd-offset cases of schedule → UTC conversion and slot generation.
//!
//! Hand-typed expectations for the documented rules, plus a cross-check of every
//! transition day in several zones against jiff (an independent tz implementation with
//! its own bundled tz database).

// Test helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use booking_core::TimeRange;
use booking_core::schedule::{
    DateOverrideInput, LocalIntervalInput, Schedule, ScheduleInput, WeeklyIntervalInput,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).unwrap()
}

fn range(a: DateTime<Utc>, b: DateTime<Utc>) -> TimeRange {
    TimeRange::new(a, b).unwrap()
}

/// A schedule with only date overrides `(date, [(start, end)])`, no weekly hours.
fn on_dates(tz: &str, step: i64, days: &[(NaiveDate, &[(&str, &str)])]) -> Schedule {
    ScheduleInput {
        timezone: tz.into(),
        weekly: vec![],
        overrides: days
            .iter()
            .map(|(d, ivs)| DateOverrideInput {
                date: d.to_string(),
                intervals: ivs
                    .iter()
                    .map(|(s, e)| LocalIntervalInput {
                        start: (*s).into(),
                        end: (*e).into(),
                    })
                    .collect(),
            })
            .collect(),
        slot_step_minutes: step,
        horizon_days: 3660,
        ..ScheduleInput::default()
    }
    .validate()
    .unwrap()
}

fn every_day(tz: &str, step: i64, start: &str, end: &str) -> Schedule {
    ScheduleInput {
        timezone: tz.into(),
        weekly: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| WeeklyIntervalInput {
                weekday: (*d).into(),
                start: start.into(),
                end: end.into(),
            })
            .collect(),
        slot_step_minutes: step,
        horizon_days: 3660,
        ..ScheduleInput::default()
    }
    .validate()
    .unwrap()
}

/// Slots of `minutes` in the local day `d` (plus a day of margin each side).
fn slots_around(s: &Schedule, d: NaiveDate, minutes: i64) -> Vec<TimeRange> {
    let mid = d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let window = range(mid - Duration::days(2), mid + Duration::days(2));
    s.available_slots(
        &window,
        Duration::minutes(minutes),
        mid - Duration::days(30),
        &[],
    )
    .unwrap()
}

fn ranges_around(s: &Schedule, d: NaiveDate) -> Vec<TimeRange> {
    let mid = d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    s.working_ranges(&range(mid - Duration::days(2), mid + Duration::days(2)))
}

fn starts(slots: &[TimeRange]) -> Vec<DateTime<Utc>> {
    slots.iter().map(|r| r.start()).collect()
}

/// Slot starts rendered as local wall time with offset.
fn local_starts(slots: &[TimeRange], tz: Tz) -> Vec<String> {
    slots
        .iter()
        .map(|r| {
            r.start()
                .with_timezone(&tz)
                .format("%m-%d %H:%M%:z")
                .to_string()
        })
        .collect()
}

#[test]
fn berlin_spring_forward_gap_inside_working_hours() {
    // 2027-03-28: 02:00 CET -> 03:00 CEST at 01:00Z.
    let d = date(2027, 3, 28);
    let s = on_dates("Europe/Berlin", 30, &[(d, &[("01:00", "04:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0))]
    );
    let slots = slots_around(&s, d, 30);
    assert_eq!(
        starts(&slots),
        [
            utc(2027, 3, 28, 0, 0),
            utc(2027, 3, 28, 0, 30),
            utc(2027, 3, 28, 1, 0),
            utc(2027, 3, 28, 1, 30)
        ]
    );
    assert_eq!(
        local_starts(&slots, chrono_tz::Europe::Berlin),
        [
            "03-28 01:00+01:00",
            "03-28 01:30+01:00",
            "03-28 03:00+02:00",
            "03-28 03:30+02:00"
        ]
    );
    // A 60-minute slot across the gap is one real hour: 01:30 CET - 03:30 CEST.
    let hour = slots_around(&s, d, 60);
    assert_eq!(
        local_starts(&hour, chrono_tz::Europe::Berlin),
        [
            "03-28 01:00+01:00",
            "03-28 01:30+01:00",
            "03-28 03:00+02:00"
        ]
    );
}

#[test]
fn berlin_fall_back_repeated_hour_counted_once_each() {
    // 2027-10-31: 03:00 CEST -> 02:00 CET at 01:00Z; 02:00-03:00 happens twice.
    let d = date(2027, 10, 31);
    let s = on_dates("Europe/Berlin", 60, &[(d, &[("01:00", "04:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 10, 30, 23, 0), utc(2027, 10, 31, 3, 0))]
    );
    let slots = slots_around(&s, d, 60);
    assert_eq!(
        local_starts(&slots, chrono_tz::Europe::Berlin),
        [
            "10-31 01:00+02:00",
            "10-31 02:00+02:00",
            "10-31 02:00+01:00",
            "10-31 03:00+01:00"
        ]
    );
}

#[test]
fn berlin_afternoon_hours_on_transition_days() {
    // 13:00 is CEST (+02:00) after the spring change, CET (+01:00) after the fall one.
    for (d, h, offset) in [
        (date(2027, 3, 28), 11, "+02:00"),
        (date(2027, 10, 31), 12, "+01:00"),
    ] {
        let s = on_dates("Europe/Berlin", 60, &[(d, &[("13:00", "17:00")])]);
        assert_eq!(
            ranges_around(&s, d),
            [range(
                utc(2027, d.month(), d.day(), h, 0),
                utc(2027, d.month(), d.day(), h + 4, 0)
            )]
        );
        let slots = slots_around(&s, d, 60);
        let expected: Vec<String> = ["13", "14", "15", "16"]
            .iter()
            .map(|hh| format!("{:02}-{:02} {hh}:00{offset}", d.month(), d.day()))
            .collect();
        assert_eq!(local_starts(&slots, chrono_tz::Europe::Berlin), expected);
    }
}

#[test]
fn new_york_spring_forward_and_boundaries_in_gap() {
    // 2027-03-14: 02:00 EST -> 03:00 EDT at 07:00Z.
    let d = date(2027, 3, 14);
    let ny = "America/New_York";
    let s = on_dates(ny, 30, &[(d, &[("01:00", "04:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 3, 14, 6, 0), utc(2027, 3, 14, 8, 0))]
    );
    // A start in the gap starts at the first instant after it.
    let s = on_dates(ny, 30, &[(d, &[("02:30", "05:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 3, 14, 7, 0), utc(2027, 3, 14, 9, 0))]
    );
    assert_eq!(
        local_starts(&slots_around(&s, d, 60), chrono_tz::America::New_York),
        [
            "03-14 03:00-04:00",
            "03-14 03:30-04:00",
            "03-14 04:00-04:00"
        ]
    );
    // An end in the gap ends at the gap start.
    let s = on_dates(ny, 30, &[(d, &[("00:00", "02:30")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 3, 14, 5, 0), utc(2027, 3, 14, 7, 0))]
    );
    // An interval wholly inside the gap is empty.
    let s = on_dates(ny, 5, &[(d, &[("02:05", "02:55")])]);
    assert!(ranges_around(&s, d).is_empty());
    assert!(slots_around(&s, d, 5).is_empty());
    let r = range(utc(2027, 3, 14, 6, 55), utc(2027, 3, 14, 7, 5));
    assert!(s.admits(&r, utc(2027, 1, 1, 0, 0)).is_err());
}

#[test]
fn new_york_fall_back_three_real_hours() {
    // 2027-11-07: 02:00 EDT -> 01:00 EST at 06:00Z; 01:00-02:00 happens twice.
    let d = date(2027, 11, 7);
    let ny = "America/New_York";
    let s = on_dates(ny, 30, &[(d, &[("01:00", "03:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 11, 7, 5, 0), utc(2027, 11, 7, 8, 0))]
    );
    assert_eq!(
        local_starts(&slots_around(&s, d, 30), chrono_tz::America::New_York),
        [
            "11-07 01:00-04:00",
            "11-07 01:30-04:00",
            "11-07 01:00-05:00",
            "11-07 01:30-05:00",
            "11-07 02:00-05:00",
            "11-07 02:30-05:00"
        ]
    );
    // Starting at a repeated time: its first occurrence; ending at one: its second.
    let s = on_dates(ny, 30, &[(d, &[("01:30", "03:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 8, 0))]
    );
    let s = on_dates(ny, 30, &[(d, &[("00:00", "01:30")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 11, 7, 4, 0), utc(2027, 11, 7, 6, 30))]
    );
}

#[test]
fn new_york_intervals_touching_at_a_repeated_time() {
    // 00:00-01:30 ends at 06:30Z, 01:30-03:00 starts at 05:30Z: they overlap in UTC and
    // form one working interval; each keeps its own grid, output stays sorted and unique.
    let d = date(2027, 11, 7);
    let s = on_dates(
        "America/New_York",
        60,
        &[(d, &[("00:00", "01:30"), ("01:30", "03:00")])],
    );
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 11, 7, 4, 0), utc(2027, 11, 7, 8, 0))]
    );
    assert_eq!(
        starts(&slots_around(&s, d, 60)),
        [
            utc(2027, 11, 7, 4, 0),
            utc(2027, 11, 7, 5, 0),
            utc(2027, 11, 7, 5, 30),
            utc(2027, 11, 7, 6, 0),
            utc(2027, 11, 7, 6, 30)
        ]
    );
}

#[test]
fn lord_howe_half_hour_shifts() {
    let lh = chrono_tz::Australia::Lord_Howe;
    // 2027-04-04: 02:00 +11 -> 01:30 +10:30; 01:30-02:00 happens twice.
    let d = date(2027, 4, 4);
    let s = on_dates("Australia/Lord_Howe", 30, &[(d, &[("01:00", "03:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 4, 3, 14, 0), utc(2027, 4, 3, 16, 30))]
    );
    assert_eq!(
        local_starts(&slots_around(&s, d, 30), lh),
        [
            "04-04 01:00+11:00",
            "04-04 01:30+11:00",
            "04-04 01:30+10:30",
            "04-04 02:00+10:30",
            "04-04 02:30+10:30"
        ]
    );
    // 2027-10-03: 02:00 +10:30 -> 02:30 +11.
    let d = date(2027, 10, 3);
    let s = on_dates("Australia/Lord_Howe", 30, &[(d, &[("01:00", "04:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(2027, 10, 2, 14, 30), utc(2027, 10, 2, 17, 0))]
    );
    assert_eq!(
        local_starts(&slots_around(&s, d, 30), lh),
        [
            "10-03 01:00+10:30",
            "10-03 01:30+10:30",
            "10-03 02:30+11:00",
            "10-03 03:00+11:00",
            "10-03 03:30+11:00"
        ]
    );
}

#[test]
fn kathmandu_quarter_hour_offset() {
    let d = date(2027, 3, 10);
    let s = on_dates("Asia/Kathmandu", 15, &[(d, &[("09:00", "10:00")])]);
    assert_eq!(
        starts(&slots_around(&s, d, 15)),
        [
            utc(2027, 3, 10, 3, 15),
            utc(2027, 3, 10, 3, 30),
            utc(2027, 3, 10, 3, 45),
            utc(2027, 3, 10, 4, 0)
        ]
    );
    // 1986-01-01 00:00 +05:30 became 00:15 +05:45: 00:00-00:15 never happened.
    let d = date(1986, 1, 1);
    let s = on_dates("Asia/Kathmandu", 15, &[(d, &[("00:00", "01:00")])]);
    assert_eq!(
        ranges_around(&s, d),
        [range(utc(1985, 12, 31, 18, 30), utc(1985, 12, 31, 19, 15))]
    );
}

#[test]
fn apia_skipped_day_has_no_slots() {
    // Samoa jumped from 2011-12-29 24:00 (-10) to 2011-12-31 00:00 (+14).
    let apia = chrono_tz::Pacific::Apia;
    let s = every_day("Pacific/Apia", 60, "09:00", "17:00");
    let window = range(utc(2011, 12, 28, 0, 0), utc(2012, 1, 2, 0, 0));
    let slots = s
        .available_slots(&window, Duration::minutes(60), utc(2011, 12, 1, 0, 0), &[])
        .unwrap();
    let local_dates: Vec<NaiveDate> = slots
        .iter()
        .map(|r| r.start().with_timezone(&apia).date_naive())
        .collect();
    assert!(!local_dates.contains(&date(2011, 12, 30)));
    for d in [28, 29, 31] {
        assert_eq!(
            local_dates
                .iter()
                .filter(|x| **x == date(2011, 12, d))
                .count(),
            8
        );
    }
    // Thursday 09:00 -10 and Saturday 09:00 +14.
    assert!(starts(&slots).contains(&utc(2011, 12, 29, 19, 0)));
    assert!(starts(&slots).contains(&utc(2011, 12, 30, 19, 0)));
    // Hours set on the skipped date itself are empty too.
    let s = on_dates(
        "Pacific/Apia",
        60,
        &[(date(2011, 12, 30), &[("00:00", "24:00")])],
    );
    assert!(ranges_around(&s, date(2011, 12, 30)).is_empty());
}

#[test]
fn apia_late_and_early_hours_touch_across_the_skipped_day() {
    let s = on_dates(
        "Pacific/Apia",
        60,
        &[
            (date(2011, 12, 29), &[("22:00", "24:00")]),
            (date(2011, 12, 31), &[("00:00", "02:00")]),
        ],
    );
    let expected = range(utc(2011, 12, 30, 8, 0), utc(2011, 12, 30, 12, 0));
    assert_eq!(ranges_around(&s, date(2011, 12, 30)), [expected]);
    assert!(s.admits(&expected, utc(2011, 12, 1, 0, 0)).is_ok());
}

// ---- cross-check against jiff -------------------------------------------------------

fn jiff_civil(l: NaiveDateTime) -> jiff::civil::DateTime {
    jiff::civil::DateTime::new(
        l.year() as i16,
        l.month() as i8,
        l.day() as i8,
        l.time().format("%H").to_string().parse().unwrap(),
        l.time().format("%M").to_string().parse().unwrap(),
        0,
        0,
    )
    .unwrap()
}

/// `(first, last)` instants (Unix seconds) of a wall time, computed with jiff: first and
/// second occurrence in a fold, the transition instant in a gap.
fn jiff_first_last(tz: &jiff::tz::TimeZone, l: NaiveDateTime) -> (i64, i64) {
    use jiff::tz::AmbiguousOffset;
    let naive = l.and_utc().timestamp();
    match tz.to_ambiguous_timestamp(jiff_civil(l)).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let t = naive - i64::from(offset.seconds());
            (t, t)
        }
        AmbiguousOffset::Fold { before, after } => (
            naive - i64::from(before.seconds()),
            naive - i64::from(after.seconds()),
        ),
        AmbiguousOffset::Gap { after, .. } => {
            let probe = jiff::Timestamp::from_second(naive - i64::from(after.seconds())).unwrap();
            let t = tz.following(probe).next().unwrap().timestamp().as_second();
            (t, t)
        }
    }
}

fn transition_days(name: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let tz = jiff::tz::TimeZone::get(name).unwrap();
    let mut days = Vec::new();
    for tr in tz.following(jiff::Timestamp::from_second(from.timestamp()).unwrap()) {
        if tr.timestamp().as_second() >= to.timestamp() {
            break;
        }
        let d = tr.timestamp().to_zoned(tz.clone()).date();
        days.push(date(d.year().into(), d.month() as u32, d.day() as u32));
    }
    days
}

/// For every transition day (and its neighbours) and a set of working hours, the UTC
/// working range and the 15-minute slot grid match what jiff's conversion implies.
#[test]
fn conversion_matches_jiff_on_every_transition_day() {
    let zones = [
        (
            "Europe/Berlin",
            utc(2026, 1, 1, 0, 0),
            utc(2029, 1, 1, 0, 0),
        ),
        (
            "America/New_York",
            utc(2026, 1, 1, 0, 0),
            utc(2029, 1, 1, 0, 0),
        ),
        (
            "Australia/Lord_Howe",
            utc(2026, 1, 1, 0, 0),
            utc(2029, 1, 1, 0, 0),
        ),
        (
            "Asia/Kathmandu",
            utc(1985, 1, 1, 0, 0),
            utc(1987, 1, 1, 0, 0),
        ),
        ("Pacific/Apia", utc(2010, 1, 1, 0, 0), utc(2013, 1, 1, 0, 0)),
    ];
    let hours: &[(&str, &str)] = &[
        ("00:00", "24:00"),
        ("01:00", "04:00"),
        ("01:30", "02:30"),
        ("02:00", "03:00"),
        ("02:15", "02:45"),
        ("01:00", "03:00"),
        ("13:00", "17:00"),
        ("00:00", "02:30"),
        ("02:30", "05:00"),
        ("23:00", "24:00"),
    ];
    let mut checked = 0;
    for (name, from, to) in zones {
        let jtz = jiff::tz::TimeZone::get(name).unwrap();
        let days = transition_days(name, from, to);
        assert!(!days.is_empty(), "{name}");
        for day in days {
            for d in [day.pred_opt().unwrap(), day, day.succ_opt().unwrap()] {
                for &(start, end) in hours {
                    let s = on_dates(name, 15, &[(d, &[(start, end)])]);
                    let at = |hhmm: &str| {
                        let (h, m) = (
                            hhmm[..2].parse::<i64>().unwrap(),
                            hhmm[3..].parse::<i64>().unwrap(),
                        );
                        d.and_hms_opt(0, 0, 0).unwrap() + Duration::minutes(h * 60 + m)
                    };
                    let (first, _) = jiff_first_last(&jtz, at(start));
                    let (_, last) = jiff_first_last(&jtz, at(end));
                    let expected: Vec<TimeRange> = if first < last {
                        vec![range(
                            DateTime::from_timestamp(first, 0).unwrap(),
                            DateTime::from_timestamp(last, 0).unwrap(),
                        )]
                    } else {
                        vec![]
                    };
                    assert_eq!(ranges_around(&s, d), expected, "{name} {d} {start}-{end}");
                    let grid: Vec<i64> = (0..)
                        .map(|k| first + k * 900)
                        .take_while(|t| t + 900 <= last)
                        .collect();
                    let got: Vec<i64> = slots_around(&s, d, 15)
                        .iter()
                        .map(|r| r.start().timestamp())
                        .collect();
                    assert_eq!(got, grid, "{name} {d} {start}-{end}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "{checked}");
}
