//! One professional's booking data, guarded by one mutex.
//!
//! Methods here only touch the shard itself. Changes that must also reach the global leaf
//! structures (due-hold queue, per-client list index, outbox) are collected in [`Effects`]
//! and applied by the store while it still holds the shard lock.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use booking_core::conflict::{IndexEntry, IntervalIndex};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::store::BookingQuery;
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Error, EventId, ProfessionalId, Result, TimeRange,
    Transition,
};
use chrono::{DateTime, Utc};

use crate::idhash::IdMap;

/// List order key: `(start in microseconds, id)`, exactly the order of
/// [`booking_core::Cursor`].
pub(crate) type ListKey = (i64, BookingId);

/// Due-hold queue key: `(hold_expires_at, booking, professional)`.
pub(crate) type DueKey = (DateTime<Utc>, BookingId, ProfessionalId);

/// The list key of a booking.
pub(crate) fn list_key(b: &Booking) -> ListKey {
    (b.range.start().timestamp_micros(), b.id)
}

/// Whether `b` belongs in the interval index: confirmed, or a hold with a deadline (a hold
/// whose deadline passed stays until it is expired; it no longer blocks but is in the way
/// of inserts, so whoever needs its range expires it first).
pub(crate) fn in_index(b: &Booking) -> bool {
    match b.status {
        BookingStatus::Confirmed => true,
        BookingStatus::PendingPayment => b.hold_expires_at.is_some(),
        BookingStatus::Cancelled | BookingStatus::Expired => false,
    }
}

/// The due-queue entry of `b`, if it is a stored hold.
pub(crate) fn due_key(b: &Booking) -> Option<DueKey> {
    match b.status {
        BookingStatus::PendingPayment => b.hold_expires_at.map(|t| (t, b.id, b.professional_id)),
        _ => None,
    }
}

/// Side effects of one critical section on the global leaf structures.
///
/// `Vec::new` does not allocate, so a rejected request costs nothing here.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Events to append to the outbox, in order.
    pub(crate) events: Vec<DomainEvent>,
    /// Holds that left the due queue.
    pub(crate) due_remove: Vec<DueKey>,
    /// Holds that joined the due queue.
    pub(crate) due_add: Vec<DueKey>,
    /// New bookings for the per-client index.
    pub(crate) client_add: Vec<(ClientId, ProfessionalId, BookingId)>,
}

/// One professional's bookings.
#[derive(Debug, Default)]
pub(crate) struct ProShard {
    /// Blocked ranges of bookings for which [`in_index`] holds; never overlapping.
    pub(crate) index: IntervalIndex,
    /// Every booking of the professional.
    /// Boxed, so that growing the map moves pointers, not whole bookings, while the shard
    /// is locked.
    pub(crate) bookings: IdMap<BookingId, Box<Booking>>,
    /// The list order of `bookings`. Keys only (24 bytes), so inserts shift little.
    pub(crate) order: BTreeSet<ListKey>,
    /// `request_ref` -> the booking that request created.
    pub(crate) by_request: HashMap<String, BookingId>,
}

impl ProShard {
    /// Forgets that booking `id` was created by request `r` (a released hold).
    pub(crate) fn forget_request(&mut self, r: &str, id: BookingId) {
        if self.by_request.get(r) == Some(&id) {
            self.by_request.remove(r);
        }
    }
}

impl ProShard {
    /// One booking by id.
    pub(crate) fn get(&self, id: BookingId) -> Option<&Booking> {
        self.bookings.get(&id).map(|b| &**b)
    }

    /// The booking created by request `r`.
    pub(crate) fn by_request(&self, r: &str) -> Option<&Booking> {
        self.by_request.get(r).and_then(|id| self.get(*id))
    }

    /// Checks `blocked` against the index at `now`, ignoring booking `exclude`.
    ///
    /// Returns the holds that ran out and overlap (to be expired before the range is taken),
    /// or [`Error::SlotUnavailable`] if an active booking overlaps. Changes nothing, so a
    /// refused request leaves no trace. `O(log n + k)`.
    pub(crate) fn scan(
        &self,
        blocked: &TimeRange,
        now: DateTime<Utc>,
        exclude: Option<BookingId>,
    ) -> Result<Vec<BookingId>> {
        let mut due = Vec::new();
        for e in self.index.overlapping_rev(blocked) {
            if Some(e.id) == exclude {
                continue;
            }
            if e.is_active(now) {
                return Err(Error::SlotUnavailable);
            }
            due.push(e.id);
        }
        Ok(due)
    }

    /// Stores a new booking (the caller has scanned its range and expired what was in the
    /// way). Fails with `Internal`, changing nothing, if the index refuses it.
    pub(crate) fn insert_new(&mut self, b: Booking, fx: &mut Effects) -> Result<Booking> {
        if in_index(&b) {
            self.index
                .insert(IndexEntry::of(&b))
                .map_err(|hit| internal_overlap(b.id, hit.id))?;
        }
        let key = list_key(&b);
        self.order.insert(key);
        if let Some(r) = &b.request_ref {
            self.by_request.insert(r.clone(), b.id);
        }
        if let Some(d) = due_key(&b) {
            fx.due_add.push(d);
        }
        fx.client_add.push((b.client_id, b.professional_id, b.id));
        fx.events.push(event(EventKind::BookingCreated, &b, None));
        self.bookings.insert(b.id, Box::new(b.clone()));
        Ok(b)
    }

    /// Replaces booking `id` by `next` (same id), keeping the index, the due queue and the
    /// per-client list in step and recording `kind` (if any). The caller has checked that `next`'s
    /// blocked range is free if it needs to be. Fails with `Internal`, changing nothing, if
    /// the index refuses the new entry.
    pub(crate) fn replace(
        &mut self,
        next: Booking,
        kind: Option<EventKind>,
        previous_range: Option<TimeRange>,
        fx: &mut Effects,
    ) -> Result<Booking> {
        let Some(old) = self.bookings.get(&next.id) else {
            return Err(Error::Internal(
                "replacing a booking that is not stored".into(),
            ));
        };
        let old_key = list_key(old);
        let (old_in, new_in) = (in_index(old), in_index(&next));
        let old_entry = IndexEntry::of(old);
        let old_due = due_key(old);
        if old_in {
            self.index.remove(old_entry.blocked.start(), old_entry.id);
        }
        if new_in && let Err(hit) = self.index.insert(IndexEntry::of(&next)) {
            if old_in {
                // Restores exactly what was removed above, so it cannot fail.
                let _ = self.index.insert(old_entry);
            }
            return Err(internal_overlap(next.id, hit.id));
        }
        // From here on nothing can fail.
        let new_due = due_key(&next);
        if old_due != new_due {
            fx.due_remove.extend(old_due);
            fx.due_add.extend(new_due);
        }
        let new_key = list_key(&next);
        if let Some(kind) = kind {
            fx.events.push(event(kind, &next, previous_range));
        }
        if new_key != old_key {
            self.order.remove(&old_key);
            self.order.insert(new_key);
        }
        match self.bookings.get_mut(&next.id) {
            Some(slot) => (**slot).clone_from(&next),
            None => {
                self.bookings.insert(next.id, Box::new(next.clone()));
            }
        }
        Ok(next)
    }

    /// Expires the given holds (which ran out at `now`), recording their events.
    pub(crate) fn expire_holds(
        &mut self,
        ids: &[BookingId],
        now: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<Vec<Booking>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(b) = self.get(*id) else {
                return Err(Error::Internal("index entry without booking".into()));
            };
            let plan = b.plan(Transition::Expire, now)?;
            out.push(self.replace(plan.booking, Some(plan.event), None, fx)?);
        }
        Ok(out)
    }

    /// Appends to `out` up to `max` bookings matching `query` with list keys after `after`,
    /// in list order. `O(log n + scanned)`.
    pub(crate) fn collect_page(
        &self,
        query: &BookingQuery,
        after: Bound<ListKey>,
        max: usize,
        out: &mut Vec<Booking>,
    ) {
        let to = query.to.map(|t| t.timestamp_micros());
        for key in self.order.range((after, Bound::Unbounded)) {
            if out.len() >= max || to.is_some_and(|t| key.0 > t) {
                break;
            }
            if let Some(b) = self.bookings.get(&key.1).filter(|b| query.matches(b)) {
                out.push(Booking::clone(b));
            }
        }
    }

    /// Checks the shard's internal invariants.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if !self.index.is_consistent() {
            return Err("interval index has overlapping entries".into());
        }
        let indexed = self.bookings.values().filter(|b| in_index(b)).count();
        if indexed != self.index.len() {
            return Err(format!(
                "index holds {} entries for {indexed} indexable bookings",
                self.index.len()
            ));
        }
        for e in self.index.iter() {
            match self.get(e.id) {
                Some(b) if in_index(b) && IndexEntry::of(b) == *e => {}
                _ => return Err(format!("stale index entry for {}", e.id)),
            }
        }
        if self.order.len() != self.bookings.len() {
            return Err("list order and bookings differ in size".into());
        }
        for (id, b) in &self.bookings {
            if b.id != *id || !self.order.contains(&list_key(b)) {
                return Err(format!("booking {} stored under a wrong key", b.id));
            }
            if let Some(r) = &b.request_ref
                && self.by_request.get(r) != Some(&b.id)
            {
                return Err(format!("request ref of {} not indexed", b.id));
            }
        }
        Ok(())
    }
}

/// The event describing `b` right after a change, as [`DomainEvent::new`] builds it but
/// without drawing a random id: the outbox assigns the id when it records the event.
fn event(kind: EventKind, b: &Booking, previous_range: Option<TimeRange>) -> DomainEvent {
    DomainEvent {
        id: EventId::from_uuid(uuid::Uuid::nil()),
        kind,
        booking_id: b.id,
        professional_id: b.professional_id,
        occurred_at: b.updated_at,
        booking: b.clone(),
        previous_range,
    }
}

fn internal_overlap(id: BookingId, hit: BookingId) -> Error {
    Error::Internal(format!(
        "interval index refused {id}: overlaps {hit} after the conflict scan"
    ))
}
