//! Bookings on both insert paths: expired holds do not block, `BookingCreated` events
//! describe the stored row, the sweep expires each due hold once, and an outbox event still
//! in flight is claimed later rather than skipped.

use std::time::Duration as StdDuration;

use booking_core::Error;
use booking_core::domain::{BookingId, BookingStatus, ProfessionalId};
use booking_core::events::{Consumer, DomainEvent, EventKind};
use booking_core::store::{BookingStore, Inserted, OutboxStore};
use chrono::Duration;

use crate::{booking, common, range, t};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_hold_does_not_block_a_new_booking() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let hold = booking(pro, 60, 120, BookingStatus::PendingPayment); // held until t(15)
    assert!(matches!(
        store.insert_booking(&hold, t(0)).await,
        Ok(Inserted::Created(_))
    ));
    // While held, the slot is taken.
    let mut late = booking(pro, 90, 150, BookingStatus::Confirmed);
    late.created_at = t(10);
    late.updated_at = t(10);
    assert_eq!(
        store.insert_booking(&late, t(10)).await,
        Err(Error::SlotUnavailable)
    );
    // At hold_expires_at it is not: the insert expires the hold in its own transaction.
    late.created_at = t(15);
    late.updated_at = t(15);
    let created = store.insert_booking(&late, t(15)).await.expect("insert");
    assert_eq!(created, Inserted::Created(late.clone()));
    let stored_hold = store
        .get_booking(hold.id)
        .await
        .expect("get")
        .expect("hold exists");
    assert_eq!(stored_hold.status, BookingStatus::Expired);
    assert_eq!(stored_hold.updated_at, t(15));
    assert_eq!(
        stored_hold.hold_expires_at,
        Some(t(15)),
        "kept for the record"
    );
    let kinds: Vec<(BookingId, EventKind)> = store
        .events_after(None, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.booking_id, e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (hold.id, EventKind::BookingCreated),
            (hold.id, EventKind::BookingExpired),
            (late.id, EventKind::BookingCreated),
        ]
    );
    // The sweep finds nothing more to do for it, and the slot stays taken by `late`.
    assert_eq!(store.expire_due_holds(t(60), 10).await, Ok(vec![]));
    assert_eq!(
        store.blocked_ranges(pro, range(0, 600), t(60)).await,
        Ok(vec![late.blocked])
    );
}

/// `insert_booking` has a one-statement path (microsecond-exact bookings, no hold to
/// release) and a transaction path (everything else). On both, the `BookingCreated` event
/// describes the row exactly as stored, and a retry of the request finds that row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_events_describe_the_stored_row_on_both_insert_paths() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    // One statement: whole microseconds.
    let mut exact = booking(pro, 60, 120, BookingStatus::Confirmed);
    exact.request_ref = Some("exact".into());
    exact.created_at = t(0) + Duration::microseconds(7);
    exact.updated_at = exact.created_at;
    // Transaction: nanoseconds, which the database rounds away.
    let mut fine = booking(pro, 120, 180, BookingStatus::PendingPayment);
    fine.request_ref = Some("fine".into());
    fine.created_at = t(0) + Duration::nanoseconds(1_234_567);
    fine.updated_at = fine.created_at;
    fine.hold_expires_at = Some(t(15) + Duration::nanoseconds(89));
    for b in [&exact, &fine] {
        let Ok(Inserted::Created(stored)) = store.insert_booking(b, t(0)).await else {
            panic!("expected Created for {:?}", b.request_ref);
        };
        assert_eq!(store.get_booking(b.id).await, Ok(Some(stored.clone())));
        assert_eq!(
            stored.created_at.timestamp_micros(),
            b.created_at.timestamp_micros()
        );
        let event = store
            .events_after(None, 100)
            .await
            .expect("events")
            .into_iter()
            .find(|e| e.booking_id == b.id)
            .expect("a BookingCreated event");
        assert_eq!(event.kind, EventKind::BookingCreated);
        assert_eq!(event.booking, stored, "the event describes the stored row");
        // A retry of the same request (a fresh id, same reference) finds that booking.
        let mut retry = b.clone();
        retry.id = BookingId::new_at(t(1));
        assert_eq!(
            store.insert_booking(&retry, t(1)).await,
            Ok(Inserted::Existing(stored))
        );
    }
    assert_eq!(store.events_after(None, 100).await.map(|e| e.len()), Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_each_due_hold_once() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let mut ids = Vec::new();
    for i in 0..5 {
        let h = booking(pro, i * 60, i * 60 + 30, BookingStatus::PendingPayment);
        ids.push(h.id);
        store.insert_booking(&h, t(0)).await.expect("hold");
    }
    assert_eq!(store.expire_due_holds(t(14), 10).await, Ok(vec![]));
    let first = store.expire_due_holds(t(15), 3).await.expect("sweep");
    let second = store.expire_due_holds(t(15), 10).await.expect("sweep");
    assert_eq!((first.len(), second.len()), (3, 2));
    let mut swept: Vec<BookingId> = first.iter().chain(&second).map(|b| b.id).collect();
    swept.sort();
    ids.sort();
    assert_eq!(swept, ids);
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|b| b.status == BookingStatus::Expired)
    );
    let expired_events = store
        .events_after(None, 100)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == EventKind::BookingExpired)
        .count();
    assert_eq!(expired_events, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_still_in_flight_is_claimed_later_not_skipped() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let a = booking(pro, 0, 30, BookingStatus::Confirmed);
    store.insert_booking(&a, t(0)).await.expect("a");

    // A writer takes seq 2 and stays open (no lock is shared with other writers).
    let b = booking(pro, 60, 90, BookingStatus::Confirmed);
    let slow_event = DomainEvent::new(EventKind::BookingCreated, &b, None);
    let mut slow = store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
         VALUES ($1, 'booking_created', $2, $3, $4, $5)",
    )
    .bind(slow_event.id.as_uuid())
    .bind(b.id.as_uuid())
    .bind(pro.as_uuid())
    .bind(t(0))
    .bind(sqlx::types::Json(&slow_event))
    .execute(&mut *slow)
    .await
    .expect("slow insert");

    // A later writer commits seq 3 meanwhile, without waiting for the open one.
    let c = booking(pro, 120, 150, BookingStatus::Confirmed);
    tokio::time::timeout(StdDuration::from_secs(5), store.insert_booking(&c, t(0)))
        .await
        .expect("a booking write does not wait for another professional's or booking's")
        .expect("c");

    // A claim takes what is committed (1 and 3) and does not wait for 2.
    let claim = |now| store.claim_events(Consumer::Nats, now, 100, Duration::minutes(1));
    let first = claim(t(0)).await.expect("claim");
    let got: Vec<BookingId> = first.events.iter().map(|e| e.booking_id).collect();
    assert_eq!(got, vec![a.id, c.id]);
    let ids: Vec<_> = first.events.iter().map(|e| e.id).collect();
    store
        .mark_events(Consumer::Nats, first.lease, &ids, t(0))
        .await
        .expect("mark");
    slow.commit().await.expect("commit");
    // Seq 2 committed after 3 was delivered: the next claim has it.
    let second = claim(t(0)).await.expect("claim");
    let got: Vec<BookingId> = second.events.iter().map(|e| e.booking_id).collect();
    assert_eq!(got, vec![b.id]);
}
