//! The schema itself refuses overlaps and repeated request references, errors map to the
//! core's semantic errors, migrations are re-runnable, and the harness behaves.

use std::time::Duration as StdDuration;

use booking_core::auth::TokenHash;
use booking_core::domain::{BookingId, BookingStatus, ClientId, ProfessionalId, Transition};
use booking_core::store::{BookingStore, DirectoryStore, HealthCheck, ScheduleStore};
use booking_core::{Entity, Error, Schedule};
use booking_postgres::test_support::{self, TestDatabase};
use booking_postgres::{MIGRATOR, PgConfig, PgStore};
use sqlx::Connection;

use crate::{booking, client, common, professional, range, t};

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

/// The radius index's expression works whatever the `search_path` of whoever evaluates it
/// (autovacuum's ANALYZE, pg_restore, a maintenance session): with only `pg_catalog` on the
/// path, ANALYZE, an update that moves a professional and a radius walk all work. With the
/// index on earthdistance's `ll_to_earth`, whose body names `earth()` unqualified, every
/// statement on `professionals` failed there, already while planning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_radius_index_works_with_only_pg_catalog_on_the_search_path() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let options = db.connect_options();
    let store = db.into_store(2).await;
    let pro = professional();
    store
        .insert_professional(&pro, TokenHash::of("p"), None)
        .await
        .expect("insert");
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("connect");
    sqlx::raw_sql("SET search_path = pg_catalog")
        .execute(&mut conn)
        .await
        .expect("set search_path");
    sqlx::raw_sql("ANALYZE public.professionals")
        .execute(&mut conn)
        .await
        .expect("ANALYZE with only pg_catalog on the search path");
    sqlx::raw_sql("UPDATE public.professionals SET lat = lat + 0.001")
        .execute(&mut conn)
        .await
        .expect("an update that recomputes the indexed point");
    let near: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM public.professionals WHERE is_active \
         AND public.cube_enlarge(public.booking_earth(52.5, 13.4), 1000.0, 3) \
             OPERATOR(public.@>) public.booking_earth(lat, lng) \
         ORDER BY public.booking_earth(lat, lng) OPERATOR(public.<->) \
             public.booking_earth(52.5, 13.4) \
         LIMIT 5",
    )
    .fetch_all(&mut conn)
    .await
    .expect("a radius walk with only pg_catalog on the search path");
    assert_eq!(near, vec![pro.id.as_uuid()]);
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
