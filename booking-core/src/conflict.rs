//! Conflict rules: half-open overlap of blocked ranges between active bookings.
//!
//! [`IntervalIndex`] answers "does this range hit an active booking?" in `O(log n)` for
//! one professional. It relies on the engine's invariant that the ranges it holds never
//! overlap each other (it refuses inserts that would break it), so entries sorted by start
//! are also sorted by end and only a handful of neighbours can ever overlap a query.
//! [`naive_conflicts`] is the `O(n)` oracle it is tested against.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::{DateTime, Utc};

use crate::domain::{Booking, BookingId, TimeRange};

/// What the index keeps about one blocking booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The booking.
    pub id: BookingId,
    /// Its blocked range.
    pub blocked: TimeRange,
    /// `Some` for holds: the instant at which the entry stops blocking.
    pub hold_expires_at: Option<DateTime<Utc>>,
}

impl IndexEntry {
    /// The entry for a booking (which should be active when inserted).
    pub fn of(b: &Booking) -> Self {
        Self {
            id: b.id,
            blocked: b.blocked,
            hold_expires_at: match b.status {
                crate::BookingStatus::PendingPayment => b.hold_expires_at,
                _ => None,
            },
        }
    }

    /// Whether the entry still blocks at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.hold_expires_at.is_none_or(|t| t > now)
    }
}

/// Non-overlapping blocked ranges of one professional, keyed by start.
///
/// ```
/// use booking_core::conflict::{IndexEntry, IntervalIndex};
/// use booking_core::{BookingId, TimeRange};
/// use chrono::{TimeZone, Utc};
///
/// let at = |h| Utc.with_ymd_and_hms(2027, 3, 1, h, 0, 0).unwrap();
/// let now = at(0);
/// let mut index = IntervalIndex::default();
/// let nine_to_ten = TimeRange::new(at(9), at(10)).unwrap();
/// index.insert(IndexEntry { id: BookingId::new_at(now), blocked: nine_to_ten, hold_expires_at: None }).unwrap();
/// assert!(index.first_active_conflict(&TimeRange::new(at(9), at(11)).unwrap(), now).is_some());
/// assert!(index.first_active_conflict(&TimeRange::new(at(10), at(11)).unwrap(), now).is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct IntervalIndex {
    by_start: BTreeMap<DateTime<Utc>, IndexEntry>,
}

impl IntervalIndex {
    /// Number of entries (active or not yet removed).
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }

    /// Every entry whose blocked range overlaps `range`, active or not, in start order.
    /// `O(log n + k)` for `k` results.
    pub fn overlapping(&self, range: &TimeRange) -> impl Iterator<Item = &IndexEntry> + '_ {
        // The entry starting before `range` can overlap only if it is the last such one
        // (entries are disjoint, so ends are sorted like starts).
        let before = self
            .by_start
            .range(..range.start())
            .next_back()
            .map(|(_, e)| e)
            .filter(|e| e.blocked.end() > range.start());
        let inside = self
            .by_start
            .range((Bound::Included(range.start()), Bound::Excluded(range.end())))
            .map(|(_, e)| e);
        before.into_iter().chain(inside)
    }

    /// Every entry whose blocked range overlaps `range`, active or not, in *descending*
    /// start order. One tree descent plus `k` steps: the cheapest way to ask "is anything
    /// in the way", used on the booking hot path.
    pub fn overlapping_rev(&self, range: &TimeRange) -> impl Iterator<Item = &IndexEntry> + '_ {
        // Walking back from the last entry that starts before `range.end()`: entries are
        // disjoint, so their ends fall as we go, and the first one ending at or before
        // `range.start()` ends the overlap.
        let start = range.start();
        self.by_start
            .range(..range.end())
            .rev()
            .map(|(_, e)| e)
            .take_while(move |e| e.blocked.end() > start)
    }

    /// An entry that overlaps `range` and is still active at `now`, if any.
    pub fn first_active_conflict(
        &self,
        range: &TimeRange,
        now: DateTime<Utc>,
    ) -> Option<&IndexEntry> {
        self.overlapping_rev(range).find(|e| e.is_active(now))
    }

    /// Inserts an entry. Fails, leaving the index unchanged, with the overlapping
    /// entry if there is one (active or not: the caller removes stale entries first).
    pub fn insert(&mut self, entry: IndexEntry) -> Result<(), IndexEntry> {
        if let Some(hit) = self.overlapping_rev(&entry.blocked).next() {
            return Err(*hit);
        }
        self.by_start.insert(entry.blocked.start(), entry);
        Ok(())
    }

    /// Inserts an entry the caller has just checked with [`IntervalIndex::overlapping_rev`]
    /// under the same lock (so nothing can be in the way). Skips the repeated check in
    /// release builds; debug builds still verify it.
    pub fn insert_checked(&mut self, entry: IndexEntry) {
        debug_assert!(
            self.overlapping_rev(&entry.blocked).next().is_none(),
            "insert_checked over an overlapping entry"
        );
        self.by_start.insert(entry.blocked.start(), entry);
    }

    /// Removes the entry of booking `id` starting at `start`; returns whether it was there.
    pub fn remove(&mut self, start: DateTime<Utc>, id: BookingId) -> bool {
        match self.by_start.get(&start) {
            Some(e) if e.id == id => {
                self.by_start.remove(&start);
                true
            }
            _ => false,
        }
    }

    /// All entries in start order.
    pub fn iter(&self) -> impl Iterator<Item = &IndexEntry> + '_ {
        self.by_start.values()
    }

    /// Whether no two entries overlap (the invariant; for tests and loom models).
    pub fn is_consistent(&self) -> bool {
        self.by_start
            .values()
            .zip(self.by_start.values().skip(1))
            .all(|(a, b)| a.blocked.end() <= b.blocked.start())
            && self.by_start.iter().all(|(k, e)| *k == e.blocked.start())
    }
}

/// The `O(n)` oracle: whether `range` overlaps the blocked range of any booking in
/// `bookings` that is active at `now`.
pub fn naive_conflicts<'a>(
    bookings: impl IntoIterator<Item = &'a Booking>,
    range: &TimeRange,
    now: DateTime<Utc>,
) -> bool {
    bookings
        .into_iter()
        .any(|b| b.is_active(now) && b.blocked.overlaps(range))
}

/// Whether any two bookings in the list that are active at `now` and belong to the same
/// professional have overlapping blocked ranges (the invariant every store keeps).
pub fn find_overlap<'a>(
    bookings: impl IntoIterator<Item = &'a Booking>,
    now: DateTime<Utc>,
) -> Option<(BookingId, BookingId)> {
    let mut active: Vec<&Booking> = bookings.into_iter().filter(|b| b.is_active(now)).collect();
    active.sort_by_key(|b| (b.professional_id, b.blocked.start()));
    active.windows(2).find_map(|w| {
        (w[0].professional_id == w[1].professional_id && w[0].blocked.overlaps(&w[1].blocked))
            .then_some((w[0].id, w[1].id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(min)
    }

    proptest! {
        /// Whatever sequence of inserts and removals, the index agrees with a naive scan.
        #[test]
        fn index_agrees_with_naive_scan(
            ops in proptest::collection::vec((0i64..600, 1i64..90, any::<bool>(), 0i64..600), 1..80),
            now_min in 0i64..600,
        ) {
            let now = at(now_min);
            let mut index = IntervalIndex::default();
            let mut all: Vec<IndexEntry> = Vec::new();
            for (start, len, hold, expiry) in ops {
                let r = TimeRange::new(at(start), at(start + len)).unwrap();
                let naive = all.iter().any(|e| e.blocked.overlaps(&r));
                let fast_any = index.overlapping(&r).next().is_some();
                prop_assert_eq!(naive, fast_any);
                let mut fwd: Vec<_> = index.overlapping(&r).map(|e| e.id).collect();
                let mut back: Vec<_> = index.overlapping_rev(&r).map(|e| e.id).collect();
                back.reverse();
                prop_assert_eq!(&fwd, &back);
                fwd.sort();
                let mut want: Vec<_> = all.iter().filter(|e| e.blocked.overlaps(&r)).map(|e| e.id).collect();
                want.sort();
                prop_assert_eq!(fwd, want);
                let naive_active = all.iter().any(|e| e.blocked.overlaps(&r) && e.is_active(now));
                prop_assert_eq!(naive_active, index.first_active_conflict(&r, now).is_some());
                let entry = IndexEntry {
                    id: BookingId::new_at(at(start)),
                    blocked: r,
                    hold_expires_at: hold.then(|| at(expiry)),
                };
                if index.insert(entry).is_ok() {
                    all.push(entry);
                } else if let Some(victim) = all.pop() {
                    prop_assert!(index.remove(victim.blocked.start(), victim.id));
                }
                prop_assert!(index.is_consistent());
                prop_assert_eq!(index.len(), all.len());
            }
        }
    }

    #[test]
    fn back_to_back_never_conflicts() {
        let mut index = IntervalIndex::default();
        let a = TimeRange::new(at(0), at(60)).unwrap();
        let b = TimeRange::new(at(60), at(120)).unwrap();
        index
            .insert(IndexEntry {
                id: BookingId::new_at(at(0)),
                blocked: a,
                hold_expires_at: None,
            })
            .unwrap();
        index
            .insert(IndexEntry {
                id: BookingId::new_at(at(1)),
                blocked: b,
                hold_expires_at: None,
            })
            .unwrap();
        assert_eq!(index.len(), 2);
        let inner = TimeRange::new(at(59), at(61)).unwrap();
        assert_eq!(index.overlapping(&inner).count(), 2);
    }

    fn entry(id_min: i64, start: i64, end: i64, hold: Option<i64>) -> IndexEntry {
        IndexEntry {
            id: BookingId::new_at(at(id_min)),
            blocked: TimeRange::new(at(start), at(end)).unwrap(),
            hold_expires_at: hold.map(at),
        }
    }

    fn range(start: i64, end: i64) -> TimeRange {
        TimeRange::new(at(start), at(end)).unwrap()
    }

    #[test]
    fn entry_of_a_booking_keeps_the_hold_deadline_only_for_holds() {
        let (hold, now) = crate::testing_doc::sample_booking(crate::BookingStatus::PendingPayment);
        let deadline = hold.hold_expires_at.unwrap();
        let e = IndexEntry::of(&hold);
        assert_eq!((e.id, e.blocked), (hold.id, hold.blocked));
        assert_eq!(e.hold_expires_at, Some(deadline));
        assert!(e.is_active(now));
        // A confirmed booking blocks for good, whatever hold deadline it still carries.
        let mut confirmed = hold.clone();
        confirmed.status = crate::BookingStatus::Confirmed;
        let c = IndexEntry::of(&confirmed);
        assert_eq!(c.hold_expires_at, None);
        assert!(c.is_active(deadline + Duration::days(365)));
    }

    #[test]
    fn a_hold_entry_stops_blocking_exactly_at_its_deadline() {
        let e = entry(0, 0, 60, Some(30));
        assert!(e.is_active(at(29)));
        assert!(!e.is_active(at(30)));
        assert!(!e.is_active(at(31)));
        let mut index = IntervalIndex::default();
        index.insert(e).unwrap();
        assert_eq!(index.first_active_conflict(&range(0, 60), at(29)), Some(&e));
        assert_eq!(index.first_active_conflict(&range(0, 60), at(30)), None);
    }

    #[test]
    fn queries_touching_an_entry_end_to_end_do_not_overlap_it() {
        let mut index = IntervalIndex::default();
        assert!(index.is_empty());
        let mid = entry(0, 60, 120, None);
        index.insert(mid).unwrap();
        assert!(!index.is_empty());
        for touching in [range(0, 60), range(120, 180)] {
            assert_eq!(index.overlapping(&touching).count(), 0, "{touching:?}");
            assert_eq!(index.overlapping_rev(&touching).count(), 0, "{touching:?}");
            assert!(index.first_active_conflict(&touching, at(0)).is_none());
        }
        for hitting in [range(0, 61), range(119, 180), range(70, 80), range(0, 180)] {
            assert_eq!(index.overlapping(&hitting).collect::<Vec<_>>(), [&mid]);
            assert_eq!(index.overlapping_rev(&hitting).collect::<Vec<_>>(), [&mid]);
        }
        // Back-to-back inserts on either side are accepted; an overlapping one is refused
        // with the entry in the way, leaving the index as it was.
        index.insert(entry(1, 0, 60, None)).unwrap();
        index.insert(entry(2, 120, 180, None)).unwrap();
        assert_eq!(index.insert(entry(3, 100, 110, None)), Err(mid));
        assert_eq!(index.len(), 3);
        let starts: Vec<_> = index.iter().map(|e| e.blocked.start()).collect();
        assert_eq!(starts, [at(0), at(60), at(120)]);
        assert!(index.is_consistent());
    }

    #[test]
    fn insert_checked_adds_the_entry() {
        let mut index = IntervalIndex::default();
        let e = entry(0, 0, 60, None);
        index.insert_checked(e);
        assert_eq!(index.iter().collect::<Vec<_>>(), [&e]);
        assert_eq!(index.overlapping(&range(30, 40)).next(), Some(&e));
    }

    #[test]
    fn remove_needs_both_the_start_and_the_booking() {
        let mut index = IntervalIndex::default();
        let e = entry(0, 0, 60, None);
        index.insert(e).unwrap();
        let stranger = BookingId::new_at(at(1));
        assert_ne!(stranger, e.id);
        assert!(!index.remove(at(0), stranger));
        assert!(!index.remove(at(1), e.id));
        assert_eq!(index.len(), 1);
        assert!(index.remove(at(0), e.id));
        assert!(index.is_empty());
        assert!(!index.remove(at(0), e.id));
    }

    #[test]
    fn is_consistent_spots_overlaps_and_misfiled_entries() {
        let mut overlapping = IntervalIndex::default();
        overlapping.by_start.insert(at(0), entry(0, 0, 60, None));
        assert!(overlapping.is_consistent());
        overlapping.by_start.insert(at(30), entry(1, 30, 90, None));
        assert!(!overlapping.is_consistent());

        let mut misfiled = IntervalIndex::default();
        misfiled.by_start.insert(at(5), entry(0, 0, 60, None));
        assert!(!misfiled.is_consistent());

        let mut back_to_back = IntervalIndex::default();
        back_to_back.by_start.insert(at(0), entry(0, 0, 60, None));
        back_to_back.by_start.insert(at(60), entry(1, 60, 90, None));
        assert!(back_to_back.is_consistent());
    }

    fn booking(pro: u128, start: i64, end: i64, status: crate::BookingStatus) -> Booking {
        let (mut b, _) = crate::testing_doc::sample_booking(status);
        b.id = BookingId::new_at(at(start));
        b.professional_id = crate::ProfessionalId::from_uuid(uuid::Uuid::from_u128(pro + 1));
        b.range = range(start, end);
        b.blocked = b.range;
        b.hold_expires_at = (status == crate::BookingStatus::PendingPayment).then(|| at(30));
        b
    }

    #[test]
    fn naive_conflicts_counts_only_active_overlapping_bookings() {
        use crate::BookingStatus::{Cancelled, Confirmed, PendingPayment};
        let confirmed = booking(0, 0, 60, Confirmed);
        let cancelled = booking(0, 100, 160, Cancelled);
        let hold = booking(0, 200, 260, PendingPayment);
        let all = [confirmed.clone(), cancelled, hold];
        assert!(naive_conflicts(&all, &range(59, 70), at(0)));
        assert!(!naive_conflicts(&all, &range(60, 100), at(0)));
        assert!(!naive_conflicts(&all, &range(110, 120), at(0)));
        assert!(naive_conflicts(&all, &range(210, 220), at(29)));
        assert!(!naive_conflicts(&all, &range(210, 220), at(30)));
        assert!(!naive_conflicts([], &range(0, 60), at(0)));
        // Active but elsewhere: no conflict.
        assert!(!naive_conflicts([&confirmed], &range(300, 400), at(0)));
    }

    #[test]
    fn find_overlap_pairs_active_bookings_of_one_professional() {
        use crate::BookingStatus::{Cancelled, Confirmed};
        let a = booking(0, 0, 60, Confirmed);
        let b = booking(0, 30, 90, Confirmed);
        assert_eq!(find_overlap([&a, &b], at(0)), Some((a.id, b.id)));
        assert_eq!(find_overlap([&b, &a], at(0)), Some((a.id, b.id)));
        // Another professional's booking at the same time is no overlap.
        let other = booking(1, 30, 90, Confirmed);
        assert_eq!(find_overlap([&a, &other], at(0)), None);
        // Nor is an inactive one, nor a back-to-back one.
        let gone = booking(0, 30, 90, Cancelled);
        assert_eq!(find_overlap([&a, &gone], at(0)), None);
        let next = booking(0, 60, 90, Confirmed);
        assert_eq!(find_overlap([&a, &next], at(0)), None);
    }
}
