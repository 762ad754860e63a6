//! A read replica serves searches and availability reads, writes never go there, and when
//! it is down the primary answers.
//!
//! The shared test server allows no replication connections, so this test starts its own
//! primary (`initdb`) and a real streaming replica of it (`pg_basebackup -R`), both on free
//! ports in a temporary directory, as the `postgres` user (through `runuser` when run as
//! root). Without PostgreSQL's server binaries it prints `SKIPPED` and passes, unless
//! `BOOKING_REQUIRE_REPLICA=1`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
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
use booking_postgres::{PgConfig, PgStore};
use chrono::Utc;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs a PostgreSQL tool as the `postgres` user.
fn pg_tool(tool: &str, args: &[&str]) -> Result<(), String> {
    let program = Path::new(BIN).join(tool);
    let as_root = std::env::var("USER").map_or(true, |u| u == "root");
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A primary and its streaming replica; stopped and deleted on drop.
struct Pair {
    root: PathBuf,
    primary_port: u16,
    replica_port: u16,
}

impl Pair {
    fn start() -> Result<Self, String> {
        if !Path::new(BIN).join("initdb").exists() {
            return Err(format!("no {BIN}/initdb"));
        }
        let root = std::env::temp_dir().join(format!("booking-replica-{}", unique("r")));
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        // The postgres user must own the directory (runuser does not change ownership).
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&root)
            .status()
            .map_err(|e| e.to_string())?;
        if !owned.success() {
            return Err("chown of the temporary directory failed".into());
        }
        let pair = Self {
            primary_port: free_port()?,
            replica_port: free_port()?,
            root,
        };
        let primary = pair.dir("primary");
        let replica = pair.dir("replica");
        let sockets = pair.root.to_string_lossy().into_owned();
        pg_tool(
            "initdb",
            &[
                "-D",
                &primary,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\n\
             fsync = off\nmax_wal_senders = 4\nshared_buffers = 16MB\n",
            pair.primary_port
        );
        append(&Path::new(&primary).join("postgresql.conf"), &conf)?;
        append(
            &Path::new(&primary).join("pg_hba.conf"),
            "host replication all 127.0.0.1/32 trust\n",
        )?;
        let log = pair.dir("primary.log");
        pg_tool("pg_ctl", &["-D", &primary, "-l", &log, "-w", "start"])?;
        pg_tool(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary_port.to_string(),
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
        let log = pair.dir("replica.log");
        pg_tool("pg_ctl", &["-D", &replica, "-l", &log, "-w", "start"])?;
        Ok(pair)
    }

    fn dir(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }

    fn url(&self, port: u16, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{db}")
    }

    fn stop_replica(&self) -> Result<(), String> {
        pg_tool(
            "pg_ctl",
            &["-D", &self.dir("replica"), "-m", "fast", "-w", "stop"],
        )
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for node in ["replica", "primary"] {
            let _ = pg_tool(
                "pg_ctl",
                &["-D", &self.dir(node), "-m", "immediate", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
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
        Err(e) if std::env::var("BOOKING_REQUIRE_REPLICA").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: cannot start a primary and a replica: {e}");
            return;
        }
        Err(e) => panic!("cannot start a primary and a replica: {e}"),
    };
    // A migrated database on the primary; it streams to the replica.
    let admin = PgStore::connect(&PgConfig::from_url(pair.url(pair.primary_port, "postgres")))
        .await
        .expect("primary");
    sqlx::query("CREATE DATABASE booking")
        .execute(admin.pool())
        .await
        .expect("create database");
    admin.close().await;
    let primary_only =
        PgStore::connect(&PgConfig::from_url(pair.url(pair.primary_port, "booking")))
            .await
            .expect("primary");
    primary_only.migrate().await.expect("migrate");
    let replica_config = PgConfig {
        acquire_timeout: Duration::from_secs(1),
        ..PgConfig::from_url(pair.url(pair.replica_port, "booking"))
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
    pair.stop_replica().expect("stop the replica");
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
