//! Property tests of slot generation against a naive oracle.
//!
//! Random schedules in zones with DST quirks (Berlin, New York, Lord Howe, Kathmandu,
//! Apia, UTC), windows placed around transition days, random bookings and `now`. The
//! oracle converts local times with jiff (an independent tz implementation), checks each
//! candidate start with plain loops, and must agree with `available_slots` exactly.
//!
//! The window-splitting property, stated precisely: the step grid never depends on the
//! query window, so for any instant `b` inside `[a, c)` (both halves at most 31 days)
//!
//! - `slots([a, b)) = { s ∈ slots([a, c)) : s.end <= b }`,
//! - `slots([b, c)) = { s ∈ slots([a, c)) : s.start >= b }`,
//!
//! hence `slots([a, c)) = slots([a, b)) ∪ slots([b, c))` exactly when no slot of
//! `[a, c)` straddles `b` (`s.start < b < s.end`), e.g. when `b` is a grid point that
//! only ends slots, or a time outside working hours.

// Test helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use booking_core::TimeRange;
use booking_core::schedule::{DateOverride, LocalInterval, LocalTime, Schedule, WeeklyInterval};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

const ZONES: [&str; 6] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "UTC",
];

/// Days worth starting a window near: transition days of the zones above.
const INTERESTING: [(i32, u32, u32); 10] = [
    (2027, 3, 28),  // Berlin spring
    (2027, 10, 31), // Berlin fall
    (2027, 3, 14),  // New York spring
    (2027, 11, 7),  // New York fall
    (2027, 4, 4),   // Lord Howe fall
    (2027, 10, 3),  // Lord Howe spring
    (1986, 1, 1),   // Kathmandu +05:30 -> +05:45
    (2011, 12, 30), // Apia skipped day
    (2011, 9, 24),  // Apia DST start
    (2027, 6, 15),  // nothing special
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn instant(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap()
}

// ---- generators ---------------------------------------------------------------------

/// Non-overlapping intervals of one day, some touching: sorted distinct cut points,
/// consecutive pairs each kept or dropped.
fn day_intervals() -> impl Strategy<Value = Vec<LocalInterval>> {
    (
        proptest::collection::btree_set(
            prop_oneof![
                3 => (0u32..=96).prop_map(|q| q * 15),
                // Around the hours where clocks change (01:00-05:00), in 5-minute steps.
                3 => (12u32..=60).prop_map(|q| q * 5),
                1 => 0u32..=1440,
            ],
            0..9,
        ),
        proptest::collection::vec(proptest::bool::weighted(0.75), 8),
    )
        .prop_map(|(cuts, keep)| {
            let cuts: Vec<u32> = cuts.into_iter().collect();
            cuts.windows(2)
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(w, _)| LocalInterval {
                    start: LocalTime::from_minutes(w[0]).unwrap(),
                    end: LocalTime::from_minutes(w[1]).unwrap(),
                })
                .collect()
        })
}

#[derive(Debug, Clone)]
struct Case {
    schedule: Schedule,
    window: TimeRange,
    duration: Duration,
    now: DateTime<Utc>,
    blocked: Vec<TimeRange>,
    /// A split point inside the window, in minutes from its start.
    split: i64,
}

fn case() -> impl Strategy<Value = Case> {
    let zone = proptest::sample::select(&ZONES[..]);
    let weekly = proptest::collection::vec(day_intervals(), 7);
    let base = prop_oneof![
        3 => proptest::sample::select(&INTERESTING[..])
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
        1 => (0i64..7000).prop_map(|d| {
            NaiveDate::from_ymd_opt(2010, 1, 1).unwrap() + Duration::days(d)
        }),
    ];
    let policy = (
        proptest::sample::select(&[5u32, 10, 15, 20, 30, 45, 60, 7, 90, 1440][..]),
        prop_oneof![Just(0u32), 0u32..=90],
        prop_oneof![Just(0u32), 0u32..=90],
        prop_oneof![3 => Just(0u32), 1 => 0u32..=4000],
        prop_oneof![1 => 1u32..=3, 3 => 1u32..=40],
    );
    let shape = (
        -4i64..=1,                                      // window start, days from base
        0i64..=1440,                                    // window start minute offset
        prop_oneof![1i64..=3 * 1440, 1i64..=31 * 1440], // window length in minutes
        prop_oneof![4 => 5i64..=120, 1 => 5i64..=1440], // duration in minutes
        // now, minutes from window start; often on a 15-minute grid
        prop_oneof![(-266i64..=40).prop_map(|q| q * 15), -4000i64..=4000],
        0i64..=31 * 1440, // split point
    );
    (zone, weekly, base, policy, shape).prop_flat_map(|(zone, weekly, base, policy, shape)| {
        let (step, before, after, notice, horizon) = policy;
        let (day_off, minute_off, len, duration, now_off, split) = shape;
        let tz: Tz = zone.parse().unwrap();
        let start = base.and_hms_opt(0, 0, 0).unwrap().and_utc()
            + Duration::days(day_off)
            + Duration::minutes(minute_off);
        let window = TimeRange::new(start, start + Duration::minutes(len)).unwrap();
        let override_days = proptest::collection::vec((-3i64..=33, day_intervals()), 0..4);
        let blocked = proptest::collection::vec((-200i64..=len + 200, 1i64..=180), 0..12);
        (override_days, blocked).prop_map(move |(ovs, blocked)| {
            let mut seen = BTreeSet::new();
            let overrides = ovs
                .into_iter()
                .filter_map(|(d, intervals)| {
                    let date = start.date_naive() + Duration::days(d);
                    seen.insert(date)
                        .then_some(DateOverride { date, intervals })
                })
                .collect();
            let weekly = weekly
                .iter()
                .zip(WEEKDAYS)
                .flat_map(|(ivs, weekday)| {
                    ivs.iter().map(move |iv| WeeklyInterval {
                        weekday,
                        start: iv.start,
                        end: iv.end,
                    })
                })
                .collect();
            let schedule = Schedule {
                timezone: tz,
                weekly,
                overrides,
                buffer_before_minutes: before,
                buffer_after_minutes: after,
                min_notice_minutes: notice,
                horizon_days: horizon,
                slot_step_minutes: step,
            };
            let blocked = blocked
                .into_iter()
                .map(|(s, l)| {
                    let a = start + Duration::minutes(s);
                    TimeRange::new(a, a + Duration::minutes(l)).unwrap()
                })
                .collect();
            Case {
                schedule,
                window,
                duration: Duration::minutes(duration),
                now: start + Duration::minutes(now_off),
                blocked,
                split: split % len,
            }
        })
    })
}

// ---- the oracle ---------------------------------------------------------------------

fn jiff_civil(l: NaiveDateTime) -> jiff::civil::DateTime {
    jiff::civil::DateTime::new(
        l.year() as i16,
        l.month() as i8,
        l.day() as i8,
        l.hour() as i8,
        l.minute() as i8,
        0,
        0,
    )
    .unwrap()
}

/// Unix seconds of the first (`first = true`) or last instant of a wall time, by jiff.
fn jiff_instant(tz: &jiff::tz::TimeZone, l: NaiveDateTime, first: bool) -> i64 {
    use jiff::tz::AmbiguousOffset;
    let naive = l.and_utc().timestamp();
    match tz.to_ambiguous_timestamp(jiff_civil(l)).offset() {
        AmbiguousOffset::Unambiguous { offset } => naive - i64::from(offset.seconds()),
        AmbiguousOffset::Fold { before, after } => {
            naive - i64::from(if first { before } else { after }.seconds())
        }
        AmbiguousOffset::Gap { after, .. } => {
            let probe = jiff::Timestamp::from_second(naive - i64::from(after.seconds())).unwrap();
            tz.following(probe).next().unwrap().timestamp().as_second()
        }
    }
}

fn intervals_on(s: &Schedule, date: NaiveDate) -> Vec<(u32, u32)> {
    match s.overrides.iter().find(|o| o.date == date) {
        Some(o) => o
            .intervals
            .iter()
            .map(|i| (i.start.minutes(), i.end.minutes()))
            .collect(),
        None => s
            .weekly
            .iter()
            .filter(|w| w.weekday == date.weekday())
            .map(|w| (w.start.minutes(), w.end.minutes()))
            .collect(),
    }
}

/// UTC images of every local interval of the dates around `window`, by jiff.
fn oracle_pieces(s: &Schedule, window: &TimeRange) -> Vec<(i64, i64)> {
    let tz = jiff::tz::TimeZone::get(s.timezone.name()).unwrap();
    let mut out = Vec::new();
    let mut d = window.start().date_naive() - Duration::days(3);
    while d <= window.end().date_naive() + Duration::days(3) {
        for (a, b) in intervals_on(s, d) {
            let mid = d.and_hms_opt(0, 0, 0).unwrap();
            let start = jiff_instant(&tz, mid + Duration::minutes(a.into()), true);
            let end = jiff_instant(&tz, mid + Duration::minutes(b.into()), false);
            if start < end {
                out.push((start, end));
            }
        }
        d += Duration::days(1);
    }
    out
}

/// Whether the union of `pieces` covers `[a, b)`.
fn covered(pieces: &[(i64, i64)], a: i64, b: i64) -> bool {
    let mut reach = a;
    loop {
        if reach >= b {
            return true;
        }
        match pieces
            .iter()
            .filter(|p| p.0 <= reach && reach < p.1)
            .map(|p| p.1)
            .max()
        {
            Some(e) => reach = e,
            None => return false,
        }
    }
}

fn oracle_slots(c: &Case, window: &TimeRange) -> Vec<(i64, i64)> {
    let s = &c.schedule;
    let pieces = oracle_pieces(s, window);
    let step = i64::from(s.slot_step_minutes) * 60;
    let len = c.duration.num_seconds();
    let before = i64::from(s.buffer_before_minutes) * 60;
    let after = i64::from(s.buffer_after_minutes) * 60;
    let notice = secs(c.now) + i64::from(s.min_notice_minutes) * 60;
    let horizon = secs(c.now) + i64::from(s.horizon_days) * 86_400;
    let mut out = BTreeSet::new();
    for &(ps, pe) in &pieces {
        let mut t = ps;
        while t < pe {
            let ok = t >= secs(window.start())
                && t + len <= secs(window.end())
                && t >= notice
                && t < horizon
                && covered(&pieces, t, t + len)
                && c.blocked
                    .iter()
                    .all(|b| !(secs(b.start()) < t + len + after && secs(b.end()) > t - before));
            if ok {
                out.insert((t, t + len));
            }
            t += step;
        }
    }
    out.into_iter().collect()
}

fn as_secs(slots: &[TimeRange]) -> Vec<(i64, i64)> {
    slots
        .iter()
        .map(|r| (secs(r.start()), secs(r.end())))
        .collect()
}

/// Whether the wall time of `t` (by jiff) lies in one of its local date's intervals.
/// `None` when that wall time is repeated (fall-back), where wall time alone cannot say.
fn wall_time_in_hours(s: &Schedule, tz: &jiff::tz::TimeZone, t: i64) -> Option<bool> {
    let z = jiff::Timestamp::from_second(t)
        .unwrap()
        .to_zoned(tz.clone());
    let dt = z.datetime();
    if tz.to_ambiguous_timestamp(dt).is_ambiguous() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(dt.year().into(), dt.month() as u32, dt.day() as u32)?;
    let second_of_day =
        i64::from(dt.hour()) * 3600 + i64::from(dt.minute()) * 60 + i64::from(dt.second());
    Some(
        intervals_on(s, date)
            .iter()
            .any(|&(a, b)| i64::from(a) * 60 <= second_of_day && second_of_day < i64::from(b) * 60),
    )
}

/// The slots equal the oracle's, are sorted and unique, respect notice, horizon, window
/// and bookings, lie in working hours by wall time, and are admitted.
fn slots_match_naive_oracle_holds(c: &Case) -> Result<(), TestCaseError> {
    let s = &c.schedule;
    let slots = s
        .available_slots(&c.window, c.duration, c.now, &c.blocked)
        .unwrap();
    prop_assert_eq!(as_secs(&slots), oracle_slots(c, &c.window));

    prop_assert!(
        slots.windows(2).all(|w| w[0].start() < w[1].start()),
        "sorted and unique"
    );
    let jtz = jiff::tz::TimeZone::get(s.timezone.name()).unwrap();
    let notice = c.now + Duration::minutes(s.min_notice_minutes.into());
    let horizon = c.now + Duration::days(s.horizon_days.into());
    for slot in &slots {
        prop_assert_eq!(slot.duration(), c.duration);
        prop_assert!(c.window.contains(slot));
        prop_assert!(slot.start() >= notice && slot.start() < horizon);
        let widened = slot.widen(s.buffer_before(), s.buffer_after()).unwrap();
        prop_assert!(c.blocked.iter().all(|b| !b.overlaps(&widened)));
        prop_assert!(s.admits(slot, c.now).is_ok());
        // Every 15 minutes (and the last second) of the slot is inside working hours by
        // local wall time, wherever the wall time is unambiguous.
        let (a, b) = (secs(slot.start()), secs(slot.end()));
        for t in (a..b).step_by(900).chain([b - 1]) {
            let inside = wall_time_in_hours(s, &jtz, t);
            prop_assert_ne!(inside, Some(false), "at {}", instant(t));
        }
    }
    Ok(())
}

/// Working ranges are the union of the oracle's pieces, clipped to the window, merged
/// where they touch; `admits` agrees with the oracle for arbitrary ranges.
fn working_ranges_and_admits_match_oracle_holds(
    c: &Case,
    probes: &[(i64, i64)],
) -> Result<(), TestCaseError> {
    let s = &c.schedule;
    let ranges = s.working_ranges(&c.window);
    let pieces = oracle_pieces(s, &c.window);
    prop_assert!(
        ranges.windows(2).all(|w| w[0].end() < w[1].start()),
        "disjoint, not touching"
    );
    for r in &ranges {
        prop_assert!(c.window.contains(r));
        prop_assert!(covered(&pieces, secs(r.start()), secs(r.end())));
        // Maximal: the second just outside is not working time (or outside the window).
        let (start, end) = (secs(r.start()), secs(r.end()));
        prop_assert!(r.start() == c.window.start() || !covered(&pieces, start - 1, start));
        prop_assert!(r.end() == c.window.end() || !covered(&pieces, end, end + 1));
    }
    let notice = c.now + Duration::minutes(s.min_notice_minutes.into());
    let horizon = c.now + Duration::days(s.horizon_days.into());
    for &(off, len) in probes {
        let start = c.window.start() + Duration::minutes(off % c.window.duration().num_minutes());
        let r = TimeRange::new(start, start + Duration::minutes(len)).unwrap();
        let expected = covered(&pieces, secs(r.start()), secs(r.end()))
            && r.start() >= notice
            && r.start() < horizon;
        prop_assert_eq!(s.admits(&r, c.now).is_ok(), expected, "{:?}", r);
    }
    Ok(())
}

/// Splitting the window at `b` only drops the slots that straddle `b` (see the module
/// docs for the exact statement). Returns whether the case exercised the claim that
/// nothing straddles the end of the first slot (so the caller can count how often).
fn splitting_the_window_only_drops_straddling_slots_holds(c: &Case) -> Result<bool, TestCaseError> {
    let s = &c.schedule;
    let slots = |w: TimeRange| {
        s.available_slots(&w, c.duration, c.now, &c.blocked)
            .unwrap()
    };
    let all = slots(c.window);
    let split_at = |b: DateTime<Utc>| {
        let left = slots(TimeRange::new(c.window.start(), b).unwrap());
        let right = slots(TimeRange::new(b, c.window.end()).unwrap());
        (left, right)
    };

    let b = c.window.start() + Duration::minutes(c.split.max(1));
    prop_assume!(b < c.window.end());
    let (left, right) = split_at(b);
    let expect_left: Vec<_> = all.iter().copied().filter(|r| r.end() <= b).collect();
    let expect_right: Vec<_> = all.iter().copied().filter(|r| r.start() >= b).collect();
    prop_assert_eq!(&left, &expect_left);
    prop_assert_eq!(&right, &expect_right);
    let straddling = all.iter().any(|r| r.start() < b && b < r.end());
    let union: Vec<_> = left.into_iter().chain(right).collect();
    prop_assert_eq!(union == all, !straddling);

    // At the end of the first slot `f`, a grid point. Say the step is at least the
    // duration and `f` starts in exactly one local interval's UTC image `P` and ends inside
    // it. Slots of `P` start on its grid, at or after `f.end`; slots starting before `f`
    // do not exist (`f` is the first); so a slot straddling `f.end` would have to start in
    // another image that begins strictly inside `f`, and where there is none, nothing
    // straddles it and the union is exact. (This holds for schedules of many intervals,
    // touching ones included.)
    let mut claimed = false;
    if let Some(first) = all.first() {
        let b = first.end();
        if b < c.window.end() {
            let (left, right) = split_at(b);
            let union: Vec<_> = left.into_iter().chain(right).collect();
            let straddling = all.iter().any(|r| r.start() < b && b < r.end());
            let pieces = oracle_pieces(s, &c.window);
            let (start, end) = (secs(first.start()), secs(first.end()));
            let holding: Vec<_> = pieces
                .iter()
                .filter(|&&(ps, pe)| ps <= start && start < pe)
                .collect();
            let alone = matches!(holding.as_slice(), [p] if end <= p.1)
                && !pieces.iter().any(|&(qs, _)| start < qs && qs < end);
            if i64::from(s.slot_step_minutes) >= c.duration.num_minutes() && alone {
                prop_assert!(!straddling);
                claimed = s.weekly.len() + s.overrides.len() > 1;
            }
            prop_assert_eq!(union == all, !straddling);
        }
    }
    Ok(claimed)
}

/// The generated schedules are valid by construction (values in range, intervals of a
/// day disjoint, override dates unique), so their JSON form validates back to them.
fn serde_round_trip_holds(c: &Case) -> Result<(), TestCaseError> {
    let json = serde_json::to_string(&c.schedule).unwrap();
    let back: Schedule = serde_json::from_str(&json).unwrap();
    prop_assert_eq!(&back, &c.schedule);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn slots_match_naive_oracle(c in case()) {
        slots_match_naive_oracle_holds(&c)?;
    }

    #[test]
    fn working_ranges_and_admits_match_oracle(
        c in case(),
        probes in proptest::collection::vec((0i64..=31 * 1440, 1i64..=600), 10),
    ) {
        working_ranges_and_admits_match_oracle_holds(&c, &probes)?;
    }


    #[test]
    fn serde_round_trip(c in case()) {
        serde_round_trip_holds(&c)?;
    }
}

/// The splitting property over 256 cases, counting the cases of schedules with several
/// intervals where the "nothing straddles the end of the first slot" claim applied: it
/// must apply in at least one case in 32 (it applies in about one in eight), so that it
/// cannot quietly stop being exercised.
#[test]
fn splitting_the_window_only_drops_straddling_slots() {
    let cases = 256;
    let claimed = AtomicU32::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(&case(), |c| {
        if splitting_the_window_only_drops_straddling_slots_holds(&c)? {
            claimed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let claimed = claimed.into_inner();
    assert!(
        claimed * 32 >= cases,
        "the straddling claim applied in only {claimed} of {cases} cases"
    );
}
