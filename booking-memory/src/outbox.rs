//! The outbox: domain events in one global recording order.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::MemoryStore;
use crate::sync::lock;
use async_trait::async_trait;
use booking_core::events::{ClaimedEvents, Consumer, DomainEvent};
use booking_core::idempotency::LeaseId;
use booking_core::store::OutboxStore;
use booking_core::{BookingId, Error, EventId, Result};
use chrono::{DateTime, Utc};
use uuid::Builder;

/// Bits of an event id's 74-bit v7 payload that hold the recording position.
const SEQ_BITS: u32 = 48;
/// Bits that hold the store's random salt.
const SALT_BITS: u32 = 26;
const SALT_MASK: u128 = (1 << SALT_BITS) - 1;
const SEQ_MASK: u128 = (1 << SEQ_BITS) - 1;
const RAND_B_MASK: u128 = (1 << 62) - 1;

/// Events in recording order.
///
/// The outbox assigns each event its id when recording it: a UUID v7 whose timestamp is
/// the event's `occurred_at` (milliseconds) and whose 74 "random" bits are the recording
/// position followed by a random per-store salt. So ids stay v7 and increase with time for
/// this writer, no id costs a `getrandom` call, and an [`EventId`] cursor is turned back
/// into its position without a lookup table (the id found there must match, so a forged
/// or foreign id is refused).
///
/// Events are stored in fixed-size chunks, so the outbox never reallocates (and copies)
/// everything it holds while writers wait on its lock.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Stored chunks; chunk `i` holds positions `(dropped + i) * CHUNK ..`.
    chunks: Vec<Vec<DomainEvent>>,
    /// Chunks pruned from the front.
    dropped: usize,
    len: usize,
    salt: u128,
    /// Per consumer (indexed like [`Consumer::ALL`]): what it marked and what is claimed.
    marks: [Marks; 2],
}

/// One consumer's marks.
#[derive(Debug, Default)]
struct Marks {
    /// Every position below this is marked.
    marked_below: usize,
    /// Marked positions at or above `marked_below`.
    marked_above: BTreeSet<usize>,
    /// Live or stale claims: position -> (lease, until).
    claims: HashMap<usize, (LeaseId, DateTime<Utc>)>,
}

impl Marks {
    fn is_marked(&self, position: usize) -> bool {
        position < self.marked_below || self.marked_above.contains(&position)
    }

    fn mark(&mut self, position: usize) {
        self.claims.remove(&position);
        if position >= self.marked_below {
            self.marked_above.insert(position);
        }
        while self.marked_above.remove(&self.marked_below) {
            self.marked_below += 1;
        }
    }
}

fn slot(consumer: Consumer) -> usize {
    match consumer {
        Consumer::Nats => 0,
        Consumer::Webhooks => 1,
    }
}

/// Events per storage chunk.
const CHUNK: usize = 4096;

impl Outbox {
    /// An empty outbox whose ids carry `salt` (only its low 26 bits are used).
    pub(crate) fn new(salt: u128) -> Self {
        Self {
            chunks: Vec::new(),
            dropped: 0,
            len: 0,
            salt: salt & SALT_MASK,
            marks: Default::default(),
        }
    }

    fn event_id(&self, position: usize, at: DateTime<Utc>) -> EventId {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let payload = ((position as u128 & SEQ_MASK) << SALT_BITS) | self.salt;
        let rand_a = (payload >> 62) as u16; // 12 bits
        let rand_b = (payload & RAND_B_MASK) as u64; // 62 bits
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&rand_a.to_be_bytes());
        bytes[2..].copy_from_slice(&rand_b.to_be_bytes());
        EventId::from_uuid(Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }

    fn position(&self, id: EventId) -> Option<usize> {
        let position = self.decode(id)?;
        self.get(position).filter(|e| e.id == id).map(|_| position)
    }

    /// The recording position an id made by this outbox encodes; `None` for an id with
    /// another salt (another store's, or not an event id at all).
    fn decode(&self, id: EventId) -> Option<usize> {
        let raw = id.as_uuid().as_u128();
        let rand_a = (raw >> 64) & 0x0fff;
        let rand_b = raw & (u128::from(u64::MAX) >> 2);
        let payload = (rand_a << 62) | rand_b;
        if payload & SALT_MASK != self.salt {
            return None;
        }
        usize::try_from(payload >> SALT_BITS).ok()
    }

    /// Appends a batch (one critical section's events) at the end, assigning their ids.
    pub(crate) fn append(&mut self, batch: Vec<DomainEvent>) {
        for mut e in batch {
            e.id = self.event_id(self.len, e.occurred_at);
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => chunk.push(e),
                _ => {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    chunk.push(e);
                    self.chunks.push(chunk);
                }
            }
            self.len += 1;
        }
    }

    fn get(&self, position: usize) -> Option<&DomainEvent> {
        (position / CHUNK)
            .checked_sub(self.dropped)
            .and_then(|i| self.chunks.get(i))
            .and_then(|c| c.get(position % CHUNK))
    }

    /// The first stored position.
    fn first(&self) -> usize {
        self.dropped * CHUNK
    }

    /// Every stored event from `position` on (or from the first stored one), in order,
    /// with its position.
    fn from(&self, position: usize) -> impl Iterator<Item = (usize, &DomainEvent)> + '_ {
        let position = position.max(self.first());
        let chunk = position / CHUNK - self.dropped;
        let first = self
            .chunks
            .get(chunk)
            .map(|c| c.get(position % CHUNK..).unwrap_or_default())
            .unwrap_or_default();
        let rest = self.chunks.get(chunk + 1..).unwrap_or_default();
        first
            .iter()
            .chain(rest.iter().flatten())
            .enumerate()
            .map(move |(i, e)| (position + i, e))
    }

    /// See [`booking_core::store::OutboxStore::claim_events`].
    pub(crate) fn claim(
        &mut self,
        consumer: Consumer,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<ClaimedEvents> {
        let until = booking_core::webhook::inbox::lease_end(now, lease)?;
        let id = LeaseId::new_at(now);
        let marks = &self.marks[slot(consumer)];
        let mut seen: HashSet<BookingId> = HashSet::new();
        let mut picked = Vec::new();
        for (position, event) in self.from(marks.marked_below) {
            if picked.len() >= limit {
                break;
            }
            if marks.is_marked(position) || !seen.insert(event.booking_id) {
                // Marked, or not the earliest unmarked event of its booking.
                continue;
            }
            let held = marks
                .claims
                .get(&position)
                .is_some_and(|(_, until)| *until > now);
            if !held {
                picked.push((position, event.clone()));
            }
        }
        let marks = &mut self.marks[slot(consumer)];
        for (position, _) in &picked {
            marks.claims.insert(*position, (id, until));
        }
        Ok(ClaimedEvents {
            lease: id,
            events: picked.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// See [`booking_core::store::OutboxStore::mark_events`].
    pub(crate) fn mark(&mut self, consumer: Consumer, lease: LeaseId, ids: &[EventId]) -> usize {
        self.mark_ids(consumer, lease, ids).len()
    }

    /// Like [`Outbox::mark`], returning the ids it marked (in the order given).
    pub(crate) fn mark_ids(
        &mut self,
        consumer: Consumer,
        lease: LeaseId,
        ids: &[EventId],
    ) -> Vec<EventId> {
        let positions: Vec<(usize, EventId)> = ids
            .iter()
            .filter_map(|id| self.position(*id).map(|p| (p, *id)))
            .collect();
        let marks = &mut self.marks[slot(consumer)];
        let mut marked = Vec::new();
        for (p, id) in positions {
            if marks.claims.get(&p).is_some_and(|(l, _)| *l == lease) {
                marks.mark(p);
                marked.push(id);
            }
        }
        marked
    }

    /// See [`booking_core::store::OutboxStore::prune_events`]. Prunes whole chunks (never
    /// the one being written), so up to one chunk more than asked for is kept.
    pub(crate) fn prune(
        &mut self,
        older_than: DateTime<Utc>,
        consumers: &[Consumer],
        limit: usize,
    ) -> u64 {
        let mut pruned = 0u64;
        while self.chunks.len() > 1 && pruned + CHUNK as u64 <= limit as u64 {
            let Some(chunk) = self.chunks.first() else {
                break;
            };
            let end = self.first() + chunk.len();
            let all_marked = consumers
                .iter()
                .all(|c| self.marks[slot(*c)].marked_below >= end);
            let all_old = chunk.iter().all(|e| e.occurred_at < older_than);
            if !(all_marked && all_old) {
                break;
            }
            self.chunks.remove(0);
            self.dropped += 1;
            pruned += CHUNK as u64;
            for m in &mut self.marks {
                m.claims.retain(|p, _| *p >= end);
                m.marked_above.retain(|p| *p >= end);
                m.marked_below = m.marked_below.max(end);
            }
        }
        pruned
    }

    /// Up to `limit` events after `after` (exclusive), in recording order.
    ///
    /// An `after` that names no recorded event is refused: it can only be a cursor from
    /// another store, and silently restarting (duplicates) or returning nothing (a stalled
    /// relay) would both hide that bug.
    pub(crate) fn after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        let from = match after {
            None => 0,
            Some(id) => match self.position(id) {
                Some(p) => p + 1,
                None => {
                    return Err(Error::invalid(
                        "after",
                        "is not the id of an event in this outbox",
                    ));
                }
            },
        };
        Ok(self
            .from(from)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    /// Number of recorded events.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every stored event, in order (for invariant checks).
    pub(crate) fn all(&self) -> impl Iterator<Item = &DomainEvent> + '_ {
        self.from(0).map(|(_, e)| e)
    }
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use booking_core::BookingStatus;
    use booking_core::events::EventKind;
    use booking_core::testing_doc::sample_booking;

    use super::*;

    #[test]
    fn ids_are_v7_increasing_and_decode_to_their_position() {
        let mut outbox = Outbox::new(0x3ff_ffff_1234);
        let (b, _) = sample_booking(BookingStatus::Confirmed);
        let batch = (0..5)
            .map(|_| DomainEvent::new(EventKind::BookingCreated, &b, None))
            .collect();
        outbox.append(batch);
        let ids: Vec<EventId> = outbox.all().map(|e| e.id).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id.as_uuid().get_version_num(), 7);
            assert_eq!(outbox.position(*id), Some(i));
            let ts = id.as_uuid().get_timestamp().map(|t| t.to_unix());
            assert_eq!(ts.map(|(s, _)| s), Some(b.updated_at.timestamp() as u64));
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // A foreign id (other salt, or a random v7) is not a position here.
        let other = Outbox::new(7);
        assert_eq!(other.position(ids[0]), None);
        assert_eq!(outbox.position(EventId::new_at(b.updated_at)), None);
    }

    /// Every position an id can hold (48 bits) survives the trip through the id, also
    /// those whose top bits land in the UUID's `rand_a` field.
    #[test]
    fn every_position_width_round_trips_through_an_id() {
        let outbox = Outbox::new(0x155_5555);
        let at = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000);
        for position in [
            0,
            1,
            12_345,
            (1 << 36) - 1,
            1 << 36,
            0xabc_def0_1234,
            (1 << 48) - 1,
        ] {
            let id = outbox.event_id(position, at);
            assert_eq!(id.as_uuid().get_version_num(), 7);
            assert_eq!(outbox.decode(id), Some(position), "{position:#x}");
            assert_eq!(Outbox::new(0x0aa_aaaa).decode(id), None);
        }
    }

    #[test]
    fn paging_crosses_chunk_boundaries() {
        let mut outbox = Outbox::new(1);
        let (b, _) = sample_booking(BookingStatus::Confirmed);
        let total = 2 * CHUNK + 3;
        outbox.append(
            (0..total)
                .map(|_| DomainEvent::new(EventKind::BookingCreated, &b, None))
                .collect(),
        );
        assert_eq!(outbox.len(), total);
        let all: Vec<EventId> = outbox.all().map(|e| e.id).collect();
        assert_eq!(all.len(), total);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = outbox.after(after, 1000).expect("page");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.iter().map(|e| e.id));
        }
        assert_eq!(seen, all);
        let tail = outbox.after(Some(all[CHUNK - 1]), 2).expect("page");
        assert_eq!(
            tail.iter().map(|e| e.id).collect::<Vec<_>>(),
            all[CHUNK..CHUNK + 2]
        );
    }

    /// An outbox with `total` events of distinct bookings (so a claim hands out all of
    /// them), their ids in order, the booking they were cloned from and its `updated_at`.
    fn one_event_per_booking(
        salt: u128,
        total: usize,
    ) -> (Outbox, Vec<EventId>, booking_core::Booking, DateTime<Utc>) {
        let mut outbox = Outbox::new(salt);
        let (b, now) = sample_booking(BookingStatus::Confirmed);
        outbox.append(
            (0..total)
                .map(|i| {
                    let mut b = b.clone();
                    b.id = BookingId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1));
                    DomainEvent::new(EventKind::BookingCreated, &b, None)
                })
                .collect(),
        );
        let all = outbox.all().map(|e| e.id).collect();
        (outbox, all, b, now)
    }

    /// Pruning a chunk keeps a consumer's claims and out-of-order marks on the events
    /// after it: nothing leased is handed out twice, nothing marked is published again.
    #[test]
    fn pruning_keeps_claims_and_marks_past_the_pruned_chunk() {
        let total = CHUNK + 10;
        let (mut outbox, all, _, now) = one_event_per_booking(3, total);
        let lease = chrono::Duration::minutes(1);
        let [nats, webhooks] = Consumer::ALL;
        let claim = outbox
            .claim(webhooks, now, usize::MAX, lease)
            .expect("claim");
        assert_eq!(outbox.mark(webhooks, claim.lease, &all), total);
        // NATS marks the first chunk and one later event, and keeps the rest leased.
        let claim = outbox.claim(nats, now, usize::MAX, lease).expect("claim");
        assert_eq!(claim.events.len(), total);
        let mut marked = all[..CHUNK].to_vec();
        marked.push(all[CHUNK + 5]);
        assert_eq!(outbox.mark(nats, claim.lease, &marked), CHUNK + 1);

        let later = now + chrono::Duration::days(1);
        assert_eq!(
            outbox.prune(later, &Consumer::ALL, usize::MAX),
            CHUNK as u64
        );
        let again = outbox.claim(nats, now, usize::MAX, lease).expect("claim");
        assert!(again.events.is_empty(), "the lease still holds the rest");
        let after_lease = now + lease + chrono::Duration::seconds(1);
        let retry = outbox
            .claim(nats, after_lease, usize::MAX, lease)
            .expect("claim");
        let want: Vec<EventId> = all[CHUNK..]
            .iter()
            .copied()
            .filter(|id| *id != all[CHUNK + 5])
            .collect();
        assert_eq!(
            retry.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            want,
            "the marked event is not handed out again"
        );
    }

    #[test]
    fn pruning_drops_whole_marked_chunks_only() {
        let total = 2 * CHUNK + 3;
        let (mut outbox, all, b, now) = one_event_per_booking(2, total);
        let later = now + chrono::Duration::days(1);
        // Nothing is marked yet: nothing goes.
        assert_eq!(outbox.prune(later, &Consumer::ALL, usize::MAX), 0);
        for consumer in Consumer::ALL {
            let claim = outbox
                .claim(consumer, now, usize::MAX, chrono::Duration::minutes(1))
                .expect("claim");
            assert_eq!(
                claim.events.len(),
                total,
                "one event per booking, all of them"
            );
            let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
            assert_eq!(outbox.mark(consumer, claim.lease, &ids), total);
        }
        // A limit below a chunk prunes nothing; events exactly at the cutoff are not
        // older than it.
        assert_eq!(outbox.prune(later, &Consumer::ALL, CHUNK - 1), 0);
        assert!(outbox.all().all(|e| e.occurred_at == now));
        assert_eq!(outbox.prune(now, &Consumer::ALL, usize::MAX), 0);
        assert_eq!(outbox.prune(later, &Consumer::ALL, CHUNK), CHUNK as u64);
        assert_eq!(
            outbox.prune(later, &Consumer::ALL, usize::MAX),
            CHUNK as u64
        );
        let left: Vec<EventId> = outbox.all().map(|e| e.id).collect();
        assert_eq!(left, all[2 * CHUNK..], "the chunk being written stays");
        assert!(
            outbox.after(Some(all[0]), 1).is_err(),
            "a pruned cursor is refused"
        );
        assert_eq!(
            outbox.after(Some(all[2 * CHUNK]), 5).expect("page").len(),
            2
        );
        // New events still get the right positions after pruning.
        outbox.append(vec![DomainEvent::new(EventKind::BookingCreated, &b, None)]);
        let last = outbox.all().last().map(|e| e.id).expect("appended");
        assert_eq!(outbox.position(last), Some(total));
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
