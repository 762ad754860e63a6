//! Outbound webhooks: subscriptions and deliveries, with ordered indexes for the list
//! orders and the due scan. One leaf lock guards it all; every operation is one critical
//! section.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use crate::MemoryStore;
use crate::sync::lock;
use async_trait::async_trait;
use booking_core::events::Consumer;
use booking_core::events::DomainEvent;
use booking_core::idempotency::LeaseId;
use booking_core::store::FanOut;
use booking_core::store::SubscriptionStore;
use booking_core::store::{Cursor, Page, check_limit};
use booking_core::webhook::inbox::{clip_error, lease_end};
use booking_core::webhook::outbound::{
    AttemptOutcome, Delivery, DeliveryStatus, DueDelivery, Subscription,
};
use booking_core::{DeliveryId, Entity, Error, EventId, Result, SubscriptionId};
use chrono::{DateTime, Utc};

/// A stored delivery, its event and the lease of its current claim (only while pending and
/// claimed).
#[derive(Debug)]
struct Row {
    delivery: Delivery,
    event: DomainEvent,
    lease: Option<LeaseId>,
}

/// Subscriptions and deliveries, kept in step by every method.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    /// Subscriptions in list order.
    subscriptions: BTreeMap<Cursor, Subscription>,
    /// Subscription id -> its list position.
    positions: HashMap<SubscriptionId, Cursor>,
    rows: HashMap<DeliveryId, Row>,
    /// Deliveries per subscription in list order.
    by_subscription: BTreeMap<(SubscriptionId, Cursor), DeliveryId>,
    /// `(subscription, event)` pairs with a delivery: at most one each.
    pairs: HashSet<(SubscriptionId, EventId)>,
    /// Pending deliveries by `next_attempt_at`.
    due: BTreeSet<(DateTime<Utc>, DeliveryId)>,
}

/// A page of `items` fetched with one extra, cut to `limit`.
fn page<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next_cursor }
}

impl Webhooks {
    pub(crate) fn create(&mut self, s: &Subscription) -> Result<()> {
        if self.positions.contains_key(&s.id) {
            return Err(Error::AlreadyExists(Entity::WebhookSubscription));
        }
        self.positions.insert(s.id, s.cursor());
        self.subscriptions.insert(s.cursor(), s.clone());
        Ok(())
    }

    pub(crate) fn get(&self, id: SubscriptionId) -> Option<Subscription> {
        self.positions
            .get(&id)
            .and_then(|c| self.subscriptions.get(c))
            .cloned()
    }

    pub(crate) fn list(&self, limit: u32, after: Option<Cursor>) -> Result<Page<Subscription>> {
        let limit = check_limit(limit)? as usize;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let items = self
            .subscriptions
            .range((lower, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, s)| s.clone())
            .collect();
        Ok(page(items, limit, Subscription::cursor))
    }

    pub(crate) fn delete(&mut self, id: SubscriptionId) -> Result<()> {
        let cursor = self
            .positions
            .remove(&id)
            .ok_or(Error::NotFound(Entity::WebhookSubscription))?;
        self.subscriptions.remove(&cursor);
        let first = Cursor {
            primary: i64::MIN,
            id: uuid::Uuid::nil(),
        };
        let doomed: Vec<((SubscriptionId, Cursor), DeliveryId)> = self
            .by_subscription
            .range((id, first)..)
            .take_while(|((s, _), _)| *s == id)
            .map(|(k, d)| (*k, *d))
            .collect();
        for (key, delivery) in doomed {
            self.by_subscription.remove(&key);
            if let Some(row) = self.rows.remove(&delivery) {
                self.pairs.remove(&(id, row.event.id));
                if let Some(at) = row.delivery.next_attempt_at {
                    self.due.remove(&(at, delivery));
                }
            }
        }
        Ok(())
    }

    /// Creates the deliveries of `events` (already marked by this caller), due at `now`.
    pub(crate) fn fan_out(&mut self, events: &[&DomainEvent], now: DateTime<Utc>) -> usize {
        let mut created = 0;
        for event in events {
            let targets: Vec<SubscriptionId> = self
                .subscriptions
                .values()
                .filter(|s| s.matches(event) && !self.pairs.contains(&(s.id, event.id)))
                .map(|s| s.id)
                .collect();
            for subscription in targets {
                let delivery = Delivery::new(subscription, event.id, now);
                self.pairs.insert((subscription, event.id));
                self.by_subscription
                    .insert((subscription, delivery.cursor()), delivery.id);
                self.due.insert((now, delivery.id));
                self.rows.insert(
                    delivery.id,
                    Row {
                        delivery,
                        event: (*event).clone(),
                        lease: None,
                    },
                );
                created += 1;
            }
        }
        created
    }

    pub(crate) fn claim(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<DueDelivery>> {
        let until = lease_end(now, lease)?;
        let id = LeaseId::new_at(now);
        let picked: Vec<(DateTime<Utc>, DeliveryId)> = self
            .due
            .range(..=(now, DeliveryId::from_uuid(uuid::Uuid::max())))
            .take(limit)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(picked.len());
        for key in picked {
            self.due.remove(&key);
            let Some(row) = self.rows.get_mut(&key.1) else {
                continue;
            };
            let Some(subscription) = self
                .positions
                .get(&row.delivery.subscription_id)
                .and_then(|c| self.subscriptions.get(c))
            else {
                continue;
            };
            let d = &mut row.delivery;
            d.attempt = d.attempt.saturating_add(1);
            d.first_attempt_at.get_or_insert(now);
            d.next_attempt_at = Some(until);
            row.lease = Some(id);
            self.due.insert((until, key.1));
            out.push(DueDelivery {
                delivery: row.delivery.clone(),
                lease: id,
                url: subscription.url.clone(),
                secret: subscription.secret.clone(),
                event: row.event.clone(),
            });
        }
        Ok(out)
    }

    pub(crate) fn settle(
        &mut self,
        id: DeliveryId,
        lease: LeaseId,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(row) = self.rows.get_mut(&id) else {
            return false;
        };
        if row.lease != Some(lease) || row.delivery.status != DeliveryStatus::Pending {
            return false;
        }
        row.lease = None;
        let d = &mut row.delivery;
        if let Some(at) = d.next_attempt_at.take() {
            self.due.remove(&(at, id));
        }
        match outcome {
            AttemptOutcome::Delivered { response_status } => {
                d.status = DeliveryStatus::Delivered;
                d.response_status = Some(*response_status);
                d.delivered_at = Some(now);
                d.last_error = None;
            }
            AttemptOutcome::Retry {
                at,
                response_status,
                error,
            } => {
                d.response_status = *response_status;
                d.last_error = Some(clip_error(error));
                d.next_attempt_at = Some(*at);
                self.due.insert((*at, id));
            }
            AttemptOutcome::Failed {
                response_status,
                error,
            } => {
                d.status = DeliveryStatus::Failed;
                d.response_status = *response_status;
                d.last_error = Some(clip_error(error));
            }
        }
        true
    }

    pub(crate) fn list_deliveries(
        &self,
        subscription: SubscriptionId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<Delivery>> {
        let limit = check_limit(limit)? as usize;
        if !self.positions.contains_key(&subscription) {
            return Err(Error::NotFound(Entity::WebhookSubscription));
        }
        let lower = match after {
            Some(c) => Bound::Excluded((subscription, c)),
            None => Bound::Included((
                subscription,
                Cursor {
                    primary: i64::MIN,
                    id: uuid::Uuid::nil(),
                },
            )),
        };
        let items = self
            .by_subscription
            .range((lower, Bound::Unbounded))
            .take_while(|((s, _), _)| *s == subscription)
            .take(limit + 1)
            .filter_map(|(_, id)| self.rows.get(id).map(|r| r.delivery.clone()))
            .collect();
        Ok(page(items, limit, Delivery::cursor))
    }

    /// The indexes match the rows: every pending delivery is due exactly once at its
    /// `next_attempt_at`, every delivery is listed under its (existing) subscription once,
    /// and each `(subscription, event)` pair has one delivery.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.positions.len() != self.subscriptions.len()
            || self
                .positions
                .iter()
                .any(|(id, c)| self.subscriptions.get(c).is_none_or(|s| s.id != *id))
        {
            return Err("webhooks: subscription index does not match".into());
        }
        let mut due = BTreeSet::new();
        let mut pairs = HashSet::new();
        for (id, row) in &self.rows {
            let d = &row.delivery;
            if d.id != *id || !self.positions.contains_key(&d.subscription_id) {
                return Err(format!("webhooks: delivery {id} without its subscription"));
            }
            if !pairs.insert((d.subscription_id, row.event.id)) {
                return Err(format!("webhooks: two deliveries of one event ({id})"));
            }
            match (d.status, d.next_attempt_at) {
                (DeliveryStatus::Pending, Some(at)) => {
                    due.insert((at, *id));
                }
                (DeliveryStatus::Pending, None) => {
                    return Err(format!("webhooks: pending delivery {id} is never due"));
                }
                (_, Some(_)) => {
                    return Err(format!("webhooks: settled delivery {id} is still due"));
                }
                (_, None) => {}
            }
            if self.by_subscription.get(&(d.subscription_id, d.cursor())) != Some(id) {
                return Err(format!("webhooks: delivery {id} is not listed"));
            }
        }
        if due != self.due || pairs != self.pairs || self.by_subscription.len() != self.rows.len() {
            return Err("webhooks: due, pair or list index does not match the deliveries".into());
        }
        Ok(())
    }

    pub(crate) fn redeliver(&mut self, id: DeliveryId, now: DateTime<Utc>) -> Result<Delivery> {
        let row = self
            .rows
            .get_mut(&id)
            .ok_or(Error::NotFound(Entity::WebhookDelivery))?;
        let d = &mut row.delivery;
        if let Some(at) = d.next_attempt_at {
            self.due.remove(&(at, id));
        }
        row.lease = None;
        d.status = DeliveryStatus::Pending;
        d.next_attempt_at = Some(now);
        d.first_attempt_at = None;
        d.delivered_at = None;
        self.due.insert((now, id));
        Ok(d.clone())
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

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use std::sync::Arc;

    use booking_core::testing::checks;

    use super::*;
    use crate::sync::lock;

    /// A store whose webhook tables hold subscriptions and deliveries in every state.
    fn filled() -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(checks::webhook_retry_is_scheduled_and_failure_is_final(
                store.clone(),
            ));
        store
            .check_invariants()
            .expect("consistent before the damage");
        store
    }

    fn error(store: &MemoryStore) -> String {
        lock(&store.webhooks)
            .check()
            .expect_err("drift is reported")
    }

    /// `check` (part of `check_invariants`) reports each index drifting alone.
    #[test]
    fn check_reports_each_index_drifting_alone() {
        // A subscription missing from the id index (every indexed one still matches).
        let store = filled();
        {
            let mut w = lock(&store.webhooks);
            let (cursor, sub) = w
                .subscriptions
                .iter()
                .next()
                .map(|(c, s)| (*c, s.clone()))
                .expect("a subscription");
            let extra = Cursor {
                primary: cursor.primary,
                id: uuid::Uuid::max(),
            };
            w.subscriptions.insert(extra, sub);
        }
        assert!(error(&store).contains("subscription index"));

        // A delivery whose subscription is gone from both indexes.
        let store = filled();
        {
            let mut w = lock(&store.webhooks);
            let sub = w
                .rows
                .values()
                .next()
                .map(|r| r.delivery.subscription_id)
                .expect("a delivery");
            let cursor = w.positions.remove(&sub).expect("indexed");
            w.subscriptions.remove(&cursor);
        }
        assert!(error(&store).contains("without its subscription"));

        let mismatch = "due, pair or list index does not match";
        let store = filled();
        lock(&store.webhooks).due.insert((
            DateTime::<Utc>::UNIX_EPOCH,
            DeliveryId::new_at(DateTime::<Utc>::UNIX_EPOCH),
        ));
        assert!(error(&store).contains(mismatch), "a stray due entry");

        let store = filled();
        {
            let mut w = lock(&store.webhooks);
            let sub = *w.positions.keys().next().expect("a subscription");
            w.pairs
                .insert((sub, EventId::new_at(DateTime::<Utc>::UNIX_EPOCH)));
        }
        assert!(error(&store).contains(mismatch), "a stray pair");

        let store = filled();
        {
            let mut w = lock(&store.webhooks);
            let (key, id) = w
                .by_subscription
                .iter()
                .next()
                .map(|(k, v)| (*k, *v))
                .expect("a listed delivery");
            let stray = (
                key.0,
                Cursor {
                    primary: key.1.primary,
                    id: uuid::Uuid::max(),
                },
            );
            w.by_subscription.insert(stray, id);
        }
        assert!(error(&store).contains(mismatch), "a stray list entry");
    }
}
