//! Working ranges, the admission check and slot generation.
//!
//! Everything here works on Unix seconds internally. Working-interval boundaries are
//! whole seconds (see [`super::local_time`]); instants from outside (window, `now`,
//! blocked ranges) may carry nanoseconds and are rounded in the direction that keeps
//! every comparison exact (a start `s` is `>= x` iff `s >= ceil(x)`, `< x` iff
//! `s < ceil(x)`, `<= x` iff `s <= floor(x)`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};

use super::local_time::{first_instant, last_instant};
use super::model::{LocalInterval, Schedule};
use crate::domain::TimeRange;
use crate::error::{Error, Result};

/// Longest window [`Schedule::available_slots`] accepts.
pub const MAX_QUERY_DAYS: i64 = 31;
/// Shortest slot duration in minutes.
pub const MIN_SLOT_MINUTES: i64 = 5;
/// Longest slot duration in minutes.
pub const MAX_SLOT_MINUTES: i64 = 1440;

const DAY: i64 = 86_400;

/// The UTC image `[start, end)` (Unix seconds) of one local working interval on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Piece {
    start: i64,
    end: i64,
}

fn floor_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

fn instant(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// `ceil(a / b)` for `b > 0`.
fn div_ceil(a: i64, b: i64) -> i64 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

fn at_minutes(date: NaiveDate, minutes: u32) -> Option<NaiveDateTime> {
    date.and_hms_opt(0, 0, 0)?
        .checked_add_signed(Duration::minutes(i64::from(minutes)))
}

impl Schedule {
    /// The local intervals that apply on `date`: its override's, else the weekly ones.
    fn intervals_on<'a>(
        &'a self,
        date: NaiveDate,
        overrides: &[(NaiveDate, &'a [LocalInterval])],
    ) -> impl Iterator<Item = (u32, u32)> + 'a {
        let found = overrides
            .binary_search_by_key(&date, |(d, _)| *d)
            .ok()
            .and_then(|i| overrides.get(i))
            .map(|(_, ivs)| *ivs);
        let from_override = found
            .into_iter()
            .flatten()
            .map(|iv| (iv.start.minutes(), iv.end.minutes()));
        let weekday = date.weekday();
        let from_weekly = self
            .weekly
            .iter()
            .filter(move |w| found.is_none() && w.weekday == weekday)
            .map(|w| (w.start.minutes(), w.end.minutes()));
        from_override.chain(from_weekly)
    }

    /// The UTC images of all local working intervals that overlap `[from, to)`
    /// (Unix seconds), sorted by start. Each piece is complete, not clipped.
    fn pieces(&self, from: i64, to: i64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let (Some(first), Some(last)) = (instant(from), instant(to)) else {
            return pieces;
        };
        // A local date's interval lies within about a day and a few hours of that date
        // read as UTC (offsets are below 26 h); two days of margin on each side.
        let first_date = first.date_naive().checked_sub_days(chrono::Days::new(2));
        let last_date = last.date_naive().checked_add_days(chrono::Days::new(2));
        let first_date = first_date.unwrap_or(first.date_naive());
        let last_date = last_date.unwrap_or(last.date_naive());

        // Overrides of those dates, sorted for lookup; the first of a duplicated date
        // (impossible after validation) wins.
        let mut overrides: Vec<(NaiveDate, &[LocalInterval])> = self
            .overrides
            .iter()
            .filter(|o| o.date >= first_date && o.date <= last_date)
            .map(|o| (o.date, o.intervals.as_slice()))
            .collect();
        overrides.sort_by_key(|(d, _)| *d);
        overrides.dedup_by_key(|(d, _)| *d);

        let tz = self.timezone;
        let mut date = first_date;
        while date <= last_date {
            for (s, e) in self.intervals_on(date, &overrides) {
                if s >= e {
                    continue;
                }
                let (Some(ls), Some(le)) = (at_minutes(date, s), at_minutes(date, e)) else {
                    continue;
                };
                let (Some(start), Some(end)) = (first_instant(tz, &ls), last_instant(tz, &le))
                else {
                    continue;
                };
                if start < end && start < to && end > from {
                    pieces.push(Piece { start, end });
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        pieces.sort_unstable();
        pieces
    }

    /// Working intervals (UTC, half-open) that intersect `window`, in order, merged where
    /// they touch, computed from weekly rules/overrides in local time.
    ///
    /// The result is working hours ∩ `window` as maximal ranges: ranges are clipped to
    /// the window (a schedule open around the clock has no finite interval to return
    /// otherwise). Intervals of consecutive days that touch (`22:00-24:00` and the next
    /// day's `00:00-02:00`) form one range, as do intervals that overlap in UTC at a
    /// fall-back. See the [module docs](super) for the DST rules.
    ///
    /// ```
    /// use booking_core::{TimeRange, schedule::Schedule};
    /// use chrono::{TimeZone, Utc};
    /// let s = Schedule::always_open(chrono_tz::UTC);
    /// let w = TimeRange::new(
    ///     Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap(),
    ///     Utc.with_ymd_and_hms(2027, 3, 4, 0, 0, 0).unwrap(),
    /// ).unwrap();
    /// assert_eq!(s.working_ranges(&w), vec![w]);
    /// ```
    pub fn working_ranges(&self, window: &TimeRange) -> Vec<TimeRange> {
        let pieces = self.pieces(floor_secs(window.start()), ceil_secs(window.end()));
        let mut out = Vec::new();
        let mut current: Option<(i64, i64)> = None;
        let flush = |(s, e): (i64, i64), out: &mut Vec<TimeRange>| {
            let (Some(s), Some(e)) = (instant(s), instant(e)) else {
                return;
            };
            if let Ok(r) = TimeRange::new(s.max(window.start()), e.min(window.end())) {
                out.push(r);
            }
        };
        for p in pieces {
            current = match current {
                Some((s, e)) if p.start <= e => Some((s, e.max(p.end))),
                Some(done) => {
                    flush(done, &mut out);
                    Some((p.start, p.end))
                }
                None => Some((p.start, p.end)),
            };
        }
        if let Some(done) = current {
            flush(done, &mut out);
        }
        out
    }

    /// `Ok(())` if `range` may be booked at `now` as far as the schedule is concerned.
    ///
    /// The range must lie inside one working interval (touching intervals count as one,
    /// also across midnight: `22:00-24:00` plus the next day's `00:00-02:00`), start at
    /// least `min_notice_minutes` after `now`, and start less than `horizon_days` × 24 h
    /// after `now`. Otherwise [`Error::OutsideAvailability`] with a human-readable reason.
    /// Bookings are not looked at, and the range need not be on the slot grid.
    ///
    /// ```
    /// use booking_core::{TimeRange, schedule::Schedule};
    /// use chrono::{TimeZone, Utc};
    /// let s = Schedule::always_open(chrono_tz::UTC);
    /// let now = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
    /// let r = TimeRange::new(now, now + chrono::Duration::minutes(45)).unwrap();
    /// assert!(s.admits(&r, now).is_ok());
    /// ```
    pub fn admits(&self, range: &TimeRange, now: DateTime<Utc>) -> Result<()> {
        let ranges = self.working_ranges(range);
        if ranges.as_slice() != [*range] {
            return Err(Error::OutsideAvailability(
                "the requested time is not within the professional's working hours".to_owned(),
            ));
        }
        let notice = Duration::minutes(i64::from(self.min_notice_minutes));
        if now
            .checked_add_signed(notice)
            .is_none_or(|t| range.start() < t)
        {
            return Err(Error::OutsideAvailability(format!(
                "bookings must start at least {} minutes from now",
                self.min_notice_minutes
            )));
        }
        let horizon = Duration::days(i64::from(self.horizon_days));
        if now
            .checked_add_signed(horizon)
            .is_some_and(|t| range.start() >= t)
        {
            return Err(Error::OutsideAvailability(format!(
                "bookings can start at most {} days ahead",
                self.horizon_days
            )));
        }
        Ok(())
    }

    /// Offered slots of `duration` in `window`, sorted ascending and unique.
    ///
    /// A slot `[s, s + duration)` is offered iff it lies inside one working interval (as
    /// in [`Schedule::admits`]); `s` is on the step grid of the local interval it starts
    /// in, counted in real elapsed minutes from that interval's UTC start; `s >= now +
    /// notice` and `s < now + horizon`; the slot lies within `window`; and the slot
    /// widened by the buffers overlaps none of `blocked` (the blocked ranges of active
    /// bookings, in any order).
    ///
    /// The grid does not depend on the window, so the result for a window is the result
    /// for any larger window filtered to the slots inside it.
    ///
    /// Errors: a window longer than 31 days (`Error::invalid("to", ..)`); a duration
    /// that is not a whole number of minutes in `5..=1440`
    /// (`Error::invalid("duration_minutes", ..)`).
    ///
    /// Cost: O(days × intervals per day + blocked + candidate starts); the blocked ranges
    /// are sorted once and swept with one pointer.
    pub fn available_slots(
        &self,
        window: &TimeRange,
        duration: Duration,
        now: DateTime<Utc>,
        blocked: &[TimeRange],
    ) -> Result<Vec<TimeRange>> {
        if window.duration() > Duration::days(MAX_QUERY_DAYS) {
            return Err(Error::invalid(
                "to",
                format!("the query range must be at most {MAX_QUERY_DAYS} days"),
            ));
        }
        let minutes = duration.num_minutes();
        if duration != Duration::minutes(minutes)
            || !(MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES).contains(&minutes)
        {
            let (lo, hi) = (MIN_SLOT_MINUTES, MAX_SLOT_MINUTES);
            return Err(Error::invalid(
                "duration_minutes",
                format!("must be a whole number of minutes from {lo} to {hi}"),
            ));
        }
        let len = minutes * 60;
        let step = i64::from(self.slot_step_minutes.max(1)) * 60;
        let before = i64::from(self.buffer_before_minutes) * 60;
        let after = i64::from(self.buffer_after_minutes) * 60;

        let now_s = ceil_secs(now);
        // Earliest allowed start, first forbidden start, latest allowed end.
        let lowest = ceil_secs(window.start()).max(now_s + i64::from(self.min_notice_minutes) * 60);
        let horizon = now_s + i64::from(self.horizon_days) * DAY;
        let highest_end = floor_secs(window.end());
        let mut out = Vec::new();
        if lowest >= horizon || lowest + len > highest_end {
            return Ok(out);
        }

        let busy = busy_ranges(blocked, lowest - before, highest_end + after);
        let mut sweep = Sweep {
            busy: &busy,
            next: 0,
        };
        let mut emit = |s: i64, out: &mut Vec<TimeRange>| {
            if sweep.is_free(s - before, s + len + after)
                && let (Some(a), Some(b)) = (instant(s), instant(s + len))
                && let Ok(r) = TimeRange::new(a, b)
            {
                out.push(r);
            }
        };

        let pieces = self.pieces(lowest, highest_end);
        let mut scratch: Vec<i64> = Vec::new();
        let mut i = 0;
        while i < pieces.len() {
            // One working interval: pieces[i..j], chained where they touch or overlap.
            let mut end = pieces[i].end;
            let mut overlapping = false;
            let mut j = i + 1;
            while j < pieces.len() && pieces[j].start <= end {
                overlapping |= pieces[j].start < end;
                end = end.max(pieces[j].end);
                j += 1;
            }
            let last_end = end.min(highest_end);
            let group = &pieces[i..j];
            i = j;
            let candidates = group.iter().flat_map(|p| {
                let first = p.start + step * div_ceil((lowest - p.start).max(0), step);
                let stop = p.end.min(horizon).min(last_end - len + 1);
                (0..)
                    .map(move |k| first + k * step)
                    .take_while(move |&s| s < stop)
            });
            if overlapping {
                // Only at a fall-back can two pieces overlap; their grids interleave.
                scratch.clear();
                scratch.extend(candidates);
                scratch.sort_unstable();
                scratch.dedup();
                for &s in &scratch {
                    emit(s, &mut out);
                }
            } else {
                for s in candidates {
                    emit(s, &mut out);
                }
            }
        }
        Ok(out)
    }
}

/// The blocked ranges that overlap `[reach_from, reach_to)` (Unix seconds), as whole
/// seconds (start rounded down, end up: exact for overlap tests with whole-second
/// ranges), sorted and merged where they overlap or touch, so no two share an instant
/// or an end point.
fn busy_ranges(blocked: &[TimeRange], reach_from: i64, reach_to: i64) -> Vec<(i64, i64)> {
    let mut busy: Vec<(i64, i64)> = blocked
        .iter()
        .map(|b| (floor_secs(b.start()), ceil_secs(b.end())))
        .filter(|&(s, e)| e > reach_from && s < reach_to)
        .collect();
    busy.sort_unstable();
    let mut merged = 0usize;
    for i in 0..busy.len() {
        let (s, e) = busy[i];
        if merged > 0 && s <= busy[merged - 1].1 {
            busy[merged - 1].1 = busy[merged - 1].1.max(e);
        } else {
            busy[merged] = (s, e);
            merged += 1;
        }
    }
    busy.truncate(merged);
    busy
}

/// A pointer into disjoint, sorted busy ranges, advanced by ascending queries.
struct Sweep<'a> {
    busy: &'a [(i64, i64)],
    next: usize,
}

impl Sweep<'_> {
    /// Whether `[from, to)` overlaps no busy range; `from` must not decrease between calls.
    fn is_free(&mut self, from: i64, to: i64) -> bool {
        while self.busy.get(self.next).is_some_and(|&(_, e)| e <= from) {
            self.next += 1;
        }
        self.busy.get(self.next).is_none_or(|&(s, _)| s >= to)
    }
}

#[cfg(test)]
mod tests;
