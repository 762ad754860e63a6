//! The webhook inbox: events by key, with ordered indexes for the three scans (due pending
//! events, dead letters in list order, processed events by age). One leaf lock guards it
//! all; every operation is one critical section.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::MemoryStore;
use crate::sync::lock;
use async_trait::async_trait;
use booking_core::idempotency::LeaseId;
use booking_core::store::InboxStore;
use booking_core::store::{Cursor, Page, check_limit};
use booking_core::webhook::inbox::{
    Claimed, InboxEvent, InboxKey, InboxState, NewInboxEvent, Recorded, clip_error, lease_end,
};
use booking_core::{Entity, Error, Result};
use chrono::{DateTime, Utc};

/// A stored event and the lease of its current claim (only while pending and claimed).
#[derive(Debug)]
struct Row {
    event: InboxEvent,
    lease: Option<LeaseId>,
}

/// Dead-letter list position: `(dead_lettered_at` in microseconds`, list_id)`.
type DeadKey = (i64, uuid::Uuid);

/// The inbox and its indexes, kept in step by every method.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    rows: HashMap<InboxKey, Row>,
    /// Pending events by `next_attempt_at`.
    due: BTreeSet<(DateTime<Utc>, InboxKey)>,
    /// Dead letters in list order.
    dead: BTreeMap<DeadKey, InboxKey>,
    /// Processed events by `processed_at`.
    processed: BTreeSet<(DateTime<Utc>, InboxKey)>,
}

fn dead_key(event: &InboxEvent) -> Option<DeadKey> {
    event.dead_letter_cursor().map(|c| (c.primary, c.id))
}

impl Inbox {
    pub(crate) fn record(&mut self, event: &NewInboxEvent, now: DateTime<Utc>) -> Recorded {
        if self.rows.contains_key(&event.key) {
            return Recorded::Duplicate;
        }
        let stored = InboxEvent::received(event, now);
        self.due.insert((now, event.key.clone()));
        self.rows.insert(
            event.key.clone(),
            Row {
                event: stored,
                lease: None,
            },
        );
        Recorded::New
    }

    pub(crate) fn get(&self, key: &InboxKey) -> Option<InboxEvent> {
        self.rows.get(key).map(|r| r.event.clone())
    }

    pub(crate) fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>> {
        let until = lease_end(now, lease)?;
        let keys: Vec<(DateTime<Utc>, InboxKey)> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .cloned()
            .collect();
        let lease = LeaseId::new_at(now);
        let mut out = Vec::with_capacity(keys.len());
        for entry in keys {
            self.due.remove(&entry);
            let (_, key) = entry;
            let row = self
                .rows
                .get_mut(&key)
                .ok_or_else(|| Error::Internal("inbox: due index names a missing row".into()))?;
            row.event.attempts = row.event.attempts.saturating_add(1);
            row.event.next_attempt_at = until;
            row.lease = Some(lease);
            self.due.insert((until, key));
            out.push(Claimed {
                event: row.event.clone(),
                lease,
            });
        }
        Ok(out)
    }

    /// The row `lease` owns: pending and claimed under exactly that lease.
    /// Whether `lease` owns the pending event `key`.
    pub(crate) fn owns(&self, key: &InboxKey, lease: LeaseId) -> bool {
        self.rows
            .get(key)
            .is_some_and(|r| r.event.state == InboxState::Pending && r.lease == Some(lease))
    }

    fn owned(&mut self, key: &InboxKey, lease: LeaseId) -> Option<&mut Row> {
        self.rows
            .get_mut(key)
            .filter(|r| r.event.state == InboxState::Pending && r.lease == Some(lease))
    }

    pub(crate) fn mark_processed(
        &mut self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(row) = self.owned(key, lease) else {
            return false;
        };
        let due = (row.event.next_attempt_at, key.clone());
        row.lease = None;
        row.event.state = InboxState::Processed;
        row.event.processed_at = Some(now);
        self.due.remove(&due);
        self.processed.insert((now, key.clone()));
        true
    }

    pub(crate) fn schedule_retry(
        &mut self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> bool {
        let Some(row) = self.owned(key, lease) else {
            return false;
        };
        let due = (row.event.next_attempt_at, key.clone());
        row.lease = None;
        row.event.next_attempt_at = at;
        row.event.last_error = Some(clip_error(error));
        self.due.remove(&due);
        self.due.insert((at, key.clone()));
        true
    }

    pub(crate) fn dead_letter(
        &mut self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(row) = self.owned(key, lease) else {
            return false;
        };
        let due = (row.event.next_attempt_at, key.clone());
        row.lease = None;
        row.event.state = InboxState::DeadLettered;
        row.event.dead_lettered_at = Some(now);
        row.event.last_error = Some(clip_error(error));
        let dead = dead_key(&row.event);
        self.due.remove(&due);
        if let Some(dead) = dead {
            self.dead.insert(dead, key.clone());
        }
        true
    }

    pub(crate) fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>> {
        let limit = check_limit(limit)? as usize;
        let lower = after.map_or(Bound::Unbounded, |c| Bound::Excluded((c.primary, c.id)));
        let mut items = self
            .dead
            .range((lower, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, key)| {
                self.rows
                    .get(key)
                    .map(|r| r.event.clone())
                    .ok_or_else(|| Error::Internal("inbox: dead letter without a row".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().and_then(InboxEvent::dead_letter_cursor)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub(crate) fn replay_dead_letter(
        &mut self,
        key: &InboxKey,
        now: DateTime<Utc>,
    ) -> Result<InboxEvent> {
        let row = self
            .rows
            .get_mut(key)
            .filter(|r| r.event.state == InboxState::DeadLettered)
            .ok_or(Error::NotFound(Entity::InboxEvent))?;
        let dead = dead_key(&row.event);
        row.event.state = InboxState::Pending;
        row.event.dead_lettered_at = None;
        row.event.attempts = 0;
        row.event.next_attempt_at = now;
        let event = row.event.clone();
        if let Some(dead) = dead {
            self.dead.remove(&dead);
        }
        self.due.insert((now, key.clone()));
        Ok(event)
    }

    pub(crate) fn prune_processed(&mut self, older_than: DateTime<Utc>, limit: usize) -> u64 {
        let old: Vec<(DateTime<Utc>, InboxKey)> = self
            .processed
            .iter()
            .take_while(|(at, _)| *at < older_than)
            .take(limit)
            .cloned()
            .collect();
        for entry in &old {
            self.processed.remove(entry);
            self.rows.remove(&entry.1);
        }
        old.len() as u64
    }

    /// The indexes match the rows (for `check_invariants`).
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let mut due = BTreeSet::new();
        let mut dead = BTreeMap::new();
        let mut processed = BTreeSet::new();
        for (key, row) in &self.rows {
            if &row.event.key != key {
                return Err(format!("inbox row {key} stored under another key"));
            }
            match row.event.state {
                InboxState::Pending => {
                    due.insert((row.event.next_attempt_at, key.clone()));
                }
                InboxState::Processed => {
                    let at = row
                        .event
                        .processed_at
                        .ok_or("processed without processed_at")?;
                    processed.insert((at, key.clone()));
                }
                InboxState::DeadLettered => {
                    let k = dead_key(&row.event).ok_or("dead letter without dead_lettered_at")?;
                    dead.insert(k, key.clone());
                }
            }
            if row.lease.is_some() && row.event.state != InboxState::Pending {
                return Err(format!("settled inbox row {key} still leased"));
            }
        }
        if due != self.due || dead != self.dead || processed != self.processed {
            return Err("inbox indexes do not match the rows".into());
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> NewInboxEvent {
        let key = InboxKey::new("stripe", format!("evt_{n}")).expect("key");
        NewInboxEvent::new(key, "payment_intent.succeeded", vec![]).expect("event")
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minutes)
    }

    /// Every operation keeps the indexes in step with the rows.
    #[test]
    fn indexes_follow_every_operation() {
        let mut inbox = Inbox::default();
        let lease = chrono::Duration::minutes(5);
        for n in 0..4 {
            assert_eq!(inbox.record(&event(n), at(0)), Recorded::New);
        }
        inbox.check().expect("after record");
        let claimed = inbox.claim_due(at(0), 10, lease).expect("claim");
        inbox.check().expect("after claim");
        let [a, b, c, d] = &claimed[..] else {
            panic!("four claimed, got {}", claimed.len());
        };
        assert!(inbox.mark_processed(&a.event.key, a.lease, at(1)));
        assert!(inbox.schedule_retry(&b.event.key, b.lease, at(9), "boom"));
        assert!(inbox.dead_letter(&c.event.key, c.lease, "boom", at(2)));
        inbox.check().expect("after settling");
        inbox
            .replay_dead_letter(&c.event.key, at(3))
            .expect("replay");
        inbox.check().expect("after replay");
        assert_eq!(inbox.prune_processed(at(2), 10), 1);
        inbox.check().expect("after prune");
        // `d` is still leased: its row is due again only when the lease ends.
        assert!(inbox.owned(&d.event.key, d.lease).is_some());
    }

    /// `check` notices each index that lost an entry, alone.
    #[test]
    fn check_detects_a_stale_index() {
        let stale = Err("inbox indexes do not match the rows".to_owned());
        let mut inbox = Inbox::default();
        inbox.record(&event(1), at(0));
        inbox.due.clear();
        assert_eq!(inbox.check(), stale);

        // One event of each settled kind, then one index at a time loses its entry.
        let settled = || {
            let mut inbox = Inbox::default();
            for n in 0..2 {
                inbox.record(&event(n), at(0));
            }
            let claimed = inbox
                .claim_due(at(0), 10, chrono::Duration::minutes(5))
                .expect("claim");
            assert!(inbox.mark_processed(&claimed[0].event.key, claimed[0].lease, at(1)));
            assert!(inbox.dead_letter(&claimed[1].event.key, claimed[1].lease, "boom", at(1)));
            inbox.check().expect("consistent");
            inbox
        };
        let mut inbox = settled();
        inbox.dead.clear();
        assert_eq!(inbox.check(), stale, "dead-letter index");
        let mut inbox = settled();
        inbox.processed.clear();
        assert_eq!(inbox.check(), stale, "processed index");
    }
}
