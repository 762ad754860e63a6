//! A read replica serves searches and availability reads, writes never go there, and when
//! it is down the primary answers.
//!
//! The shared test server allows no replication connections, so this test starts its own
//! primary (`initdb`) and a real streaming replica of it (`pg_basebackup -R`), both on free
//! ports in a temporary directory, as the `postgres` user (through `runuser` when run as
//! root). Without PostgreSQL's server binaries it prints `SKIPPED` and passes, unless it
//! runs in CI (`CI` true) or `BOOKING_REQUIRE_REPLICA` is true.

use std::path::Path;
use std::time::Duration;

use booking_core::auth::TokenHash;
use booking_core::store::{
    BookingStore, DirectoryStore, ProfessionalQuery, RequestStore, ScheduleStore,
};
use booking_core::testing::fixtures::unique;
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, GeoPoint, Money, NewProfessional,
    Professional, ProfessionalId, Schedule, TimeRange,
};
use booking_postgres::test_support::private_server::{
    PrivateServer, StopMode, append, free_port, pg_tool,
};
use booking_postgres::{PgConfig, PgStore, test_support};
use chrono::Utc;

/// A primary and its streaming replica; stopped and deleted on drop.
struct Pair {
    primary: PrivateServer,
    replica_port: u16,
}

impl Pair {
    fn start() -> Result<Self, String> {
        let primary = PrivateServer::start(
            "max_wal_senders = 4",
            "host replication all 127.0.0.1/32 trust\n",
        )?;
        let pair = Self {
            replica_port: free_port()?,
            primary,
        };
        let replica = pair.replica_dir();
        pg_tool(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary.port().to_string(),
                "-U",
                "postgres",
                "-D",
                &replica,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )?;
        append(
            &Path::new(&replica).join("postgresql.conf"),
            &format!("port = {}\n", pair.replica_port),
        )?;
        let log = pair.primary.path("replica.log");
        pg_tool("pg_ctl", &["-D", &replica, "-l", &log, "-w", "start"])?;
        Ok(pair)
    }

    fn replica_dir(&self) -> String {
        self.primary.path("replica")
    }

    fn primary_url(&self, db: &str) -> String {
        self.primary.url(db)
    }

    fn replica_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.replica_port)
    }

    fn stop_replica(&self, mode: StopMode) -> Result<(), String> {
        pg_tool(
            "pg_ctl",
            &["-D", &self.replica_dir(), "-m", mode.as_str(), "-w", "stop"],
        )
    }
}

impl Drop for Pair {
    /// The replica first; the primary stops and its directory (the replica's too) goes
    /// when the field drops.
    fn drop(&mut self) {
        let _ = self.stop_replica(StopMode::Immediate);
    }
}

fn professional(name: &str) -> Professional {
    let now = Utc::now();
    NewProfessional {
        name: name.into(),
        category: "yoga".into(),
        location: GeoPoint { lat: 1.0, lng: 1.0 },
        hourly_rate_cents: 100,
        currency: "eur".into(),
        timezone: "UTC".into(),
        is_active: None,
    }
    .validate(ProfessionalId::new_at(now), now)
    .expect("valid professional")
}

/// A confirmed booking of `pro` over `range`.
fn booking(pro: ProfessionalId, range: TimeRange) -> Booking {
    let now = Utc::now();
    Booking {
        id: BookingId::new_at(now),
        professional_id: pro,
        client_id: ClientId::new_at(now),
        range,
        blocked: range,
        status: BookingStatus::Confirmed,
        price: Money::new(100, Currency::parse("eur").expect("eur")).expect("money"),
        hold_expires_at: None,
        request_ref: None,
        payment: None,
        created_at: now,
        updated_at: now,
    }
}

/// The blocked ranges `store` reports for `pro` in `window`.
async fn blocked(store: &PgStore, pro: ProfessionalId, window: TimeRange) -> usize {
    store
        .availability_snapshot(pro, window, Utc::now())
        .await
        .expect("availability")
        .expect("the professional exists")
        .blocked
        .len()
}

async fn names(store: &PgStore) -> Vec<String> {
    let page = store
        .search_professionals(&ProfessionalQuery::all(100))
        .await
        .expect("search");
    page.items.into_iter().map(|p| p.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_read_the_replica_and_fall_back_to_the_primary() {
    let pair = match Pair::start() {
        Ok(p) => p,
        Err(e) if !(test_support::in_ci() || test_support::env_flag("BOOKING_REQUIRE_REPLICA")) => {
            test_support::report_skipped(&format!("cannot start a primary and a replica: {e}"));
            return;
        }
        Err(e) => panic!("cannot start a primary and a replica: {e}"),
    };
    // A migrated database on the primary; it streams to the replica.
    let admin = PgStore::connect(&PgConfig::from_url(pair.primary_url("postgres")))
        .await
        .expect("primary");
    sqlx::query("CREATE DATABASE booking")
        .execute(admin.pool())
        .await
        .expect("create database");
    admin.close().await;
    let primary_only = PgStore::connect(&PgConfig::from_url(pair.primary_url("booking")))
        .await
        .expect("primary");
    primary_only.migrate().await.expect("migrate");
    let replica_config = PgConfig {
        acquire_timeout: Duration::from_secs(1),
        ..PgConfig::from_url(pair.replica_url("booking"))
    };
    let store = primary_only
        .clone()
        .with_read_replica(&replica_config)
        .expect("replica config");

    // Writes go to the primary (the replica would refuse them: it is read-only).
    let first = professional("first");
    store
        .insert_professional(&first, TokenHash::of(&unique("t")), None)
        .await
        .expect("insert on the primary");
    store
        .put_schedule(first.id, &Schedule::always_open(first.timezone))
        .await
        .expect("schedule on the primary");
    let start = Utc::now() + chrono::Duration::days(1);
    let window = TimeRange::new(start, start + chrono::Duration::hours(4)).expect("window");
    let mut caught_up = false;
    for _ in 0..200 {
        if names(&store).await == ["first"] {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "the replica never showed the first professional");

    // Freeze the replica: a new professional is on the primary only, and searches do not
    // see it, so they are served by the replica.
    let replica_admin = PgStore::connect(&replica_config)
        .await
        .expect("replica connection");
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(replica_admin.pool())
        .await
        .expect("recovery state");
    assert!(in_recovery, "the replica is a standby");
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(replica_admin.pool())
        .await
        .expect("pause replay");
    replica_admin.close().await;
    store
        .insert_professional(&professional("second"), TokenHash::of(&unique("t")), None)
        .await
        .expect("insert on the primary while the replica is paused");
    let mut on_primary = names(&primary_only).await;
    on_primary.sort();
    assert_eq!(on_primary, ["first", "second"]);
    assert_eq!(names(&store).await, ["first"], "searches read the replica");
    // Likewise availability: a booking made now blocks the primary's answer only.
    let slot = TimeRange::new(start, start + chrono::Duration::hours(1)).expect("slot");
    store
        .insert_booking(&booking(first.id, slot), Utc::now())
        .await
        .expect("book on the primary");
    assert_eq!(blocked(&primary_only, first.id, window).await, 1);
    assert_eq!(
        blocked(&store, first.id, window).await,
        0,
        "availability reads the replica"
    );

    // The replica goes away: searches are answered by the primary.
    pair.stop_replica(StopMode::Fast).expect("stop the replica");
    let mut fallback = names(&store).await;
    fallback.sort();
    assert_eq!(fallback, ["first", "second"]);
    assert_eq!(
        blocked(&store, first.id, window).await,
        1,
        "availability falls back"
    );
    store.close().await;
    primary_only.close().await;
}
