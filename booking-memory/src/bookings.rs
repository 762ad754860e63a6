//! The booking operations: insert, transitions, reschedule, lists, blocked ranges and the
//! sweep, each one critical section on the professional's shard (see the crate docs).

use crate::MemoryStore;
use crate::Shard;
use crate::shard::DueKey;
use crate::shard::Effects;
use crate::shard::ListKey;
use crate::shard::due_key;
use crate::shard::in_index;
use crate::shard::list_key;
use crate::sync::lock;
use async_trait::async_trait;
use booking_core::Booking;
use booking_core::BookingId;
use booking_core::ClientId;
use booking_core::Entity;
use booking_core::Error;
use booking_core::Inserted;
use booking_core::ProfessionalId;
use booking_core::Result;
use booking_core::TimeRange;
use booking_core::Transition;
use booking_core::store::BookingOwner;
use booking_core::store::BookingQuery;
use booking_core::store::BookingStore;
use booking_core::store::Cursor;
use booking_core::store::Page;
use booking_core::store::RequestAnswer;
use chrono::DateTime;
use chrono::Utc;
use std::ops::{Bound, RangeBounds};

impl MemoryStore {
    fn insert_booking_now(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted> {
        self.insert_booking_with(booking, now, None)
            .map(|(inserted, _)| inserted)
    }

    /// The insert, and `answer` stored in the same critical section when the booking is
    /// created (the idempotency table is a leaf lock, taken alone under the shard mutex).
    pub(crate) fn insert_booking_with(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: Option<&RequestAnswer>,
    ) -> Result<(Inserted, bool)> {
        let shard = self.shard_or_create(booking.professional_id);
        let mut s = lock(&shard);
        if let Some(r) = &booking.request_ref
            && let Some(existing) = s.by_request(r)
        {
            return Ok((Inserted::Existing(existing.clone()), false));
        }
        // Read-only: a refusal changes nothing.
        let due = s.scan(&booking.blocked, now, None)?;
        // Claim the id (first write; fails cleanly on a duplicate id).
        let claimed = self
            .routes
            .write(&booking.id, |m| match m.entry(booking.id) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(booking.professional_id);
                    true
                }
            });
        if !claimed {
            return Err(Error::AlreadyExists(Entity::Booking));
        }
        let mut fx = Effects::default();
        let result = s
            .expire_holds(&due, now, &mut fx)
            .and_then(|_| s.insert_new(booking.clone(), &mut fx));
        if result.is_err() {
            self.routes.write(&booking.id, |m| m.remove(&booking.id));
        }
        let answered = match (&result, answer) {
            (Ok(_), Some(a)) => {
                lock(&self.idempotency).complete(&a.scope, &a.key, a.lease, &a.response)
            }
            _ => false,
        };
        if let (Ok(b), Some(p)) = (&result, &booking.payment) {
            self.track_payment(b, p);
        }
        // Expirations that did happen are committed either way, with their events.
        self.commit(fx);
        result.map(|b| (Inserted::Created(b), answered))
    }

    pub(crate) fn get_booking_now(&self, id: BookingId) -> Option<Booking> {
        let pro = self.route(id)?;
        let shard = self.shard(pro)?;
        let s = lock(&shard);
        s.get(id).cloned()
    }

    pub(crate) fn locked_booking_shard(&self, id: BookingId) -> Result<Shard> {
        self.route(id)
            .and_then(|pro| self.shard(pro))
            .ok_or(Error::NotFound(Entity::Booking))
    }

    fn transition_booking_now(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?;
        let plan = current.plan(transition, now)?;
        let due = if plan.requires_free_slot {
            s.scan(&plan.booking.blocked, now, Some(id))?
        } else {
            Vec::new()
        };
        let mut fx = Effects::default();
        let result = s
            .expire_holds(&due, now, &mut fx)
            .and_then(|_| s.replace(plan.booking, Some(plan.event), None, &mut fx));
        self.commit(fx);
        result
    }

    fn reschedule_booking_now(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let shard = self.locked_booking_shard(id)?;
        let mut s = lock(&shard);
        let current = s.get(id).ok_or(Error::NotFound(Entity::Booking))?;
        let previous = current.range;
        let plan = current.plan_reschedule(range, blocked, now)?;
        // The booking's own old range never counts against it.
        let due = s.scan(&plan.booking.blocked, now, Some(id))?;
        let mut fx = Effects::default();
        let result = s
            .expire_holds(&due, now, &mut fx)
            .and_then(|_| s.replace(plan.booking, Some(plan.event), Some(previous), &mut fx));
        self.commit(fx);
        result
    }

    fn list_bookings_now(&self, query: &BookingQuery) -> Result<Page<Booking>> {
        let limit = booking_core::store::check_limit(query.limit)? as usize;
        let want = limit + 1;
        let lower = list_start(query.after, query.from);
        let pro = match (query.owner, query.professional_id) {
            (BookingOwner::Professional(a), Some(b)) if a != b => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            (BookingOwner::Professional(p), _) | (_, Some(p)) => Some(p),
            _ => None,
        };
        let mut items = Vec::with_capacity(want);
        match (pro, query.owner) {
            // A client's list goes through the client's own index, also when it names a
            // professional: never a scan of that professional's whole calendar.
            (_, BookingOwner::Client(c)) => self.list_client(c, query, lower, want, &mut items),
            (Some(p), _) => {
                if let Some(shard) = self.shard(p) {
                    lock(&shard).collect_page(query, lower, want, &mut items);
                }
            }
            (None, _) => {
                for (_, shard) in self.all_shards() {
                    let mut part = Vec::new();
                    lock(&shard).collect_page(query, lower, want, &mut part);
                    items.extend(part);
                }
                items.sort_by_key(list_key);
                items.truncate(want);
            }
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(Cursor::after_booking)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// A client's bookings through the per-client index: copy the client's booking ids
    /// out under the leaf lock, then visit each professional's shard once, keep what
    /// matches after the cursor, and sort. `O(m log m)` for a client with `m` bookings,
    /// whatever the size of the store.
    fn list_client(
        &self,
        client: ClientId,
        query: &BookingQuery,
        lower: Bound<ListKey>,
        want: usize,
        out: &mut Vec<Booking>,
    ) {
        let groups: Vec<(ProfessionalId, Vec<BookingId>)> = self.by_client.read(&client, |m| {
            m.get(&client).map_or_else(Vec::new, |g| {
                g.iter()
                    .filter(|(p, _)| query.professional_id.is_none_or(|want| want == **p))
                    .map(|(p, ids)| (*p, ids.clone()))
                    .collect()
            })
        });
        let window = (lower, Bound::Unbounded);
        for (pro, ids) in groups {
            let Some(shard) = self.shard(pro) else {
                continue;
            };
            let s = lock(&shard);
            out.extend(
                ids.iter()
                    .filter_map(|id| s.get(*id))
                    .filter(|b| window.contains(&list_key(b)) && query.matches(b))
                    .cloned(),
            );
        }
        out.sort_by_key(list_key);
        out.truncate(want);
    }

    fn blocked_ranges_now(
        &self,
        pro: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Vec<TimeRange> {
        let Some(shard) = self.shard(pro) else {
            return Vec::new();
        };
        let s = lock(&shard);
        s.index
            .overlapping(&window)
            .filter(|e| e.is_active(now))
            .map(|e| e.blocked)
            .collect()
    }

    fn expire_due_holds_now(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        let mut out = Vec::new();
        let mut after: Bound<DueKey> = Bound::Unbounded;
        while out.len() < limit {
            let batch: Vec<DueKey> = lock(&self.due)
                .range((after, Bound::Unbounded))
                .take_while(|(t, _, _)| *t <= now)
                .take(limit - out.len())
                .copied()
                .collect();
            let Some(last) = batch.last() else {
                break;
            };
            after = Bound::Excluded(*last);
            for (at, id, pro) in batch {
                let Some(shard) = self.shard(pro) else {
                    continue;
                };
                let mut s = lock(&shard);
                // Re-check under the shard lock: the hold may have changed since.
                let still_due = s
                    .get(id)
                    .is_some_and(|b| due_key(b) == Some((at, id, pro)) && in_index(b));
                if !still_due {
                    continue;
                }
                let mut fx = Effects::default();
                let expired = s.expire_holds(&[id], now, &mut fx);
                self.commit(fx);
                out.extend(expired?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl BookingStore for MemoryStore {
    async fn insert_booking(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted> {
        self.insert_booking_now(booking, now)
    }

    async fn find_booking_by_request(
        &self,
        professional_id: ProfessionalId,
        request_ref: &str,
    ) -> Result<Option<Booking>> {
        Ok(self
            .shard(professional_id)
            .and_then(|shard| lock(&shard).by_request(request_ref).cloned()))
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<Booking>> {
        Ok(self.get_booking_now(id))
    }

    async fn transition_booking(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.transition_booking_now(id, transition, now)
    }

    async fn reschedule_booking(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.reschedule_booking_now(id, range, blocked, now)
    }

    async fn list_bookings(&self, query: &BookingQuery) -> Result<Page<Booking>> {
        self.list_bookings_now(query)
    }

    async fn blocked_ranges(
        &self,
        professional_id: ProfessionalId,
        window: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TimeRange>> {
        Ok(self.blocked_ranges_now(professional_id, window, now))
    }

    async fn expire_due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Booking>> {
        self.expire_due_holds_now(now, limit)
    }
}

/// Where a walk of the `(start, id)` list order starts: just after the cursor or at `from`,
/// whichever is later.
fn list_start(after: Option<Cursor>, from: Option<DateTime<Utc>>) -> Bound<ListKey> {
    let after = after.map(|c| (c.primary, BookingId::from_uuid(c.id)));
    let from = from.map(|f| {
        (
            f.timestamp_micros(),
            BookingId::from_uuid(uuid::Uuid::nil()),
        )
    });
    crate::keyset::walk_start(after, from)
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_list_starts_at_the_later_of_cursor_and_from() {
        let t = |micros| DateTime::<Utc>::from_timestamp_micros(micros).expect("in range");
        let id = BookingId::new_at(t(0));
        let nil = BookingId::from_uuid(uuid::Uuid::nil());
        let cursor = |primary| {
            Some(Cursor {
                primary,
                id: id.as_uuid(),
            })
        };
        assert_eq!(list_start(None, None), Bound::Unbounded);
        assert_eq!(list_start(None, Some(t(200))), Bound::Included((200, nil)));
        assert_eq!(list_start(cursor(300), None), Bound::Excluded((300, id)));
        assert_eq!(
            list_start(cursor(100), Some(t(200))),
            Bound::Included((200, nil))
        );
        assert_eq!(
            list_start(cursor(300), Some(t(200))),
            Bound::Excluded((300, id))
        );
        assert_eq!(
            list_start(cursor(200), Some(t(200))),
            Bound::Excluded((200, id))
        );
    }
}
