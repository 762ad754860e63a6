//! Conversion of wall-clock boundaries in an IANA zone to UTC instants.
//!
//! A working interval `[start, end)` on a local date becomes the UTC range
//! `[first(start), last(end))` where
//!
//! - `first(L)` is the earliest real instant whose wall time is at or after `L`: the
//!   instant itself when `L` exists once, its *first* occurrence when `L` is repeated
//!   (fall-back), and the transition instant (the first valid instant after the gap) when
//!   `L` falls into a spring-forward gap;
//! - `last(L)` is the latest instant such that every wall time just before it is before
//!   `L`: the instant itself when `L` exists once, its *second* occurrence when `L` is
//!   repeated, and the transition instant (the gap start) when `L` is in a gap.
//!
//! So every real instant whose wall time lies in `[start, end)` is inside the range,
//! each once, and a whole interval inside a gap (or a skipped day, like Pacific/Apia on
//! 2011-12-30) becomes empty.
//!
//! Instants are handled as Unix seconds: local boundaries are whole minutes and zone
//! offsets whole seconds, so every boundary is a whole second.

use chrono::{Duration, LocalResult, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// Unix seconds of the earliest instant whose wall time in `tz` is at or after `local`.
///
/// `None` only when the computation leaves chrono's representable range.
pub(crate) fn first_instant(tz: Tz, local: &NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(local) {
        LocalResult::Single(t) => Some(t.timestamp()),
        LocalResult::Ambiguous(a, b) => Some(a.timestamp().min(b.timestamp())),
        LocalResult::None => gap_transition(tz, local),
    }
}

/// Unix seconds of the latest instant before which all wall times in `tz` are before
/// `local` (the second occurrence of a repeated time, the gap start for a skipped time).
pub(crate) fn last_instant(tz: Tz, local: &NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(local) {
        LocalResult::Single(t) => Some(t.timestamp()),
        LocalResult::Ambiguous(a, b) => Some(a.timestamp().max(b.timestamp())),
        LocalResult::None => gap_transition(tz, local),
    }
}

/// The UTC offset in seconds in force at Unix second `t`.
fn offset_at(tz: Tz, t: i64) -> Option<i64> {
    let utc = chrono::DateTime::from_timestamp(t, 0)?.naive_utc();
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// For a wall time `local` that does not exist in `tz`, the instant at which the clock
/// jumps over it: the smallest instant whose wall time is after `local`.
///
/// Offsets never exceed 26 hours in magnitude, so the instant lies within 36 hours of
/// `local` read as UTC; a binary search over that window finds it (wall time only runs
/// backwards at a fold, and no zone has a fold within a day and a half of a gap).
fn gap_transition(tz: Tz, local: &NaiveDateTime) -> Option<i64> {
    let target = local.and_utc().timestamp();
    let window = Duration::hours(36).num_seconds();
    let wall_reaches = |t: i64| offset_at(tz, t).map(|off| t + off >= target);
    let (mut lo, mut hi) = (target - window, target + window);
    // Invariant: wall(lo) < target <= wall(hi).
    if wall_reaches(lo)? || !wall_reaches(hi)? {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall_reaches(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        local(y, m, d, h, min).and_utc().timestamp()
    }

    #[test]
    fn new_york_gap_and_fold() {
        let ny = chrono_tz::America::New_York;
        // 2027-03-14 02:00 EST -> 03:00 EDT at 07:00Z.
        let gap = local(2027, 3, 14, 2, 30);
        assert_eq!(first_instant(ny, &gap), Some(utc(2027, 3, 14, 7, 0)));
        assert_eq!(last_instant(ny, &gap), Some(utc(2027, 3, 14, 7, 0)));
        assert_eq!(
            first_instant(ny, &local(2027, 3, 14, 3, 0)),
            Some(utc(2027, 3, 14, 7, 0))
        );
        // 2027-11-07 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
        let fold = local(2027, 11, 7, 1, 30);
        assert_eq!(first_instant(ny, &fold), Some(utc(2027, 11, 7, 5, 30)));
        assert_eq!(last_instant(ny, &fold), Some(utc(2027, 11, 7, 6, 30)));
    }

    /// Before 1970 Unix seconds are negative: the search window around a gap must be
    /// centred on the wall time itself, not on some fraction of it.
    #[test]
    fn gaps_before_1970_are_found() {
        let ny = chrono_tz::America::New_York;
        // 1965-04-25 02:00 EST -> 03:00 EDT at 07:00Z.
        let gap = local(1965, 4, 25, 2, 30);
        assert!(utc(1965, 4, 25, 7, 0) < 0);
        assert_eq!(first_instant(ny, &gap), Some(utc(1965, 4, 25, 7, 0)));
        assert_eq!(last_instant(ny, &gap), Some(utc(1965, 4, 25, 7, 0)));
    }

    #[test]
    fn apia_skipped_day_collapses_to_one_instant() {
        let apia = chrono_tz::Pacific::Apia;
        let t = utc(2011, 12, 30, 10, 0);
        for h in [0, 9, 23] {
            assert_eq!(first_instant(apia, &local(2011, 12, 30, h, 0)), Some(t));
            assert_eq!(last_instant(apia, &local(2011, 12, 30, h, 0)), Some(t));
        }
        assert_eq!(first_instant(apia, &local(2011, 12, 31, 0, 0)), Some(t));
    }

    /// Cross-checks both conversions against jiff, an independent tz implementation
    /// with its own bundled database, at every 15 minutes of every day that has a
    /// transition (plus the day before and after) in a span of years.
    #[test]
    fn matches_jiff_around_every_transition() {
        use jiff::civil::DateTime as JDateTime;
        use jiff::tz::{AmbiguousOffset, TimeZone as JTz};

        let zones = [
            ("Europe/Berlin", 2010, 2030),
            ("America/New_York", 2010, 2030),
            ("Australia/Lord_Howe", 2010, 2030),
            ("Asia/Kathmandu", 1985, 1987),
            ("Pacific/Apia", 2009, 2022),
        ];
        let mut checked = 0usize;
        for (name, from_year, to_year) in zones {
            let tz: Tz = name.parse().unwrap();
            let jtz = JTz::get(name).unwrap();
            let start = jiff::Timestamp::from_second(utc(from_year, 1, 1, 0, 0)).unwrap();
            let end = utc(to_year, 1, 1, 0, 0);
            let mut days = Vec::new();
            for tr in jtz.following(start) {
                let s = tr.timestamp().as_second();
                if s >= end {
                    break;
                }
                let d = tr.timestamp().to_zoned(jtz.clone()).date();
                days.push(
                    NaiveDate::from_ymd_opt(d.year().into(), d.month() as u32, d.day() as u32)
                        .unwrap(),
                );
            }
            assert!(!days.is_empty(), "{name} has transitions");
            for day in days {
                for offset_day in -1..=1 {
                    let date = day + Duration::days(offset_day);
                    for q in 0..96 {
                        let l = date.and_hms_opt(q / 4, (q % 4) * 15, 0).unwrap();
                        let jdt = JDateTime::new(
                            l.date().year() as i16,
                            l.date().month() as i8,
                            l.date().day() as i8,
                            (q / 4) as i8,
                            ((q % 4) * 15) as i8,
                            0,
                            0,
                        )
                        .unwrap();
                        let amb = jtz.to_ambiguous_timestamp(jdt);
                        let (first, last) = match amb.offset() {
                            AmbiguousOffset::Unambiguous { offset } => {
                                let t = l.and_utc().timestamp() - i64::from(offset.seconds());
                                (t, t)
                            }
                            AmbiguousOffset::Fold { before, after } => (
                                l.and_utc().timestamp() - i64::from(before.seconds()),
                                l.and_utc().timestamp() - i64::from(after.seconds()),
                            ),
                            AmbiguousOffset::Gap { after, .. } => {
                                // The transition: the last one at or before the instant
                                // this wall time would have under the new offset... found
                                // from jiff's own transition list.
                                let probe = jiff::Timestamp::from_second(
                                    l.and_utc().timestamp() - i64::from(after.seconds()),
                                )
                                .unwrap();
                                let tr = jtz.following(probe).next().unwrap();
                                let t = tr.timestamp().as_second();
                                (t, t)
                            }
                        };
                        assert_eq!(first_instant(tz, &l), Some(first), "{name} first {l}");
                        assert_eq!(last_instant(tz, &l), Some(last), "{name} last {l}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
