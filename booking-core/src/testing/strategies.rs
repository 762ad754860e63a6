//! Public proptest strategies for users' own property tests.
//!
//! ```
//! use booking_core::testing::strategies::{time_range, booking_requests};
//! use booking_core::testing::fixtures::t0;
//! use proptest::prelude::*;
//!
//! proptest!(|(r in time_range(t0(), 24 * 60, 5, 120))| {
//!     prop_assert!(r.start() >= t0());
//!     prop_assert!(r.duration().num_minutes() <= 120);
//!     prop_assert!(r.is_minute_aligned());
//! });
//!
//! proptest!(|(reqs in booking_requests(t0(), 8 * 60, 15, 1..20))| {
//!     prop_assert!(reqs.iter().all(|r| r.duration().num_minutes() % 15 == 0));
//! });
//! ```

use chrono::{DateTime, Duration, Utc};
use proptest::collection::SizeRange;
use proptest::prelude::*;

use crate::domain::TimeRange;

/// Minute-aligned ranges starting within `span_minutes` after `origin` on a grid of
/// `step_minutes`, whose lengths are whole multiples of `step_minutes` up to
/// `max_len_minutes` (at least one step).
pub fn time_range(
    origin: DateTime<Utc>,
    span_minutes: i64,
    step_minutes: i64,
    max_len_minutes: i64,
) -> impl Strategy<Value = TimeRange> {
    let step = step_minutes.max(1);
    let slots = (span_minutes / step).max(1);
    let max_len = (max_len_minutes / step).max(1);
    (0..slots, 1..=max_len).prop_map(move |(s, l)| {
        let start = origin + Duration::minutes(s * step);
        TimeRange::new(start, start + Duration::minutes(l * step))
            .unwrap_or_else(|_| unreachable!("length is at least one step"))
    })
}

/// A list of booking ranges for one professional, on a grid of `step_minutes`, within
/// `span_minutes` of `origin`, each at most four steps long; overlaps are likely, which is
/// the point.
pub fn booking_requests(
    origin: DateTime<Utc>,
    span_minutes: i64,
    step_minutes: i64,
    count: impl Into<SizeRange>,
) -> impl Strategy<Value = Vec<TimeRange>> {
    proptest::collection::vec(
        time_range(origin, span_minutes, step_minutes, 4 * step_minutes),
        count,
    )
}
