//! Keyset walks over ordered `(sort value, id)` sets: bookings by start, professionals by
//! rate.

use std::ops::Bound;

/// Where a walk of an ordered key set starts: just after the cursor's key or at `from`,
/// whichever is later. `from` is the smallest key of a sort value (its id the nil UUID),
/// so it is included; the cursor's key was already served, so it is not.
pub(crate) fn walk_start<K: Ord>(after: Option<K>, from: Option<K>) -> Bound<K> {
    match (after, from) {
        (Some(c), Some(f)) if f > c => Bound::Included(f),
        (Some(c), _) => Bound::Excluded(c),
        (None, Some(f)) => Bound::Included(f),
        (None, None) => Bound::Unbounded,
    }
}
