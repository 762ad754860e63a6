use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A half-open UTC interval `[start, end)` with `start < end` and a bounded length.
///
/// Half-open means back-to-back ranges (`[9:00, 10:00)` and `[10:00, 11:00)`) do not
/// overlap.
///
/// ```
/// use booking_core::TimeRange;
/// use chrono::{TimeZone, Utc};
///
/// let at = |h| Utc.with_ymd_and_hms(2027, 3, 1, h, 0, 0).unwrap();
/// let a = TimeRange::new(at(9), at(10)).unwrap();
/// let b = TimeRange::new(at(10), at(11)).unwrap();
/// assert!(!a.overlaps(&b));
/// assert!(TimeRange::new(at(10), at(9)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawRange> for TimeRange {
    type Error = Error;
    fn try_from(raw: RawRange) -> Result<Self> {
        TimeRange::new(raw.start, raw.end)
    }
}

impl TimeRange {
    /// The longest range the engine accepts: 400 days.
    pub const MAX_LENGTH: Duration = Duration::days(400);

    /// A range; `start` must be strictly before `end` and the length at most
    /// [`TimeRange::MAX_LENGTH`].
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start >= end {
            return Err(Error::invalid("end", "must be after start"));
        }
        if end - start > Self::MAX_LENGTH {
            return Err(Error::invalid("end", "range is longer than 400 days"));
        }
        Ok(Self { start, end })
    }

    /// The inclusive start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The exclusive end.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Whether the two half-open ranges share at least one instant.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &TimeRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the instant lies in `[start, end)`.
    pub fn contains_instant(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// The range widened by `before` at the start and `after` at the end
    /// (both must be non-negative). Used to derive a blocked range from a booked one.
    ///
    /// ```
    /// use booking_core::TimeRange;
    /// use chrono::{Duration, TimeZone, Utc};
    /// let at = |h, m| Utc.with_ymd_and_hms(2027, 3, 1, h, m, 0).unwrap();
    /// let booked = TimeRange::new(at(9, 0), at(10, 0)).unwrap();
    /// let blocked = booked.widen(Duration::zero(), Duration::minutes(15)).unwrap();
    /// assert_eq!(blocked.end(), at(10, 15));
    /// ```
    pub fn widen(&self, before: Duration, after: Duration) -> Result<TimeRange> {
        if before < Duration::zero() || after < Duration::zero() {
            return Err(Error::invalid("buffer", "buffers must not be negative"));
        }
        let start = self
            .start
            .checked_sub_signed(before)
            .ok_or_else(|| Error::invalid("buffer", "buffer out of range"))?;
        let end = self
            .end
            .checked_add_signed(after)
            .ok_or_else(|| Error::invalid("buffer", "buffer out of range"))?;
        Ok(TimeRange { start, end })
    }

    /// Whether both ends fall on whole minutes.
    pub fn is_minute_aligned(&self) -> bool {
        let aligned = |t: DateTime<Utc>| t.timestamp() % 60 == 0 && t.timestamp_subsec_nanos() == 0;
        aligned(self.start) && aligned(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(min)
    }

    #[test]
    fn serde_validates() {
        let ok: TimeRange = serde_json::from_str(
            r#"{"start":"2027-03-01T09:00:00Z","end":"2027-03-01T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(ok.duration(), Duration::hours(1));
        assert!(
            serde_json::from_str::<TimeRange>(
                r#"{"start":"2027-03-01T10:00:00Z","end":"2027-03-01T10:00:00Z"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn bounded_length_and_alignment() {
        assert!(TimeRange::new(at(0), at(0) + Duration::days(401)).is_err());
        let r = TimeRange::new(at(0), at(30)).unwrap();
        assert!(r.is_minute_aligned());
        let odd = TimeRange::new(at(0) + Duration::seconds(1), at(30)).unwrap();
        assert!(!odd.is_minute_aligned());
        assert!(r.widen(Duration::minutes(-1), Duration::zero()).is_err());
    }

    #[test]
    fn contains_instant_includes_the_start_and_excludes_the_end() {
        let r = TimeRange::new(at(10), at(20)).unwrap();
        assert!(!r.contains_instant(at(10) - Duration::nanoseconds(1)));
        assert!(r.contains_instant(at(10)));
        assert!(r.contains_instant(at(15)));
        assert!(r.contains_instant(at(20) - Duration::nanoseconds(1)));
        assert!(!r.contains_instant(at(20)));
        assert!(!r.contains_instant(at(25)));
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric_and_matches_definition(a in 0i64..500, la in 1i64..200, b in 0i64..500, lb in 1i64..200) {
            let x = TimeRange::new(at(a), at(a + la)).unwrap();
            let y = TimeRange::new(at(b), at(b + lb)).unwrap();
            prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
            // Some minute lies in both iff they overlap (ranges are minute-aligned).
            let shared = (a.max(b)..(a + la).min(b + lb)).next().is_some();
            prop_assert_eq!(x.overlaps(&y), shared);
        }

        #[test]
        fn widening_keeps_containment(a in 0i64..500, l in 1i64..200, before in 0i64..60, after in 0i64..60) {
            let x = TimeRange::new(at(a), at(a + l)).unwrap();
            let w = x.widen(Duration::minutes(before), Duration::minutes(after)).unwrap();
            prop_assert!(w.contains(&x));
            prop_assert_eq!(w.duration(), x.duration() + Duration::minutes(before + after));
        }
    }
}
