//! # booking-memory
//!
//! An in-process [`booking_core::Store`]: every storage trait of `booking-core` over plain
//! `std::sync` locks, with `O(log n)` conflict checks per professional. It backs the
//! reference server when no database is configured, and tests and examples everywhere.
//!
//! ```
//! use booking_core::store::BookingStore;
//! use booking_core::testing_doc::sample_booking;
//! use booking_core::{BookingStatus, Error, Inserted};
//! use booking_memory::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let (booking, now) = sample_booking(BookingStatus::Confirmed);
//! assert!(matches!(store.insert_booking(&booking, now).await, Ok(Inserted::Created(_))));
//!
//! // Another booking of the same professional over the same range is refused.
//! let mut rival = booking.clone();
//! rival.id = booking_core::BookingId::new_at(now);
//! assert_eq!(store.insert_booking(&rival, now).await, Err(Error::SlotUnavailable));
//! # });
//! ```
//!
//! ## Design
//!
//! * **Shards.** Booking data is sharded per professional: a striped map
//!   `ProfessionalId -> Arc<Mutex<ProShard>>`. A shard holds the professional's
//!   [`IntervalIndex`](booking_core::conflict::IntervalIndex) (blocked ranges of confirmed
//!   bookings and holds, never overlapping), its bookings by id, their `(start, id)` list
//!   order and the `request_ref -> booking` map. Every booking operation is one critical
//!   section on one shard, so professionals never contend with each other.
//! * **Leaf structures.** Global maps that must follow booking changes each sit behind their
//!   own lock: booking routes (`BookingId -> ProfessionalId`, striped), the per-client
//!   index (client -> professional -> booking ids, append-only, striped), the due-hold queue `(hold_expires_at, id)` used by the sweep, and the
//!   outbox. The directory, schedules, idempotency records and the webhook inbox have one
//!   lock each (the inbox is never touched by booking operations: its lock is always taken
//!   alone).
//! * **Lock order.** `shard map stripe` (only to find the shard's `Arc`, released before
//!   the next step) → `one shard mutex` → `leaf locks, one at a time`. A thread never holds
//!   two shard mutexes, never holds a leaf lock while taking any other lock, and never takes
//!   a shard mutex while holding anything. The order is never reversed, so there are no
//!   deadlocks; `tests/loom.rs` explores the races.
//! * **Atomic outbox.** A booking change appends its events to the outbox *while still
//!   holding the shard mutex*. Booking state is only ever read under that mutex, so a reader
//!   who sees an event and then reads the booking waits for the writer's critical section
//!   to end and sees the change; a reader who sees the change did so after the critical
//!   section, when the event was already appended. Events of one critical section are
//!   appended as one batch, in one global recording order.
//! * **Refusals change nothing.** A conflicting insert, transition or reschedule is
//!   detected by a read-only scan before the first write, so it records no event and
//!   expires nothing. When the request succeeds, holds that ran out and overlap its range
//!   are expired (with their events) in the same critical section.
//! * **No lock across `.await`.** The trait methods are `async` only for the trait's sake;
//!   each body is a synchronous critical section and never suspends.
//! * **Event ids** are assigned by the outbox when it records an event: UUID v7s whose
//!   random bits carry the recording position (plus a per-store salt), so an `EventId`
//!   cursor maps straight back to its position and recording an event never waits on the
//!   OS random source. Events live in fixed-size chunks, so the outbox never copies
//!   everything it holds while writers wait on it.
//! * **Hashing.** Maps keyed by our own UUIDs (never chosen by outsiders) use a small
//!   multiply-xor hasher instead of SipHash; maps keyed by client-chosen strings
//!   (idempotency keys, request references) keep SipHash.
//! * **Poisoning** is recovered from; see the `sync` module for why that is sound.
//!
//! ## Costs
//!
//! | operation | cost |
//! |---|---|
//! | insert / transition / reschedule | `O(log n)` in the professional's bookings, plus `O(k log n)` for `k` overlapping expired holds |
//! | `blocked_ranges` | `O(log n + k)` |
//! | `list_bookings` by professional | `O(log n + scanned)` |
//! | `list_bookings` by client | `O(m log m)` for a client with `m` bookings (per-client index) |
//! | `list_bookings` for admin | one bounded page per professional, merged |
//! | `expire_due_holds` | `O(k log n)` for `k` holds expired |
//! | `search_professionals` | `O(log n + scanned)` in `(rate, id)` order; with a radius, an R-tree walk nearest first that stops after the page (`O(log n + visited)`) |
//! | `purge_expired` | `O(k log n)` for `k` records deleted |
//! | inbox `claim_due`, `prune_processed` | `O(k log n)` for `k` events claimed or deleted |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod directory;
mod idempotency;
mod idhash;
mod inbox;
mod outbox;
mod payments;
mod shard;
mod striped;
mod sync;
mod webhooks;

use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};

use async_trait::async_trait;
use booking_core::events::{ClaimedEvents, Consumer, DomainEvent};
use booking_core::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};
use booking_core::store::Registered;
use booking_core::store::{
    BookingOwner, BookingQuery, BookingStore, Cursor, DirectoryStore, FanOut, HealthCheck,
    IdempotencyStore, InboxStore, OutboxStore, Page, ProfessionalQuery, RequestAnswer,
    RequestStore, ScheduleStore, SubscriptionStore,
};
use booking_core::webhook::inbox::{Claimed, InboxEvent, InboxKey, NewInboxEvent, Recorded};
use booking_core::webhook::outbound::{AttemptOutcome, Delivery, DueDelivery, Subscription};
use booking_core::{
    Booking, BookingId, Client, ClientId, Entity, Error, EventId, Inserted, Principal,
    Professional, ProfessionalId, ProfessionalPatch, Result, Schedule, TimeRange, TokenHash,
    Transition,
};
use booking_core::{DeliveryId, SubscriptionId};
use chrono::{DateTime, Utc};

use crate::directory::Directory;
use crate::idempotency::IdempotencyTable;
use crate::idhash::IdMap;
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::shard::{DueKey, Effects, ListKey, ProShard, due_key, in_index, list_key};
use crate::striped::Striped;
use crate::sync::{Arc, Mutex, RwLock, lock, read, write};
use crate::webhooks::Webhooks;

type Shard = Arc<Mutex<ProShard>>;

/// The in-memory store. Cheap to share behind an `Arc`; see the [crate docs](crate) for the
/// lock layout.
///
/// ```
/// use booking_memory::MemoryStore;
/// use booking_core::store::HealthCheck;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = std::sync::Arc::new(MemoryStore::default());
/// store.ping().await.unwrap();
/// # });
/// ```
pub struct MemoryStore {
    /// Professional -> shard. Level 1: held only to find or create a shard.
    shards: Striped<ProfessionalId, Shard>,
    /// Booking -> professional, to route by id. Leaf.
    routes: Striped<BookingId, ProfessionalId>,
    /// Client -> professional -> the client's bookings with them, in creation order
    /// (appended on insert; a booking never changes client or professional). Leaf.
    by_client: Striped<ClientId, IdMap<ProfessionalId, Vec<BookingId>>>,
    /// Stored holds by deadline, exactly the bookings with a [`due_key`]. Leaf.
    due: Mutex<std::collections::BTreeSet<DueKey>>,
    /// Domain events in recording order. Leaf.
    outbox: Mutex<Outbox>,
    /// Professionals, clients, tokens. Leaf.
    directory: RwLock<Directory>,
    /// Weekly schedules. Leaf.
    schedules: RwLock<HashMap<ProfessionalId, Schedule>>,
    /// Idempotency records. Leaf.
    idempotency: Mutex<IdempotencyTable>,
    /// The webhook inbox. Leaf: taken alone, or under one shard mutex when an event's
    /// effect and its settling commit together.
    inbox: Mutex<Inbox>,
    /// Intent id -> booking, for bookings with a payment. Leaf.
    intents: Mutex<HashMap<String, (BookingId, ProfessionalId)>>,
    /// Bookings whose payment may still owe a provider call (see
    /// `booking_core::payment::obligation`); a superset, pruned as calls are answered.
    /// Leaf.
    unsettled: Mutex<IdMap<BookingId, ProfessionalId>>,
    /// Outbound webhook subscriptions and deliveries. Leaf: taken alone (the fan-out marks
    /// the outbox first, releases it, then records the deliveries).
    webhooks: Mutex<Webhooks>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("events", &lock(&self.outbox).len())
            .field("idempotency_records", &lock(&self.idempotency).len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// let store = booking_memory::MemoryStore::new();
    /// assert!(store.check_invariants().is_ok());
    /// ```
    pub fn new() -> Self {
        Self {
            shards: Striped::new(),
            routes: Striped::new(),
            by_client: Striped::new(),
            due: Mutex::new(std::collections::BTreeSet::new()),
            // One random draw per store salts its event ids (see `outbox`).
            outbox: Mutex::new(Outbox::new(
                EventId::new_at(DateTime::<Utc>::default())
                    .as_uuid()
                    .as_u128(),
            )),
            directory: RwLock::new(Directory::default()),
            schedules: RwLock::new(HashMap::new()),
            idempotency: Mutex::new(IdempotencyTable::default()),
            inbox: Mutex::new(Inbox::default()),
            intents: Mutex::new(HashMap::new()),
            unsettled: Mutex::new(IdMap::default()),
            webhooks: Mutex::new(Webhooks::default()),
        }
    }

    /// Verifies every internal invariant: each shard's interval index is consistent and
    /// holds exactly its confirmed bookings and holds, the due queue holds exactly the
    /// stored holds, routes and the per-client index match the shards, and so on.
    ///
    /// Meant for tests and models; it locks each structure in turn, so run it when the
    /// store is quiescent.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let shards = self.all_shards();
        let mut due_expected = std::collections::BTreeSet::new();
        let mut client_expected: HashMap<ClientId, HashMap<ProfessionalId, Vec<BookingId>>> =
            HashMap::new();
        let mut bookings = 0usize;
        for (pro, shard) in &shards {
            let s = lock(shard);
            s.check().map_err(|e| format!("shard {pro}: {e}"))?;
            for b in s.bookings.values() {
                bookings += 1;
                if b.professional_id != *pro {
                    return Err(format!("booking {} in the wrong shard", b.id));
                }
                if self.routes.read(&b.id, |m| m.get(&b.id).copied()) != Some(*pro) {
                    return Err(format!("booking {} has no route", b.id));
                }
                due_expected.extend(due_key(b));
                client_expected
                    .entry(b.client_id)
                    .or_default()
                    .entry(*pro)
                    .or_default()
                    .push(b.id);
            }
        }
        if *lock(&self.due) != due_expected {
            return Err("due-hold queue does not match the stored holds".into());
        }
        let mut routes = 0usize;
        self.routes.for_each_stripe(|m| routes += m.len());
        if routes != bookings {
            return Err(format!("{routes} routes for {bookings} bookings"));
        }
        let mut client_ok = true;
        let mut clients = 0usize;
        self.by_client.for_each_stripe(|m| {
            for (c, groups) in m {
                clients += 1;
                client_ok &= groups.len() == client_expected.get(c).map_or(0, HashMap::len)
                    && groups.iter().all(|(p, ids)| {
                        let mut ids = ids.clone();
                        ids.sort();
                        let mut want = client_expected
                            .get(c)
                            .and_then(|e| e.get(p))
                            .cloned()
                            .unwrap_or_default();
                        want.sort();
                        ids == want
                    });
            }
        });
        if !client_ok || clients != client_expected.len() {
            return Err("per-client index does not match the bookings".into());
        }
        let outbox = lock(&self.outbox);
        let mut ids = std::collections::HashSet::new();
        if !outbox.all().all(|e| ids.insert(e.id)) {
            return Err("duplicate event id in the outbox".into());
        }
        drop(outbox);
        read(&self.directory).check()?;
        lock(&self.idempotency).check()?;
        lock(&self.inbox).check()?;
        lock(&self.webhooks).check()?;
        Ok(())
    }

    /// The number of bookings stored for `professional` and of entries in its interval
    /// index (for tests and benchmarks).
    #[doc(hidden)]
    pub fn shard_stats(&self, professional: ProfessionalId) -> (usize, usize) {
        self.shard(professional).map_or((0, 0), |s| {
            let s = lock(&s);
            (s.bookings.len(), s.index.len())
        })
    }

    #[cfg(all(test, not(booking_loom)))]
    fn due_len(&self) -> usize {
        lock(&self.due).len()
    }

    // ---- shards ---------------------------------------------------------------------

    fn shard(&self, pro: ProfessionalId) -> Option<Shard> {
        self.shards.read(&pro, |m| m.get(&pro).cloned())
    }

    fn shard_or_create(&self, pro: ProfessionalId) -> Shard {
        if let Some(s) = self.shard(pro) {
            return s;
        }
        self.shards.write(&pro, |m| {
            Arc::clone(
                m.entry(pro)
                    .or_insert_with(|| Arc::new(Mutex::new(ProShard::default()))),
            )
        })
    }

    fn all_shards(&self) -> Vec<(ProfessionalId, Shard)> {
        let mut out = Vec::new();
        self.shards.for_each_stripe(|m| {
            out.extend(m.iter().map(|(k, v)| (*k, Arc::clone(v))));
        });
        out
    }

    fn route(&self, id: BookingId) -> Option<ProfessionalId> {
        self.routes.read(&id, |m| m.get(&id).copied())
    }

    /// Applies a critical section's effects to the leaf structures. Called with the shard
    /// mutex held (lock order shard -> leaf); takes each leaf lock alone. The outbox comes
    /// last, so that once an event is visible every structure reflects its change.
    fn commit(&self, fx: Effects) {
        let Effects {
            events,
            due_remove,
            due_add,
            client_add,
        } = fx;
        if !due_remove.is_empty() || !due_add.is_empty() {
            let mut due = lock(&self.due);
            for k in &due_remove {
                due.remove(k);
            }
            due.extend(due_add);
        }
        for (client, pro, id) in client_add {
            self.by_client.write(&client, |m| {
                m.entry(client)
                    .or_default()
                    .entry(pro)
                    .or_default()
                    .push(id);
            });
        }
        if !events.is_empty() {
            lock(&self.outbox).append(events);
        }
    }

    // ---- bookings -------------------------------------------------------------------

    fn insert_booking_now(&self, booking: &Booking, now: DateTime<Utc>) -> Result<Inserted> {
        self.insert_booking_with(booking, now, None)
            .map(|(inserted, _)| inserted)
    }

    /// The insert, and `answer` stored in the same critical section when the booking is
    /// created (the idempotency table is a leaf lock, taken alone under the shard mutex).
    fn insert_booking_with(
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

    fn get_booking_now(&self, id: BookingId) -> Option<Booking> {
        let pro = self.route(id)?;
        let shard = self.shard(pro)?;
        let s = lock(&shard);
        s.get(id).cloned()
    }

    fn locked_booking_shard(&self, id: BookingId) -> Result<Shard> {
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
        let mut lower = match query.after {
            Some(c) => Bound::Excluded((c.primary, BookingId::from_uuid(c.id))),
            None => Bound::Unbounded,
        };
        if let Some(from) = query.from {
            let from_key = (
                from.timestamp_micros(),
                BookingId::from_uuid(uuid::Uuid::nil()),
            );
            let starts_later = match lower {
                Bound::Excluded(k) | Bound::Included(k) => from_key > k,
                Bound::Unbounded => true,
            };
            if starts_later {
                lower = Bound::Included(from_key);
            }
        }
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

#[async_trait]
impl DirectoryStore for MemoryStore {
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        write(&self.directory).insert_professional(professional, token, request_ref)
    }

    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>> {
        Ok(read(&self.directory).professional(id).cloned())
    }

    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        write(&self.directory).update_professional(id, patch, now)
    }

    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        read(&self.directory).search(query)
    }

    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        write(&self.directory).insert_client(client, token, request_ref)
    }

    async fn get_client(&self, id: ClientId) -> Result<Option<Client>> {
        Ok(read(&self.directory).client(id).cloned())
    }

    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>> {
        Ok(read(&self.directory).principal(&token))
    }
}

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()> {
        // Professionals are never deleted, so checking first and writing after (two leaf
        // locks, one at a time) cannot race with a removal.
        if read(&self.directory)
            .professional(professional_id)
            .is_none()
        {
            return Err(Error::NotFound(Entity::Professional));
        }
        write(&self.schedules).insert(professional_id, schedule.clone());
        Ok(())
    }

    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>> {
        Ok(read(&self.schedules).get(&professional_id).cloned())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision> {
        Ok(lock(&self.idempotency).begin(scope, key, fingerprint, now, policy))
    }

    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        Ok(lock(&self.idempotency).complete(scope, key, lease, response))
    }

    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool> {
        Ok(lock(&self.idempotency).abandon(scope, key, lease))
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        Ok(lock(&self.idempotency).purge_expired(now, limit))
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn events_after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        lock(&self.outbox).after(after, limit)
    }

    async fn claim_events(
        &self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents> {
        lock(&self.outbox).claim(consumer, now, limit, lease)
    }

    async fn mark_events(
        &self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
        _now: DateTime<Utc>,
    ) -> Result<usize> {
        Ok(lock(&self.outbox).mark(consumer, lease, ids))
    }

    async fn prune_events(
        &self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> Result<u64> {
        Ok(lock(&self.outbox).prune(older_than, consumers, limit))
    }
}

#[async_trait]
impl InboxStore for MemoryStore {
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded> {
        Ok(lock(&self.inbox).record(event, now))
    }

    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>> {
        Ok(lock(&self.inbox).get(key))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>> {
        lock(&self.inbox).claim_due(now, limit, lease)
    }

    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(lock(&self.inbox).mark_processed(key, lease, now))
    }

    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        Ok(lock(&self.inbox).schedule_retry(key, lease, at, error))
    }

    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(lock(&self.inbox).dead_letter(key, lease, error, now))
    }

    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>> {
        lock(&self.inbox).list_dead_letters(limit, after)
    }

    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent> {
        lock(&self.inbox).replay_dead_letter(key, now)
    }

    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64> {
        Ok(lock(&self.inbox).prune_processed(older_than, limit))
    }
}

/// The fan-out marks the events in the outbox (its leaf lock alone) and then, for the ids
/// it marked, records the deliveries (the webhooks lock alone). Nothing between the two
/// steps can fail, and only the caller whose lease marked an event fans it out, so each
/// event is fanned out once; a reader in between sees the event marked and its deliveries
/// a moment later, which no promise excludes.
#[async_trait]
impl SubscriptionStore for MemoryStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<()> {
        lock(&self.webhooks).create(subscription)
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>> {
        Ok(lock(&self.webhooks).get(id))
    }

    async fn list_subscriptions(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Subscription>> {
        lock(&self.webhooks).list(limit, after)
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<()> {
        lock(&self.webhooks).delete(id)
    }

    async fn record_deliveries(
        &self,
        lease: LeaseId,
        events: &[DomainEvent],
        now: DateTime<Utc>,
    ) -> Result<FanOut> {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let marked = lock(&self.outbox).mark_ids(Consumer::Webhooks, lease, &ids);
        let marked: Vec<&DomainEvent> = events.iter().filter(|e| marked.contains(&e.id)).collect();
        let deliveries_created = lock(&self.webhooks).fan_out(&marked, now);
        Ok(FanOut {
            events_marked: marked.len(),
            deliveries_created,
        })
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>> {
        lock(&self.webhooks).claim(now, limit, lease)
    }

    async fn settle_delivery(
        &self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(lock(&self.webhooks).settle(id, lease, outcome, now))
    }

    async fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>> {
        lock(&self.webhooks).list_deliveries(subscription, limit, after)
    }

    async fn redeliver(&self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery> {
        lock(&self.webhooks).redeliver(id, now)
    }
}

#[async_trait]
impl RequestStore for MemoryStore {
    async fn insert_booking_answered(
        &self,
        booking: &Booking,
        now: DateTime<Utc>,
        answer: &RequestAnswer,
    ) -> Result<(Inserted, bool)> {
        self.insert_booking_with(booking, now, Some(answer))
    }
}

#[async_trait]
impl HealthCheck for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(all(test, not(booking_loom)))]
mod tests;
