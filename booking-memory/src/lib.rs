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
//! | `search_professionals` | `O(log n + scanned)` in `(rate, id)` order; with a radius, an R-tree walk nearest first (of the category's own tree when the query names one) that stops after the page (`O(log n + visited)`) |
//! | `purge_expired` | `O(k log n)` for `k` records deleted |
//! | inbox `claim_due`, `prune_processed` | `O(k log n)` for `k` events claimed or deleted |

//!
//! ## Where things are
//!
//! | module | what |
//! |---|---|
//! | `lib.rs` | [`MemoryStore`], its locks, shard look-up and the commit of leaf effects |
//! | `bookings` | `BookingStore`: every booking operation, one shard critical section each |
//! | `shard` | a professional's shard: interval index, bookings, list order |
//! | `directory` | `DirectoryStore` and `ScheduleStore` |
//! | `idempotency` | `IdempotencyStore` |
//! | `outbox` | `OutboxStore`: events in recording order, consumer claims |
//! | `inbox` | `InboxStore`: the webhook inbox |
//! | `payments` | `PaymentStore` |
//! | `webhooks` | `SubscriptionStore`: outbound webhooks |
//! | `sync`, `striped`, `idhash` | the loom facade, striped maps, the id hasher |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bookings;
mod directory;
mod idempotency;
mod idhash;
mod inbox;
mod keyset;
mod outbox;
mod payments;
mod shard;
mod striped;
mod sync;
mod webhooks;

use std::collections::HashMap;

use async_trait::async_trait;
use booking_core::store::{HealthCheck, RequestAnswer, RequestStore};
use booking_core::{
    Booking, BookingId, ClientId, EventId, Inserted, ProfessionalId, Result, Schedule,
};
use chrono::{DateTime, Utc};

use crate::directory::Directory;
use crate::idempotency::IdempotencyTable;
use crate::idhash::IdMap;
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::shard::{DueKey, Effects, ProShard, due_key};
use crate::striped::Striped;
use crate::sync::{Arc, Mutex, RwLock, lock, read};
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
