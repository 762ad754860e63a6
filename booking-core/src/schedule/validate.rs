//! The raw schedule body as received, and its validation into a [`Schedule`].

use std::collections::HashMap;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::model::{
    DateOverride, LocalInterval, LocalTime, Schedule, WeeklyInterval, parse_weekday, weekday_name,
};
use crate::error::{Error, Result, Validator};

/// Most weekly intervals a schedule may have.
pub const MAX_WEEKLY_INTERVALS: usize = 100;
/// Most date overrides a schedule may have.
pub const MAX_OVERRIDES: usize = 1000;
/// Allowed slot steps in minutes.
pub const SLOT_STEP_RANGE: std::ops::RangeInclusive<i64> = 5..=1440;
/// Allowed buffers (before and after) in minutes.
pub const BUFFER_RANGE: std::ops::RangeInclusive<i64> = 0..=1440;
/// Allowed minimum notice in minutes (up to a year).
pub const MIN_NOTICE_RANGE: std::ops::RangeInclusive<i64> = 0..=525_600;
/// Allowed booking horizon in days.
pub const HORIZON_DAYS_RANGE: std::ops::RangeInclusive<i64> = 1..=3660;

fn default_horizon_days() -> i64 {
    60
}

fn default_slot_step_minutes() -> i64 {
    30
}

/// The body of `PUT /v1/professionals/{id}/schedule` before validation.
///
/// Values are kept raw (strings, signed integers) so that a well-formed body with bad
/// values is reported field by field by [`ScheduleInput::validate`] instead of failing to
/// deserialize. Unknown fields are rejected. Absent fields take their defaults: no weekly
/// intervals, no overrides, buffers 0, notice 0, `horizon_days` 60, `slot_step_minutes` 30.
///
/// ```
/// use booking_core::schedule::ScheduleInput;
/// let input: ScheduleInput = serde_json::from_str(r#"{
///     "timezone": "Europe/Berlin",
///     "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"}]
/// }"#).unwrap();
/// let schedule = input.validate().unwrap();
/// assert_eq!(schedule.slot_step_minutes, 30);
/// assert_eq!(schedule.horizon_days, 60);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// IANA zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Weekly working hours.
    #[serde(default)]
    pub weekly: Vec<WeeklyIntervalInput>,
    /// Per-date replacements of the weekly hours.
    #[serde(default)]
    pub overrides: Vec<DateOverrideInput>,
    /// Minutes blocked before each booking, `0..=1440`.
    #[serde(default)]
    pub buffer_before_minutes: i64,
    /// Minutes blocked after each booking, `0..=1440`.
    #[serde(default)]
    pub buffer_after_minutes: i64,
    /// Minimum minutes between now and a booking's start, `0..=525600`.
    #[serde(default)]
    pub min_notice_minutes: i64,
    /// How many days ahead bookings may start, `1..=3660`.
    #[serde(default = "default_horizon_days")]
    pub horizon_days: i64,
    /// Grid step of offered slots in minutes, `5..=1440`.
    #[serde(default = "default_slot_step_minutes")]
    pub slot_step_minutes: i64,
}

/// One raw weekly interval: `{"weekday": "mon", "start": "09:00", "end": "17:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyIntervalInput {
    /// `"mon"` to `"sun"`.
    pub weekday: String,
    /// `"HH:MM"`.
    pub start: String,
    /// `"HH:MM"`, `"24:00"` allowed.
    pub end: String,
}

/// One raw date override: `{"date": "2027-03-10", "intervals": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateOverrideInput {
    /// `"YYYY-MM-DD"`.
    pub date: String,
    /// The working hours of that date; empty = day off.
    pub intervals: Vec<LocalIntervalInput>,
}

/// One raw interval of an override: `{"start": "10:00", "end": "12:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalIntervalInput {
    /// `"HH:MM"`.
    pub start: String,
    /// `"HH:MM"`, `"24:00"` allowed.
    pub end: String,
}

impl Default for ScheduleInput {
    /// Zone `UTC`, no hours, and the documented defaults for the numbers.
    fn default() -> Self {
        Self {
            timezone: "UTC".to_owned(),
            weekly: Vec::new(),
            overrides: Vec::new(),
            buffer_before_minutes: 0,
            buffer_after_minutes: 0,
            min_notice_minutes: 0,
            horizon_days: default_horizon_days(),
            slot_step_minutes: default_slot_step_minutes(),
        }
    }
}

impl From<&Schedule> for ScheduleInput {
    /// The raw form of a valid schedule; validating it gives the schedule back.
    fn from(s: &Schedule) -> Self {
        let interval = |start: LocalTime, end: LocalTime| LocalIntervalInput {
            start: start.to_string(),
            end: end.to_string(),
        };
        Self {
            timezone: s.timezone.name().to_owned(),
            weekly: s
                .weekly
                .iter()
                .map(|w| WeeklyIntervalInput {
                    weekday: weekday_name(w.weekday).to_owned(),
                    start: w.start.to_string(),
                    end: w.end.to_string(),
                })
                .collect(),
            overrides: s
                .overrides
                .iter()
                .map(|o| DateOverrideInput {
                    date: o.date.format("%Y-%m-%d").to_string(),
                    intervals: o
                        .intervals
                        .iter()
                        .map(|i| interval(i.start, i.end))
                        .collect(),
                })
                .collect(),
            buffer_before_minutes: i64::from(s.buffer_before_minutes),
            buffer_after_minutes: i64::from(s.buffer_after_minutes),
            min_notice_minutes: i64::from(s.min_notice_minutes),
            horizon_days: i64::from(s.horizon_days),
            slot_step_minutes: i64::from(s.slot_step_minutes),
        }
    }
}

/// Parses a strict `YYYY-MM-DD` date (four-digit year, two-digit month and day).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Validates one interval's two times; `Some` when both parse and `start < end`.
fn check_interval(
    v: &mut Validator,
    path: &str,
    start: &str,
    end: &str,
) -> Option<(LocalTime, LocalTime)> {
    let start_t = match LocalTime::parse_hhmm(start) {
        Some(t) if t.is_end_of_day() => {
            v.push(
                format!("{path}.start"),
                "24:00 is only allowed as an end; use 00:00 of the next day",
            );
            None
        }
        Some(t) => Some(t),
        None => {
            v.push(
                format!("{path}.start"),
                "must be a time \"HH:MM\" from 00:00 to 23:59",
            );
            None
        }
    };
    let end_t = LocalTime::parse_hhmm(end);
    if end_t.is_none() {
        v.push(
            format!("{path}.end"),
            "must be a time \"HH:MM\" from 00:00 to 24:00",
        );
    }
    let (s, e) = (start_t?, end_t?);
    if s >= e {
        v.push(format!("{path}.end"), "must be after start");
        return None;
    }
    Some((s, e))
}

/// Reports intervals of one day that overlap each other (touching is fine).
///
/// `items` are `(index in the input list, start, end)` of individually valid intervals;
/// `path(i)` is the path of item `i`. Of each overlapping pair the one later in the
/// input is reported, at the time of it that lies inside the other interval.
fn check_overlaps(
    v: &mut Validator,
    items: &mut [(usize, LocalTime, LocalTime)],
    path: impl Fn(usize) -> String,
    describe: impl Fn(usize) -> String,
) {
    items.sort_by_key(|&(i, s, e)| (s, e, i));
    let mut reported: Vec<usize> = Vec::new();
    let mut widest: Option<(usize, LocalTime, LocalTime)> = None;
    for &(i, s, e) in items.iter() {
        if let Some((j, js, je)) = widest {
            if s < je {
                // `j` starts no later than `i` and reaches past `i`'s start. Blame the
                // one later in the input: `i` at its start (which lies inside `j`),
                // `j` at its start when both start together, else at its end.
                let (blamed, other, field) = if i > j {
                    (i, j, "start")
                } else if js < s {
                    (j, i, "end")
                } else {
                    (j, i, "start")
                };
                if !reported.contains(&blamed) {
                    reported.push(blamed);
                    v.push(
                        format!("{}.{field}", path(blamed)),
                        format!(
                            "overlaps {} ({}); intervals of one day must not overlap",
                            path(other),
                            describe(other)
                        ),
                    );
                }
            }
            if e > je {
                widest = Some((i, s, e));
            }
        } else {
            widest = Some((i, s, e));
        }
    }
}

fn check_range(
    v: &mut Validator,
    field: &str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> u32 {
    if range.contains(&value)
        && let Ok(x) = u32::try_from(value)
    {
        return x;
    }
    v.push(
        field,
        format!("must be between {} and {}", range.start(), range.end()),
    );
    0
}

impl ScheduleInput {
    /// Checks every field and returns the validated [`Schedule`], or
    /// [`Error::Invalid`] listing every problem with its path (`timezone`,
    /// `weekly[2].end`, `overrides[0].intervals[1].start`, `slot_step_minutes`, ...).
    ///
    /// Rules: a known IANA zone; times exactly `"HH:MM"`, `start < end`, `24:00` only as
    /// an end; the intervals of one weekday, and of one override, must not overlap
    /// (touching is fine); override dates `YYYY-MM-DD` and unique; at most 100 weekly
    /// intervals and 1000 overrides; `slot_step_minutes` 5..=1440, buffers 0..=1440,
    /// `min_notice_minutes` 0..=525600, `horizon_days` 1..=3660.
    ///
    /// ```
    /// use booking_core::{Error, schedule::{ScheduleInput, WeeklyIntervalInput}};
    /// let input = ScheduleInput {
    ///     timezone: "Mars/Olympus".into(),
    ///     weekly: vec![WeeklyIntervalInput {
    ///         weekday: "mon".into(),
    ///         start: "10:00".into(),
    ///         end: "09:00".into(),
    ///     }],
    ///     ..ScheduleInput::default()
    /// };
    /// let Err(Error::Invalid(errors)) = input.validate() else { panic!() };
    /// let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    /// assert_eq!(fields, ["timezone", "weekly[0].end"]);
    /// ```
    pub fn validate(self) -> Result<Schedule> {
        let mut v = Validator::new();

        let timezone = self.timezone.parse::<Tz>().ok();
        v.check(
            timezone.is_some(),
            "timezone",
            "must be a known IANA time zone name, e.g. Europe/Berlin",
        );

        // Weekly intervals.
        v.check(
            self.weekly.len() <= MAX_WEEKLY_INTERVALS,
            "weekly",
            format!("at most {MAX_WEEKLY_INTERVALS} weekly intervals are allowed"),
        );
        let mut weekly = Vec::with_capacity(self.weekly.len());
        let mut per_day: [Vec<(usize, LocalTime, LocalTime)>; 7] = Default::default();
        for (i, w) in self.weekly.iter().enumerate() {
            let path = format!("weekly[{i}]");
            let day = parse_weekday(&w.weekday);
            if day.is_none() {
                v.push(
                    format!("{path}.weekday"),
                    "must be one of mon, tue, wed, thu, fri, sat, sun",
                );
            }
            let times = check_interval(&mut v, &path, &w.start, &w.end);
            if let (Some(weekday), Some((start, end))) = (day, times) {
                per_day[weekday.num_days_from_monday() as usize].push((i, start, end));
                weekly.push(WeeklyInterval {
                    weekday,
                    start,
                    end,
                });
            }
        }
        for items in &mut per_day {
            check_overlaps(
                &mut v,
                items,
                |i| format!("weekly[{i}]"),
                |i| {
                    let w = &self.weekly[i];
                    format!("{} {}-{}", w.weekday, w.start, w.end)
                },
            );
        }

        // Date overrides.
        v.check(
            self.overrides.len() <= MAX_OVERRIDES,
            "overrides",
            format!("at most {MAX_OVERRIDES} date overrides are allowed"),
        );
        let mut overrides = Vec::with_capacity(self.overrides.len());
        let mut seen: HashMap<NaiveDate, usize> = HashMap::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let path = format!("overrides[{i}]");
            let date = parse_date(&o.date);
            match date {
                None => v.push(format!("{path}.date"), "must be a date \"YYYY-MM-DD\""),
                Some(d) => {
                    if let Some(first) = seen.get(&d) {
                        v.push(
                            format!("{path}.date"),
                            format!("duplicate date; overrides[{first}] already sets {d}"),
                        );
                    } else {
                        seen.insert(d, i);
                    }
                }
            }
            let mut intervals = Vec::with_capacity(o.intervals.len());
            let mut items = Vec::with_capacity(o.intervals.len());
            for (k, iv) in o.intervals.iter().enumerate() {
                if let Some((start, end)) = check_interval(
                    &mut v,
                    &format!("{path}.intervals[{k}]"),
                    &iv.start,
                    &iv.end,
                ) {
                    items.push((k, start, end));
                    intervals.push(LocalInterval { start, end });
                }
            }
            check_overlaps(
                &mut v,
                &mut items,
                |k| format!("{path}.intervals[{k}]"),
                |k| {
                    let iv = &o.intervals[k];
                    format!("{}-{}", iv.start, iv.end)
                },
            );
            if let Some(date) = date {
                overrides.push(DateOverride { date, intervals });
            }
        }

        let buffer_before_minutes = check_range(
            &mut v,
            "buffer_before_minutes",
            self.buffer_before_minutes,
            BUFFER_RANGE,
        );
        let buffer_after_minutes = check_range(
            &mut v,
            "buffer_after_minutes",
            self.buffer_after_minutes,
            BUFFER_RANGE,
        );
        let min_notice_minutes = check_range(
            &mut v,
            "min_notice_minutes",
            self.min_notice_minutes,
            MIN_NOTICE_RANGE,
        );
        let horizon_days = check_range(
            &mut v,
            "horizon_days",
            self.horizon_days,
            HORIZON_DAYS_RANGE,
        );
        let slot_step_minutes = check_range(
            &mut v,
            "slot_step_minutes",
            self.slot_step_minutes,
            SLOT_STEP_RANGE,
        );

        v.finish()?;
        let timezone = timezone
            .ok_or_else(|| Error::invalid("timezone", "must be a known IANA time zone name"))?;
        Ok(Schedule {
            timezone,
            weekly,
            overrides,
            buffer_before_minutes,
            buffer_after_minutes,
            min_notice_minutes,
            horizon_days,
            slot_step_minutes,
        })
    }
}

#[cfg(test)]
mod tests;
