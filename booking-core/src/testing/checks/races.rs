//! Races: many attempts released together, exactly one winner, nothing overlapping.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::fixtures::{Fixture, new_client, range, unique};
use super::directory::subject_client;
use super::support::*;
use crate::auth::{Actor, TokenHash};
use crate::conflict::find_overlap;
use crate::error::Error;
use crate::idempotency::{Decision, Scope};
use crate::store::Registered;
use crate::store::Store;

// ---- races -----------------------------------------------------------------------------

const RACERS: usize = 64;

/// Racers for one slot, released together: exactly one wins.
pub async fn race_many_tasks_one_slot_one_winner<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::new(store).await);
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        tasks.push(tokio::spawn(async move {
            let client = new_client(&fx.engine).await;
            fx.book_for(&fx.pro, &client, range(60, 120)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => wins += 1,
            Err(Error::SlotUnavailable) => {}
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of {RACERS} wins the slot");
    assert_eq!(
        all_bookings(&fx, Actor::Professional(fx.pro.id))
            .await
            .len(),
        1
    );
}

/// Racers for overlapping ranges, released together: no two active bookings overlap.
pub async fn race_overlapping_requests_never_overlap<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::with_holds(store).await);
    let mut tasks = Vec::new();
    for i in 0..RACERS as i64 {
        let fx = Arc::clone(&fx);
        tasks.push(tokio::spawn(async move {
            // Lengths 15..75 at starts spread over 4 hours: lots of partial overlaps.
            let start = 5 * ((i * 37) % 48);
            let len = 15 + 5 * ((i * 13) % 12);
            let r = fx.book(start, start + len).await;
            if let Ok(b) = &r {
                if i % 3 == 0 {
                    let _ = fx.engine.cancel_booking(Actor::Admin, b.id).await;
                } else if i % 3 == 1 {
                    let _ = fx.engine.confirm_booking(b.id).await;
                }
            }
            r
        }));
    }
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) | Err(Error::SlotUnavailable) => {}
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    let all = all_bookings(&fx, Actor::Admin).await;
    assert!(!all.is_empty());
    assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
}

/// `IdempotencyStore::begin` raced on one key: exactly one starts.
pub async fn race_one_idempotency_key_one_start<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::new(store).await);
    let scope = Scope::new(unique("client"));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            fx.engine
                .begin_request(&scope, &key("same"), fp("{}"))
                .await
                .expect("begin")
        }));
    }
    let mut started = 0;
    for t in tasks {
        match t.await.expect("task") {
            Decision::Started { .. } => started += 1,
            Decision::InFlight { .. } => {}
            other => panic!("unexpected decision {other:?}"),
        }
    }
    assert_eq!(started, 1);
}

/// A reschedule raced by a new booking into its target: exactly one gets the slot.
pub async fn race_reschedule_against_new_booking<S: Store + ?Sized + 'static>(store: Arc<S>) {
    for round in 0..16_i64 {
        let fx = Arc::new(Fixture::new(Arc::clone(&store)).await);
        let base = round * 600;
        let a = fx.book(base, base + 60).await.expect("a");
        let target = range(base + 120, base + 180);
        let (fx1, fx2) = (Arc::clone(&fx), Arc::clone(&fx));
        let moving = tokio::spawn(async move {
            fx1.engine
                .reschedule_booking(Actor::Client(fx1.client.id), a.id, target)
                .await
        });
        let booking = tokio::spawn(async move {
            let other = new_client(&fx2.engine).await;
            fx2.book_for(&fx2.pro, &other, target).await
        });
        let m = moving.await.expect("task");
        let b = booking.await.expect("task");
        assert!(
            m.is_ok() != b.is_ok(),
            "exactly one gets the slot: reschedule {m:?}, booking {b:?}"
        );
        let a_now = fx.reload(&a).await;
        if m.is_ok() {
            assert_eq!(a_now.range, target);
        } else {
            assert!(is_unavailable(&m));
            assert_eq!(
                a_now.range, a.range,
                "a lost race leaves the booking where it was"
            );
        }
        let all = all_bookings(&fx, Actor::Professional(fx.pro.id)).await;
        assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
    }
}

/// `DirectoryStore::insert_client` raced with one `request_ref`: exactly one client.
pub async fn race_one_request_ref_one_subject<S: Store + ?Sized + 'static>(store: Arc<S>) {
    // Concurrent `insert_client` calls with one `request_ref`: exactly one stores a client,
    // every other returns that client as `Registered::Existing`.
    let fx = Arc::new(Fixture::new(store).await);
    let request_ref = unique("request");
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        let request_ref = request_ref.clone();
        tasks.push(tokio::spawn(async move {
            fx.engine
                .register_client(
                    &subject_client(),
                    TokenHash::of(&unique("tok")),
                    Some(&request_ref),
                )
                .await
                .expect("register")
        }));
    }
    let mut created = Vec::new();
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.expect("task");
        ids.insert(r.get().id);
        if let Registered::Created(c) = r {
            created.push(c);
        }
    }
    assert_eq!(created.len(), 1, "exactly one attempt creates");
    assert_eq!(ids.len(), 1, "every attempt answers with that client");
}
