//! Checks of the outbox's consumers ([`OutboxStore::claim_events`] and friends).
//!
//! [`OutboxStore::claim_events`]: crate::store::OutboxStore::claim_events

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_professional};
use crate::auth::Actor;
use crate::domain::BookingId;
use crate::events::{Consumer, DomainEvent, EventKind};
use crate::store::Store;

const LEASE: Duration = Duration::seconds(30);

async fn all_events<S: Store + ?Sized>(store: &S) -> Vec<DomainEvent> {
    let mut out: Vec<DomainEvent> = Vec::new();
    loop {
        let batch = store
            .events_after(out.last().map(|e| e.id), 500)
            .await
            .expect("read outbox");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Claims and marks everything `consumer` has left; returns what it marked, in order.
async fn drain<S: Store + ?Sized>(store: &S, consumer: Consumer) -> Vec<DomainEvent> {
    let mut out = Vec::new();
    loop {
        let claim = store
            .claim_events(consumer, at(0), 100, LEASE)
            .await
            .expect("claim");
        if claim.events.is_empty() {
            return out;
        }
        let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
        let marked = store
            .mark_events(consumer, claim.lease, &ids, at(0))
            .await
            .expect("mark");
        assert_eq!(marked, ids.len(), "a live claim marks all its events");
        out.extend(claim.events);
    }
}

/// `OutboxStore::claim_events`: a booking's events leave one at a time, in order.
pub async fn outbox_claims_hand_out_each_booking_in_order<S: Store + ?Sized>(store: Arc<S>) {
    // `claim_events`: at most one event per booking per claim, the earliest unmarked one, so
    // a booking's events leave in the order they happened; marked events are not handed out
    // again.
    let fx = Fixture::new(store.clone()).await;
    let a = fx.book(60, 120).await.expect("book a");
    fx.engine
        .cancel_booking(Actor::Admin, a.id)
        .await
        .expect("cancel a");
    let b = fx.book(180, 240).await.expect("book b");
    let first = store
        .claim_events(Consumer::Nats, at(0), 10, LEASE)
        .await
        .expect("claim");
    let got: Vec<(BookingId, EventKind)> = first
        .events
        .iter()
        .map(|e| (e.booking_id, e.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (a.id, EventKind::BookingCreated),
            (b.id, EventKind::BookingCreated)
        ],
        "a's cancellation waits for its creation"
    );
    let ids: Vec<_> = first.events.iter().map(|e| e.id).collect();
    assert_eq!(
        store
            .mark_events(Consumer::Nats, first.lease, &ids, at(0))
            .await
            .expect("mark"),
        2
    );
    let second = store
        .claim_events(Consumer::Nats, at(0), 10, LEASE)
        .await
        .expect("claim");
    let kinds: Vec<_> = second
        .events
        .iter()
        .map(|e| (e.booking_id, e.kind))
        .collect();
    assert_eq!(kinds, vec![(a.id, EventKind::BookingCancelled)]);
    let ids: Vec<_> = second.events.iter().map(|e| e.id).collect();
    store
        .mark_events(Consumer::Nats, second.lease, &ids, at(0))
        .await
        .expect("mark");
    let third = store
        .claim_events(Consumer::Nats, at(0), 10, LEASE)
        .await
        .expect("claim");
    assert!(third.events.is_empty(), "{third:?}");
}

/// `OutboxStore::claim_events` / `mark_events`: a live claim is exclusive.
pub async fn outbox_claims_are_exclusive_until_they_run_out<S: Store + ?Sized>(store: Arc<S>) {
    // `claim_events`/`mark_events`: a live claim keeps its events from other claimers; when
    // it runs out they are handed out again, and the stale lease can no longer mark them.
    // Consumers keep separate marks.
    let fx = Fixture::new(store.clone()).await;
    fx.book(60, 120).await.expect("book");
    let first = store
        .claim_events(Consumer::Nats, at(0), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(first.events.len(), 1);
    let other = store
        .claim_events(Consumer::Nats, at(0), 10, LEASE)
        .await
        .expect("claim");
    assert!(other.events.is_empty(), "held by the first claim");
    let webhooks = store
        .claim_events(Consumer::Webhooks, at(0), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(
        webhooks.events, first.events,
        "another consumer has its own marks and claims"
    );
    let later = at(0) + LEASE;
    let again = store
        .claim_events(Consumer::Nats, later, 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(again.events, first.events, "the first claim ran out");
    let ids: Vec<_> = first.events.iter().map(|e| e.id).collect();
    assert_eq!(
        store
            .mark_events(Consumer::Nats, first.lease, &ids, later)
            .await
            .expect("mark"),
        0,
        "a stale lease marks nothing"
    );
    assert_eq!(
        store
            .mark_events(Consumer::Nats, again.lease, &ids, later)
            .await
            .expect("mark"),
        1
    );
    assert!(drain(&*store, Consumer::Nats).await.is_empty());
    assert_eq!(drain(&*store, Consumer::Webhooks).await.len(), 0, "held");
}

/// `OutboxStore::prune_events`: unmarked and recent events are never pruned.
pub async fn outbox_prune_keeps_unmarked_and_recent_events<S: Store + ?Sized>(store: Arc<S>) {
    // `prune_events`: events some consumer has not marked, and events recorded after the
    // cutoff, are never pruned.
    let fx = Fixture::new(store.clone()).await;
    for i in 0..5 {
        fx.book(i * 60, i * 60 + 30).await.expect("book");
    }
    let before = all_events(&*store).await;
    drain(&*store, Consumer::Nats).await;
    let pruned = store
        .prune_events(at(100_000), &Consumer::ALL, 1000)
        .await
        .expect("prune");
    assert_eq!(pruned, 0, "webhooks marked nothing");
    assert_eq!(all_events(&*store).await, before);
    drain(&*store, Consumer::Webhooks).await;
    let pruned = store
        .prune_events(at(-1), &Consumer::ALL, 1000)
        .await
        .expect("prune");
    assert_eq!(pruned, 0, "all events are recent");
    assert_eq!(all_events(&*store).await, before);
    let pruned = store
        .prune_events(at(100_000), &Consumer::ALL, 1000)
        .await
        .expect("prune");
    let after = all_events(&*store).await;
    assert_eq!(after.len() as u64 + pruned, before.len() as u64);
    assert!(
        before.ends_with(&after),
        "pruning removes the oldest events only"
    );
}

/// Claimers racing writers mark every event exactly once, each booking's in order.
pub async fn race_outbox_claimers_lose_and_repeat_nothing<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) {
    // 64 tasks book and cancel (on 8 professionals) while two claimers claim and mark: every
    // event is marked exactly once, none is skipped, and each booking's events are marked in
    // the order they happened.
    let fx = Arc::new(Fixture::new(store.clone()).await);
    let mut pros = Vec::new();
    for _ in 0..8 {
        pros.push(new_professional(&fx.engine).await);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Claimed events in the order they were handed out: each claimer logs a claim before
    // marking it, and a booking's next event is only claimable after that mark.
    let log: Arc<std::sync::Mutex<Vec<DomainEvent>>> = Arc::default();
    let mut claimers = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        let done = done.clone();
        let log = log.clone();
        claimers.push(tokio::spawn(async move {
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let claim = store
                    .claim_events(Consumer::Nats, at(0), 16, Duration::hours(1))
                    .await
                    .expect("claim");
                let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
                let empty = claim.events.is_empty();
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(claim.events);
                let n = store
                    .mark_events(Consumer::Nats, claim.lease, &ids, at(0))
                    .await
                    .expect("mark");
                assert_eq!(n, ids.len());
                if empty {
                    if finished {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut writers = Vec::new();
    for i in 0..64 {
        let fx = fx.clone();
        let pro = pros[i % pros.len()].clone();
        writers.push(tokio::spawn(async move {
            let start = (i as i64 / 8) * 60;
            let range = super::super::fixtures::range(start, start + 30);
            let b = fx
                .book_for(&pro, &fx.client, range)
                .await
                .expect("distinct slots");
            fx.engine
                .cancel_booking(Actor::Admin, b.id)
                .await
                .expect("cancel");
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in claimers {
        c.await.expect("claimer");
    }
    let marked = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let recorded = all_events(&*store).await;
    let ours: HashSet<_> = recorded
        .iter()
        .filter(|e| pros.iter().any(|p| p.id == e.professional_id))
        .map(|e| e.id)
        .collect();
    assert_eq!(ours.len(), 128, "64 creations and 64 cancellations");
    let mut count: HashMap<_, usize> = HashMap::new();
    for e in &marked {
        *count.entry(e.id).or_default() += 1;
    }
    for e in &recorded {
        assert_eq!(count.get(&e.id), Some(&1), "event {:?} marked once", e.id);
    }
    // Per booking, the creation was handed out before the cancellation.
    let mut first_kind: HashMap<BookingId, EventKind> = HashMap::new();
    for e in &marked {
        first_kind.entry(e.booking_id).or_insert(e.kind);
    }
    assert!(
        first_kind.values().all(|k| *k == EventKind::BookingCreated),
        "a booking's first marked event is its creation"
    );
}
