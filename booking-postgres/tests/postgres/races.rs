//! Races between many real connections: exactly one winner.

use std::sync::Arc;

use booking_core::Error;
use booking_core::domain::{BookingStatus, ProfessionalId};
use booking_core::idempotency::{Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope};
use booking_core::store::{BookingStore, IdempotencyStore, Inserted};
use booking_postgres::PgStore;
use booking_postgres::test_support::TestDatabase;

use crate::{booking, t};

/// `SHOW max_connections` must leave room for the race plus the other tests.
async fn require_connections(store: &PgStore, needed: i64) {
    let max: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(store.pool())
        .await
        .expect("show max_connections");
    let max: i64 = max.parse().expect("a number");
    assert!(
        max >= needed,
        "this test needs max_connections >= {needed} on the server, it is {max}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_connections_race_for_one_slot_and_one_wins() {
    const RACERS: usize = 64;
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = Arc::new(db.into_store(RACERS as u32).await);
    require_connections(&store, RACERS as i64 + 16).await;
    let pro = ProfessionalId::new_at(t(0));
    for round in 0..3 {
        // Open all connections first, so that the race is about the slot, not connecting.
        let mut warm = Vec::new();
        for _ in 0..RACERS {
            warm.push(store.pool().acquire().await.expect("connection"));
        }
        drop(warm);
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let start = round * 1_000;
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                // Different ranges that all share minute `start + 30`.
                let b = booking(
                    pro,
                    start + (i % 30) as i64,
                    start + 31 + (i % 7) as i64,
                    BookingStatus::Confirmed,
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.insert_booking(&b, t(0)).await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(Inserted::Created(_)) => created += 1,
                Err(Error::SlotUnavailable) => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one winner");
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE status IN ('confirmed', 'pending_payment')",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(active, 3);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM domain_events")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(events, 3, "only winners record events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_idempotency_claims_start_once() {
    const RACERS: usize = 32;
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = Arc::new(db.into_store(RACERS as u32).await);
    for round in 0..5 {
        let mut warm = Vec::new();
        for _ in 0..RACERS {
            warm.push(store.pool().acquire().await.expect("connection"));
        }
        drop(warm);
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let key = IdempotencyKey::parse(&format!("key-{round}")).expect("key");
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .begin(
                            &Scope::new("client:x"),
                            &key,
                            Fingerprint::of_request("POST", "/v1/bookings", b"{}"),
                            t(0),
                            &IdempotencyPolicy::default(),
                        )
                        .await
                })
            })
            .collect();
        let mut started = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(Decision::Started { .. }) => started += 1,
                Ok(Decision::InFlight { .. }) => {}
                other => panic!("unexpected decision {other:?}"),
            }
        }
        assert_eq!(started, 1, "round {round}: exactly one Started");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_request_create_one_booking() {
    const RACERS: usize = 16;
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = Arc::new(db.into_store(RACERS as u32).await);
    let pro = ProfessionalId::new_at(t(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            // Each attempt builds its own booking (own id), as a retried request would.
            let mut b = booking(pro, 60, 120, BookingStatus::Confirmed);
            b.request_ref = Some("scope-key-fingerprint".into());
            tokio::spawn(async move {
                barrier.wait().await;
                store.insert_booking(&b, t(0)).await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        match task
            .await
            .expect("task")
            .expect("never a conflict with itself")
        {
            Inserted::Created(b) => {
                created += 1;
                ids.insert(b.id);
            }
            Inserted::Existing(b) => {
                ids.insert(b.id);
            }
        }
    }
    assert_eq!((created, ids.len()), (1, 1));
}
