//! Domain events recorded with each change ([`OutboxStore::events_after`]).
//!
//! [`OutboxStore::events_after`]: crate::store::OutboxStore::events_after

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration;

use super::super::fixtures::{Fixture, new_professional, range};
use super::racing::{Racer, keep_racing, race, racer};
use super::support::*;
use crate::auth::Actor;
use crate::domain::EventId;
use crate::error::Error;
use crate::events::{DomainEvent, EventKind};
use crate::store::Store;

/// `OutboxStore::events_after`: each change records one event, in order, with its booking.
pub async fn outbox_records_each_change_once<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let a = fx.book(60, 120).await.expect("a");
    fx.engine.confirm_booking(a.id).await.expect("confirm");
    fx.engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(120, 180))
        .await
        .expect("reschedule");
    fx.engine
        .cancel_booking(Actor::Admin, a.id)
        .await
        .expect("cancel");
    let b = fx.book(300, 360).await.expect("b");
    fx.clock.advance(Duration::minutes(15));
    fx.engine.expire_due_holds(10).await.expect("sweep");
    let store = fx.engine.store().as_ref();
    assert_eq!(
        events_of(store, &a).await,
        vec![
            EventKind::BookingCreated,
            EventKind::BookingConfirmed,
            EventKind::BookingRescheduled,
            EventKind::BookingCancelled
        ]
    );
    assert_eq!(
        events_of(store, &b).await,
        vec![EventKind::BookingCreated, EventKind::BookingExpired]
    );
    // Each event carries the booking as it was right after the change.
    let all = store.events_after(None, 100).await.expect("outbox");
    let resched = all
        .iter()
        .find(|e| e.kind == EventKind::BookingRescheduled)
        .expect("reschedule event");
    assert_eq!(resched.previous_range, Some(range(60, 120)));
    assert_eq!(resched.booking.range, range(120, 180));
    let ids: HashSet<_> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");
    // Paging through the outbox with a cursor sees every event once, in order.
    let first_two = store.events_after(None, 2).await.expect("outbox");
    let rest = store
        .events_after(Some(first_two[1].id), 100)
        .await
        .expect("outbox");
    let paged: Vec<_> = first_two.iter().chain(rest.iter()).map(|e| e.id).collect();
    assert_eq!(paged, all.iter().map(|e| e.id).collect::<Vec<_>>());
}

/// Refused operations record no event.
pub async fn failed_operations_record_no_event<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = fx.book(60, 120).await.expect("a");
    let before = fx
        .engine
        .store()
        .events_after(None, 1000)
        .await
        .expect("outbox")
        .len();
    assert!(is_unavailable(&fx.book(60, 120).await));
    let r = fx.engine.confirm_booking(a.id).await;
    assert!(
        matches!(r, Err(Error::InvalidState(_))),
        "already confirmed: {r:?}"
    );
    let b = fx.book(180, 240).await.expect("b");
    let r = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), b.id, range(90, 150))
        .await;
    assert!(is_unavailable(&r), "overlaps a: {r:?}");
    assert_eq!(fx.reload(&b).await.range, range(180, 240), "b did not move");
    let after = fx
        .engine
        .store()
        .events_after(None, 1000)
        .await
        .expect("outbox");
    assert_eq!(after.len(), before + 1, "only b's creation was recorded");
    assert_eq!(
        after.last().map(|e| e.kind),
        Some(EventKind::BookingCreated)
    );
}

/// `OutboxStore::events_after` read while writers record: each reader's view is in order.
pub async fn race_outbox_readers_during_writes<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("outbox readers and writers", 1, || {
        outbox_readers_round(Arc::clone(&store))
    })
    .await;
}

/// Readers page with a small limit from their own cursor while 32 writers book and cancel:
/// a reader never sees an event twice and sees them in recording order (its events are a
/// subsequence of the outbox read afterwards).
async fn outbox_readers_round<S: Store + ?Sized + 'static>(store: Arc<S>) -> usize {
    const WRITERS: usize = 32;
    const READERS: usize = 4;
    let before = all_events(&*store).await;
    let fx = Arc::new(Fixture::new(store).await);
    let mut pros = Vec::new();
    for _ in 0..4 {
        pros.push(new_professional(&fx.engine).await);
    }
    let written = Arc::new(AtomicUsize::new(0));
    let mut racers: Vec<Racer<Vec<EventId>>> = Vec::new();
    for i in 0..WRITERS {
        let (fx, written) = (Arc::clone(&fx), Arc::clone(&written));
        let pro = pros[i % pros.len()].clone();
        let start = (i / pros.len()) as i64 * 60;
        racers.push(racer(async move {
            let b = fx
                .book_for(&pro, &fx.client, range(start, start + 30))
                .await
                .expect("distinct slots");
            fx.engine
                .cancel_booking(Actor::Admin, b.id)
                .await
                .expect("cancel");
            written.fetch_add(1, Ordering::SeqCst);
            Vec::new()
        }));
    }
    let from = before.last().map(|e| e.id);
    for _ in 0..READERS {
        let (store, written) = (Arc::clone(fx.engine.store()), Arc::clone(&written));
        racers.push(racer(async move {
            let mut seen: Vec<EventId> = Vec::new();
            loop {
                let last_pass = written.load(Ordering::SeqCst) == WRITERS;
                loop {
                    let batch = store
                        .events_after(seen.last().copied().or(from), 3)
                        .await
                        .expect("a cursor from the outbox stays valid");
                    if batch.is_empty() {
                        break;
                    }
                    seen.extend(batch.iter().map(|e| e.id));
                }
                if last_pass {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let raced = race(racers).await;
    let all = all_events(fx.engine.store().as_ref()).await;
    let ours = all
        .iter()
        .filter(|e| pros.iter().any(|p| p.id == e.professional_id))
        .count();
    assert_eq!(ours, 2 * WRITERS, "32 creations and 32 cancellations");
    let position: HashMap<EventId, usize> =
        all.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    for seen in raced.results.iter().skip(WRITERS) {
        assert!(!seen.is_empty(), "the last pass reads what was left");
        let at: Vec<usize> = seen
            .iter()
            .map(|id| *position.get(id).expect("a read event is recorded"))
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "in recording order, no repeats: {at:?}"
        );
    }
    raced.overlapped
}

/// The whole outbox, in recording order.
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
