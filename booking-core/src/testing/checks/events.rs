//! Domain events recorded with each change ([`OutboxStore::events_after`]).
//!
//! [`OutboxStore::events_after`]: crate::store::OutboxStore::events_after

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, range};
use super::support::*;
use crate::auth::Actor;
use crate::error::Error;
use crate::events::EventKind;
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
