//! The validated schedule types and their wire format.
//!
//! Values of these types are built by [`ScheduleInput::validate`]; deserializing a
//! [`Schedule`] goes through the same validation.

use std::fmt;
use std::str::FromStr;

use chrono::{Duration, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validate::ScheduleInput;
use crate::error::{Error, Result};

/// A wall-clock time of day with minute precision, from `00:00` to `24:00`.
///
/// `24:00` means the end of the day; validation only accepts it as the end of an
/// interval. On the wire it is the string `"HH:MM"` (exactly two digits each).
///
/// ```
/// use booking_core::schedule::LocalTime;
/// let t: LocalTime = "09:30".parse().unwrap();
/// assert_eq!(t.minutes(), 570);
/// assert_eq!(t.to_string(), "09:30");
/// assert!("9:30".parse::<LocalTime>().is_err());
/// assert!("24:00".parse::<LocalTime>().unwrap().is_end_of_day());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime(u16);

impl LocalTime {
    /// `00:00`, the start of the day.
    pub const MIDNIGHT: LocalTime = LocalTime(0);
    /// `24:00`, the end of the day.
    pub const END_OF_DAY: LocalTime = LocalTime(24 * 60);

    /// The time `hour:minute`; `None` unless `minute < 60` and the time is at most `24:00`.
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        if minute < 60 && (hour < 24 || (hour == 24 && minute == 0)) {
            Self::from_minutes(hour * 60 + minute)
        } else {
            None
        }
    }

    /// The time that many minutes after midnight; `None` past `24:00` (1440).
    pub fn from_minutes(minutes: u32) -> Option<Self> {
        if minutes <= 24 * 60 {
            u16::try_from(minutes).ok().map(Self)
        } else {
            None
        }
    }

    /// Minutes since midnight, `0..=1440`.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }

    /// The hour, `0..=24`.
    pub fn hour(self) -> u32 {
        self.minutes() / 60
    }

    /// The minute within the hour, `0..60`.
    pub fn minute(self) -> u32 {
        self.minutes() % 60
    }

    /// Whether this is `24:00`.
    pub fn is_end_of_day(self) -> bool {
        self == Self::END_OF_DAY
    }

    /// Parses exactly `"HH:MM"` (`00:00` to `24:00`); `None` for anything else.
    pub fn parse_hhmm(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' {
            return None;
        }
        let digit = |i: usize| {
            let c = b[i];
            c.is_ascii_digit().then(|| u32::from(c - b'0'))
        };
        let hour = digit(0)? * 10 + digit(1)?;
        let minute = digit(3)? * 10 + digit(4)?;
        Self::new(hour, minute)
    }
}

impl FromStr for LocalTime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse_hhmm(s)
            .ok_or_else(|| Error::invalid("time", "must be a time \"HH:MM\" from 00:00 to 24:00"))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The wire name of a weekday: `"mon"` to `"sun"`.
///
/// ```
/// use booking_core::schedule::{parse_weekday, weekday_name};
/// assert_eq!(weekday_name(chrono::Weekday::Wed), "wed");
/// assert_eq!(parse_weekday("sun"), Some(chrono::Weekday::Sun));
/// assert_eq!(parse_weekday("Sunday"), None);
/// ```
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Parses the wire name of a weekday (`"mon"` to `"sun"`, lower case, exactly).
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn serialize_weekday<S: Serializer>(day: &Weekday, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(weekday_name(*day))
}

fn serialize_tz<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tz.name())
}

/// Working hours on every `weekday`, from `start` to `end` wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct WeeklyInterval {
    /// The day of the week (`"mon"` to `"sun"` on the wire).
    #[serde(serialize_with = "serialize_weekday")]
    pub weekday: Weekday,
    /// Inclusive local start.
    pub start: LocalTime,
    /// Exclusive local end (`24:00` = end of the day).
    pub end: LocalTime,
}

/// Working hours on one date, from `start` to `end` wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LocalInterval {
    /// Inclusive local start.
    pub start: LocalTime,
    /// Exclusive local end (`24:00` = end of the day).
    pub end: LocalTime,
}

/// Replaces the weekly rules of one local date; no intervals means a day off.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DateOverride {
    /// The local date (`"2027-03-10"` on the wire).
    pub date: NaiveDate,
    /// The working hours of that date, replacing the weekly ones.
    pub intervals: Vec<LocalInterval>,
}

/// A professional's validated working hours and booking policy.
///
/// Times are wall-clock times in `timezone`; see the [module docs](super) for how they
/// become UTC instants (DST gaps and folds). The fields are public for reading; a value
/// built by hand instead of through [`ScheduleInput::validate`] is still handled without
/// panics (invalid intervals are ignored, a zero step counts as one minute).
///
/// Serializes to the JSON body of `PUT /v1/professionals/{id}/schedule` and deserializes
/// from it through [`ScheduleInput`], so a deserialized value is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleInput")]
pub struct Schedule {
    /// The IANA zone the times are in (its name on the wire).
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    /// Working hours per weekday.
    pub weekly: Vec<WeeklyInterval>,
    /// Dates whose working hours replace the weekly ones.
    pub overrides: Vec<DateOverride>,
    /// Minutes blocked before every booking (may reach outside working hours).
    pub buffer_before_minutes: u32,
    /// Minutes blocked after every booking (may reach outside working hours).
    pub buffer_after_minutes: u32,
    /// A booking must start at least this many minutes after "now".
    pub min_notice_minutes: u32,
    /// A booking must start less than this many days (of 24 hours) after "now".
    pub horizon_days: u32,
    /// Offered slots start every this many minutes, counted from the start of each
    /// working interval.
    pub slot_step_minutes: u32,
}

impl TryFrom<ScheduleInput> for Schedule {
    type Error = Error;

    fn try_from(input: ScheduleInput) -> Result<Self> {
        input.validate()
    }
}

impl Schedule {
    /// Open around the clock every day: `00:00`-`24:00` each weekday, no buffers, no
    /// notice, a horizon of 3660 days and a 5-minute step. Handy for tests of other parts
    /// of the engine.
    ///
    /// ```
    /// use booking_core::schedule::Schedule;
    /// let s = Schedule::always_open(chrono_tz::Europe::Berlin);
    /// assert_eq!(s.weekly.len(), 7);
    /// ```
    pub fn always_open(tz: Tz) -> Schedule {
        let days = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        Schedule {
            timezone: tz,
            weekly: days
                .into_iter()
                .map(|weekday| WeeklyInterval {
                    weekday,
                    start: LocalTime::MIDNIGHT,
                    end: LocalTime::END_OF_DAY,
                })
                .collect(),
            overrides: Vec::new(),
            buffer_before_minutes: 0,
            buffer_after_minutes: 0,
            min_notice_minutes: 0,
            horizon_days: 3660,
            slot_step_minutes: 5,
        }
    }

    /// The buffer blocked before each booking.
    pub fn buffer_before(&self) -> Duration {
        Duration::minutes(i64::from(self.buffer_before_minutes))
    }

    /// The buffer blocked after each booking.
    pub fn buffer_after(&self) -> Duration {
        Duration::minutes(i64::from(self.buffer_after_minutes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_parse_and_display() {
        for (s, m) in [
            ("00:00", 0),
            ("09:05", 545),
            ("23:59", 1439),
            ("24:00", 1440),
        ] {
            let t = LocalTime::parse_hhmm(s).unwrap();
            assert_eq!(t.minutes(), m);
            assert_eq!(t.to_string(), s);
        }
        for bad in [
            "",
            "9:00",
            "09:0",
            "09-00",
            "24:01",
            "25:00",
            "09:60",
            "+9:00",
            "09:00 ",
            "0900",
            "٠٩:٠٠",
            "ab:cd",
        ] {
            assert!(LocalTime::parse_hhmm(bad).is_none(), "{bad}");
        }
        assert_eq!(LocalTime::new(24, 0), Some(LocalTime::END_OF_DAY));
        assert_eq!(LocalTime::new(24, 1), None);
        assert_eq!(LocalTime::from_minutes(1441), None);
    }

    #[test]
    fn local_time_serde() {
        let t: LocalTime = serde_json::from_str("\"17:45\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"17:45\"");
        assert!(serde_json::from_str::<LocalTime>("\"7:45\"").is_err());
    }

    #[test]
    fn weekday_names_round_trip() {
        for d in [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ] {
            assert_eq!(parse_weekday(weekday_name(d)), Some(d));
        }
        assert_eq!(parse_weekday("Mon"), None);
    }

    #[test]
    fn always_open_is_valid_and_round_trips() {
        let s = Schedule::always_open(chrono_tz::Asia::Kathmandu);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"timezone\":\"Asia/Kathmandu\""));
        assert!(json.contains("{\"weekday\":\"mon\",\"start\":\"00:00\",\"end\":\"24:00\"}"));
        let back: Schedule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.buffer_before(), Duration::zero());
    }

    #[test]
    fn buffers_are_their_minutes_as_durations() {
        let s = Schedule {
            buffer_before_minutes: 10,
            buffer_after_minutes: 1440,
            ..Schedule::always_open(chrono_tz::UTC)
        };
        assert_eq!(s.buffer_before(), Duration::minutes(10));
        assert_eq!(s.buffer_after(), Duration::days(1));
    }
}
