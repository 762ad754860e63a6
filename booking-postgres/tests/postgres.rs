//! Postgres-only guarantees: the schema itself refuses overlaps, errors map to the core's
//! semantic errors, migrations are re-runnable, expired holds do not block, and races
//! between many real connections have exactly one winner.
//!
//! Each test runs on a fresh database (see `booking_postgres::test_support`). Without a
//! reachable server they print `SKIPPED: postgres unreachable` and return, unless
//! `BOOKING_REQUIRE_POSTGRES=1`, which makes that a failure.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use booking_core::auth::TokenHash;
use booking_core::domain::{
    Booking, BookingId, BookingStatus, Client, ClientId, Currency, GeoPoint, Money,
    NewProfessional, Professional, ProfessionalId, TimeRange, Transition,
};
use booking_core::events::{Consumer, DomainEvent, EventKind};
use booking_core::idempotency::{Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope};
use booking_core::store::{
    BookingOwner, BookingQuery, BookingStore, Cursor, DirectoryStore, HealthCheck,
    IdempotencyStore, Inserted, OutboxStore, ScheduleStore,
};
use booking_core::{Entity, Error, Schedule};
use booking_postgres::test_support::{self, TestDatabase};
use booking_postgres::{MIGRATOR, PgConfig, PgStore};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{Connection, Row};

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant")
        + Duration::minutes(minutes)
}

fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(t(start), t(end)).expect("valid range")
}

/// A booking of `[start, end)` minutes after t(0), created at t(0).
fn booking(pro: ProfessionalId, start: i64, end: i64, status: BookingStatus) -> Booking {
    Booking {
        id: BookingId::new_at(t(0)),
        professional_id: pro,
        client_id: ClientId::new_at(t(0)),
        range: range(start, end),
        blocked: range(start, end),
        status,
        price: Money::new(1_000, Currency::parse("eur").expect("currency")).expect("money"),
        hold_expires_at: (status == BookingStatus::PendingPayment).then(|| t(15)),
        request_ref: None,
        payment: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn professional() -> Professional {
    NewProfessional {
        name: "Ada".into(),
        category: "massage".into(),
        location: GeoPoint {
            lat: 52.5,
            lng: 13.4,
        },
        hourly_rate_cents: 6_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
    .validate(ProfessionalId::new_at(t(0)), t(0))
    .expect("valid professional")
}

fn client() -> Client {
    Client {
        id: ClientId::new_at(t(0)),
        name: "Lin".into(),
        email: "lin@example.com".into(),
        created_at: t(0),
    }
}

/// Inserts a row with plain SQL; returns the SQLSTATE and constraint on failure.
async fn raw_insert(
    conn: &mut sqlx::PgConnection,
    pro: uuid::Uuid,
    start: i64,
    end: i64,
    status: &str,
    request_ref: Option<&str>,
) -> Result<(), (String, String)> {
    sqlx::query(
        "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, blocked_range, \
             status, price_cents, currency, hold_expires_at, request_ref, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, tstzrange($4, $5, '[)'), $6, 100, 'eur', \
             CASE WHEN $6 = 'pending_payment' THEN $4 - interval '1 day' END, $7, $4, $4)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(pro)
    .bind(uuid::Uuid::now_v7())
    .bind(t(start))
    .bind(t(end))
    .bind(status)
    .bind(request_ref)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| match e {
        sqlx::Error::Database(db) => (
            db.code().map(|c| c.into_owned()).unwrap_or_default(),
            db.constraint().unwrap_or_default().to_owned(),
        ),
        other => (other.to_string(), String::new()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rejects_overlapping_rows_inserted_with_plain_sql() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    let pro = uuid::Uuid::now_v7();
    let other = uuid::Uuid::now_v7();
    let overlap = Err(("23P01".to_owned(), "bookings_no_overlap".to_owned()));

    raw_insert(&mut conn, pro, 60, 120, "confirmed", None)
        .await
        .expect("first row");
    // Every active status overlapping it is refused, whatever the application thinks.
    assert_eq!(
        raw_insert(&mut conn, pro, 90, 150, "confirmed", None).await,
        overlap
    );
    assert_eq!(
        raw_insert(&mut conn, pro, 0, 61, "pending_payment", None).await,
        overlap
    );
    // Even a hold whose hold_expires_at is long past blocks until it is marked expired: a
    // constraint cannot look at the clock.
    raw_insert(&mut conn, pro, 200, 260, "pending_payment", None)
        .await
        .expect("hold");
    assert_eq!(
        raw_insert(&mut conn, pro, 230, 290, "confirmed", None).await,
        overlap
    );
    // Inactive rows, back-to-back rows and other professionals do not conflict.
    raw_insert(&mut conn, pro, 60, 120, "cancelled", None)
        .await
        .expect("cancelled overlap is fine");
    raw_insert(&mut conn, pro, 60, 120, "expired", None)
        .await
        .expect("expired overlap is fine");
    raw_insert(&mut conn, pro, 120, 180, "confirmed", None)
        .await
        .expect("back-to-back");
    raw_insert(&mut conn, other, 60, 120, "confirmed", None)
        .await
        .expect("another professional");
    // Re-activating a cancelled row that overlaps is refused too.
    let reactivate = sqlx::query(
        "UPDATE bookings SET status = 'confirmed' WHERE professional_id = $1 AND status = 'cancelled'",
    )
    .bind(pro)
    .execute(&mut conn)
    .await
    .expect_err("re-activation overlaps");
    assert_eq!(
        reactivate
            .as_database_error()
            .and_then(|d| d.code())
            .as_deref(),
        Some("23P01")
    );
    // One booking per request and professional.
    raw_insert(&mut conn, pro, 300, 330, "confirmed", Some("req-1"))
        .await
        .expect("first with ref");
    assert_eq!(
        raw_insert(&mut conn, pro, 400, 430, "confirmed", Some("req-1")).await,
        Err(("23505".to_owned(), "bookings_request_ref_key".to_owned()))
    );
    raw_insert(&mut conn, other, 400, 430, "confirmed", Some("req-1"))
        .await
        .expect("same ref, other professional");
    // A blocked range must be [start, end) and contain the booked range.
    let bad_bounds = sqlx::query(
        "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, blocked_range, \
             status, price_cents, currency, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, tstzrange($4, $5, '(]'), 'cancelled', 1, 'eur', $4, $4)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(pro)
    .bind(uuid::Uuid::now_v7())
    .bind(t(500))
    .bind(t(560))
    .execute(&mut conn)
    .await
    .expect_err("bounds must be [)");
    assert_eq!(
        bad_bounds.as_database_error().and_then(|d| d.constraint()),
        Some("bookings_blocked_range_check")
    );
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE professional_id = $1 AND status IN ('confirmed', 'pending_payment')",
    )
    .bind(pro)
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(active, 4);
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_the_core_errors() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.url();
    let store = db.into_store(4).await;

    // 23P01 -> SlotUnavailable.
    let pro = professional();
    store
        .insert_professional(&pro, TokenHash::of("pro"), None)
        .await
        .expect("professional");
    let first = booking(pro.id, 60, 120, BookingStatus::Confirmed);
    store.insert_booking(&first, t(0)).await.expect("first");
    let clash = booking(pro.id, 90, 100, BookingStatus::Confirmed);
    assert_eq!(
        store.insert_booking(&clash, t(0)).await,
        Err(Error::SlotUnavailable)
    );

    // 23505 by constraint -> AlreadyExists(entity).
    let mut cancelled = booking(pro.id, 300, 360, BookingStatus::Cancelled);
    store
        .insert_booking(&cancelled, t(0))
        .await
        .expect("cancelled");
    cancelled.range = range(400, 460);
    cancelled.blocked = cancelled.range;
    assert_eq!(
        store.insert_booking(&cancelled, t(0)).await,
        Err(Error::AlreadyExists(Entity::Booking))
    );
    assert_eq!(
        store
            .insert_professional(&pro, TokenHash::of("other"), None)
            .await,
        Err(Error::AlreadyExists(Entity::Professional))
    );
    let c = client();
    store
        .insert_client(&c, TokenHash::of("client"), None)
        .await
        .expect("client");
    assert_eq!(
        store
            .insert_client(&c, TokenHash::of("client-2"), None)
            .await,
        Err(Error::AlreadyExists(Entity::Client))
    );
    // A token hash already in use.
    let mut c2 = client();
    c2.id = ClientId::new_at(t(1));
    assert_eq!(
        store.insert_client(&c2, TokenHash::of("pro"), None).await,
        Err(Error::AlreadyExists(Entity::Client))
    );

    // Foreign key / missing rows -> NotFound; illegal transition -> InvalidState.
    let nobody = ProfessionalId::new_at(t(0));
    assert_eq!(
        store
            .put_schedule(nobody, &Schedule::always_open(pro.timezone))
            .await,
        Err(Error::NotFound(Entity::Professional))
    );
    assert_eq!(
        store
            .transition_booking(BookingId::new_at(t(0)), Transition::Cancel, t(0))
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
    assert!(matches!(
        store
            .transition_booking(cancelled.id, Transition::Cancel, t(0))
            .await,
        Err(Error::InvalidState(_))
    ));

    // A corrupt row is Internal, and its message carries no SQL.
    sqlx::query("UPDATE professionals SET timezone = 'Mars/Olympus' WHERE id = $1")
        .bind(pro.id.as_uuid())
        .execute(store.pool())
        .await
        .expect("corrupt it");
    match store.get_professional(pro.id).await {
        Err(Error::Internal(msg)) => assert!(!msg.contains("SELECT"), "{msg}"),
        other => panic!("expected Internal, got {other:?}"),
    }

    // statement_timeout -> Unavailable.
    let short = PgStore::connect(&PgConfig {
        statement_timeout: Some(StdDuration::from_millis(100)),
        max_connections: 2,
        ..PgConfig::from_url(url.clone())
    })
    .await
    .expect("connect with a short statement timeout");
    let mut locker = store.pool().begin().await.expect("begin");
    sqlx::query("LOCK TABLE clients IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .expect("lock");
    assert!(matches!(
        short.get_client(c.id).await,
        Err(Error::Unavailable(_))
    ));
    locker.rollback().await.expect("rollback");
    assert_eq!(short.get_client(c.id).await, Ok(Some(c.clone())));

    // Pool exhausted -> Unavailable.
    let tiny = PgStore::connect(&PgConfig {
        max_connections: 1,
        acquire_timeout: StdDuration::from_millis(200),
        ..PgConfig::from_url(url)
    })
    .await
    .expect("connect");
    let held = tiny.pool().acquire().await.expect("the only connection");
    assert!(matches!(tiny.ping().await, Err(Error::Unavailable(_))));
    drop(held);
    tiny.ping().await.expect("ping once the connection is back");

    // Unreachable server -> Unavailable; a URL that does not parse -> Invalid.
    let nowhere = PgStore::connect(&PgConfig {
        acquire_timeout: StdDuration::from_secs(2),
        ..PgConfig::from_url("postgres://postgres@127.0.0.1:1/postgres")
    })
    .await;
    assert!(matches!(nowhere, Err(Error::Unavailable(_))), "{nowhere:?}");
    assert!(matches!(
        PgStore::connect(&PgConfig::from_url("mysql://nope")).await,
        Err(Error::Invalid(_))
    ));
    short.close().await;
    tiny.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_twice_harmlessly() {
    let Some(db) = TestDatabase::create_unmigrated().await else {
        return;
    };
    let store = db.into_store(2).await;
    store.migrate().await.expect("first run");
    store.migrate().await.expect("second run is a no-op");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(
        applied,
        i64::try_from(MIGRATOR.iter().count()).expect("few")
    );
    // The files themselves are idempotent too: applying them again by hand changes nothing.
    for m in MIGRATOR.iter() {
        sqlx::raw_sql(m.sql.clone())
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("re-applying migration {} failed: {e}", m.version));
    }
    store.migrate().await.expect("still consistent");
    // And the store works.
    let pro = professional();
    store
        .insert_professional(&pro, TokenHash::of("p"), None)
        .await
        .expect("insert");
    assert_eq!(store.get_professional(pro.id).await, Ok(Some(pro)));
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_are_served_by_matching_indexes() {
    let Some(store) = common::store().await else {
        return;
    };
    let mut conn = store.pool().acquire().await.expect("conn");
    // Small tables would be scanned sequentially; make the planner show its index choice.
    // (Bitmap scans plus a sort are what the planner rightly picks for a few rows; what
    // matters here is that an index delivers each list order, so rule them out.)
    for setting in ["SET enable_seqscan = off", "SET enable_bitmapscan = off"] {
        sqlx::query(setting).execute(&mut *conn).await.expect("set");
    }
    // Enough rows for the statistics to mean something: 50 professionals in 5 categories,
    // 200 clients, 5,000 bookings, 5,000 events.
    for seed in [
        "INSERT INTO professionals SELECT gen_random_uuid(), 'p' || i, 'cat' || (i % 5), 0, 0, \
             (i * 37) % 10000, 'eur', 'UTC', i % 10 <> 0, now(), now() \
         FROM generate_series(1, 50) AS i",
        "INSERT INTO bookings SELECT gen_random_uuid(), \
             ('00000000-0000-0000-0000-' || lpad((i % 50)::text, 12, '0'))::uuid, \
             ('00000000-0000-0000-0001-' || lpad((i % 200)::text, 12, '0'))::uuid, \
             s, s + interval '30 minutes', tstzrange(s, s + interval '30 minutes', '[)'), \
             CASE WHEN i % 10 = 0 THEN 'pending_payment' ELSE 'cancelled' END, \
             100, 'eur', s, NULL, s, s \
         FROM generate_series(1, 5000) AS i, \
              LATERAL (SELECT timestamptz '2027-01-01Z' + i * interval '1 hour' AS s) AS x",
        "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
         SELECT gen_random_uuid(), 'booking_created', gen_random_uuid(), gen_random_uuid(), \
             now(), '{}' FROM generate_series(1, 5000)",
        "ANALYZE",
    ] {
        sqlx::query(seed).execute(&mut *conn).await.expect("seed");
    }
    // The adapter's own statements, with their parameters bound: each list order, and the
    // sweep.
    let y2027 = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("instant");
    let uuid = |s: &str| uuid::Uuid::parse_str(s).expect("uuid");
    let list = |owner, from, after| BookingQuery {
        owner,
        status: None,
        from,
        to: None,
        professional_id: None,
        limit: 20,
        after,
        now: y2027,
    };
    let cursor = Some(Cursor {
        primary: y2027.timestamp_micros(),
        id: uuid::Uuid::nil(),
    });
    let lists = [
        (
            list(
                BookingOwner::Client(ClientId::from_uuid(uuid(
                    "00000000-0000-0000-0001-000000000001",
                ))),
                None,
                cursor,
            ),
            "bookings_client_start_idx",
        ),
        (
            list(
                BookingOwner::Professional(ProfessionalId::from_uuid(uuid(
                    "00000000-0000-0000-0000-000000000001",
                ))),
                Some(y2027),
                None,
            ),
            "bookings_professional_start_idx",
        ),
        (list(BookingOwner::All, None, cursor), "bookings_start_idx"),
    ];
    for (query, index) in lists {
        let mut explain =
            test_support::sql::explain_list_bookings(&query, Some(y2027)).expect("a valid query");
        let sql = explain.sql().as_str().to_owned();
        let plan = plan_of(explain.build().fetch_all(&mut *conn).await, &sql);
        assert_index_without_sort(&sql, &plan, index);
    }
    let sweep = format!("EXPLAIN {}", test_support::sql::EXPIRE_DUE_HOLDS);
    for now in [Some(y2027), None] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sweep.clone()))
            .bind(now)
            .bind(100_i64)
            .fetch_all(&mut *conn)
            .await;
        let plan = plan_of(rows, &sweep);
        assert_index_without_sort(&sweep, &plan, "bookings_hold_expiry_idx");
    }
    // Search (the directory module's SQL) and the outbox read: their shapes, by hand.
    let cases: [(&'static str, &str); 3] = [
        (
            "EXPLAIN SELECT id FROM professionals WHERE is_active AND (hourly_rate_cents, id) > (100, '00000000-0000-0000-0000-000000000000') \
             ORDER BY hourly_rate_cents, id LIMIT 21",
            "professionals_rate_idx",
        ),
        (
            "EXPLAIN SELECT id FROM professionals WHERE is_active AND category = 'massage' \
             AND (hourly_rate_cents, id) > (100, '00000000-0000-0000-0000-000000000000') \
             ORDER BY hourly_rate_cents, id LIMIT 21",
            "professionals_category_rate_idx",
        ),
        (
            "EXPLAIN SELECT payload FROM domain_events WHERE seq > 10 ORDER BY seq LIMIT 100",
            "domain_events_seq_idx",
        ),
    ];
    for (sql, index) in cases {
        let plan = plan_of(sqlx::query(sql).fetch_all(&mut *conn).await, sql);
        assert_index_without_sort(sql, &plan, index);
    }
}

/// The text of an `EXPLAIN`'s rows.
fn plan_of(rows: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>, sql: &str) -> String {
    rows.unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"))
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan reads `index` and sorts nothing (the index delivers the order).
fn assert_index_without_sort(sql: &str, plan: &str, index: &str) {
    assert!(plan.contains(index), "{sql}\nexpected {index}:\n{plan}");
    assert!(!plan.contains("Sort"), "{sql}\nmust not sort:\n{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_harness_behaviour() {
    // The harness uses DATABASE_URL when it is set, the local server otherwise.
    let url = test_support::database_url();
    match std::env::var("DATABASE_URL") {
        Ok(set) if !set.trim().is_empty() => assert_eq!(url, set),
        _ => assert_eq!(url, test_support::DEFAULT_URL),
    }
    test_support::server_options().expect("the harness's URL parses");
    let store = common::store().await;
    // Where Postgres is required (CI), a test gets a store or fails: it never skips.
    assert!(
        store.is_some() || !test_support::postgres_required(),
        "BOOKING_REQUIRE_POSTGRES=1, yet the harness skipped"
    );
    let Some(store) = store else {
        return;
    };
    store.ping().await.expect("ping");
}
