//! Database faults seen from the adapter: a client that froze inside a transaction (idle,
//! or cut off by a network partition) while holding a professional's insert lock, and
//! serialization failures and deadlocks injected into the adapter's own transactions.
//!
//! Each test runs on a fresh database of the shared server (`DATABASE_URL`); nothing is
//! restarted here (the restart of a private server is `reference-server/tests/dbfaults.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use booking_core::auth::TokenHash;
use booking_core::store::{BookingStore, DirectoryStore, Inserted};
use booking_core::testing::fixtures::unique;
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Error, GeoPoint, Money, NewProfessional,
    Professional, ProfessionalId, TimeRange,
};
use booking_postgres::test_support::TestDatabase;
use booking_postgres::{PgConfig, PgStore};
use chrono::Utc;
use sqlx::{Postgres, Transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The adapter's per-professional insert lock (`store/bookings.rs`, `professional_lock!`):
/// a transaction-scoped advisory lock with this first key and `hashtext(id)` as the second.
const PROFESSIONAL_LOCK: &str = "SELECT pg_advisory_xact_lock(1651208306, hashtext($1::text))";

/// Short timeouts so that the faults resolve within a test: a lock wait gives up long
/// before a stuck session is cut, and statements themselves never time out here.
fn short_timeouts(url: String) -> PgConfig {
    PgConfig {
        max_connections: 2,
        statement_timeout: Some(Duration::from_secs(30)),
        lock_timeout: Some(Duration::from_millis(200)),
        idle_in_transaction_timeout: Some(Duration::from_secs(2)),
        tcp_keepalive: Some(Duration::from_secs(3)),
        ..PgConfig::from_url(url)
    }
}

fn professional() -> Professional {
    let now = Utc::now();
    NewProfessional {
        name: "Stuck".into(),
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

/// A confirmed booking of `pro`, `hours` hours from tomorrow, one hour long.
fn booking(pro: ProfessionalId, hours: i64) -> Booking {
    let now = Utc::now();
    let start = now + chrono::Duration::days(1) + chrono::Duration::hours(hours);
    let range = TimeRange::new(start, start + chrono::Duration::hours(1)).expect("range");
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

async fn insert_professional(store: &PgStore) -> ProfessionalId {
    let pro = professional();
    store
        .insert_professional(&pro, TokenHash::of(&unique("t")), None)
        .await
        .expect("insert professional");
    pro.id
}

/// Opens a transaction on `stuck` that takes `pro`'s insert lock; returns it and its
/// backend's pid.
async fn take_professional_lock(
    stuck: &PgStore,
    pro: ProfessionalId,
) -> (Transaction<'static, Postgres>, i32) {
    let mut tx = stuck.pool().begin().await.expect("begin");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .expect("pid");
    sqlx::query(PROFESSIONAL_LOCK)
        .bind(pro.as_uuid())
        .execute(&mut *tx)
        .await
        .expect("take the professional's lock");
    (tx, pid)
}

/// Waits (up to 20 s) until the server has ended session `pid`.
async fn wait_until_cut(store: &PgStore, pid: i32) {
    for _ in 0..200 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(store.pool())
                .await
                .expect("pg_stat_activity");
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stuck session {pid} was never cut");
}

/// Asserts that `store` cannot book `pro` now (the lock wait gives up: Unavailable), then
/// that once session `pid` is cut the professional books again.
async fn blocked_then_books_again(store: &PgStore, pro: ProfessionalId, pid: i32) {
    let refused = store.insert_booking(&booking(pro, 0), Utc::now()).await;
    assert!(
        matches!(refused, Err(Error::Unavailable(_))),
        "a booking behind the stuck lock gives up with Unavailable: {refused:?}"
    );
    wait_until_cut(store, pid).await;
    let booked = store.insert_booking(&booking(pro, 0), Utc::now()).await;
    assert!(
        matches!(booked, Ok(Inserted::Created(_))),
        "the professional books again once the stuck session is cut: {booked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_in_a_transaction_is_cut_and_the_professional_books_again() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let config = short_timeouts(db.url());
    let store = PgStore::connect(&config).await.expect("connect");
    let stuck = PgStore::connect(&config).await.expect("connect");
    let pro = insert_professional(&store).await;

    let (mut tx, pid) = take_professional_lock(&stuck, pro).await;
    blocked_then_books_again(&store, pro, pid).await;
    // The stuck client learns it lost its session at its next statement.
    assert!(sqlx::query("SELECT 1").execute(&mut *tx).await.is_err());
    drop(tx);
    store.close().await;
    drop(db);
}

/// A TCP proxy to the database server that forwards until it is frozen, then swallows
/// every byte and keeps the sockets open: a network partition, as neither side sees a
/// FIN or a reset.
struct Proxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (frozen, watcher) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watcher.clone()));
                tokio::spawn(pump(server_read, client_write, watcher.clone()));
            }
        });
        Self { addr, frozen }
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }
}

/// Copies `from` to `to` until either closes; once frozen, reads and drops everything.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !*frozen.borrow() && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_session_is_cut_and_the_professional_books_again() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let options = db.connect_options();
    let proxy = Proxy::start((options.get_host().to_owned(), options.get_port())).await;
    let config = short_timeouts(db.url());
    let store = PgStore::connect(&config).await.expect("connect");
    let behind_proxy = PgStore::connect(&PgConfig {
        url: format!(
            "postgres://{}@{}/{}",
            options.get_username(),
            proxy.addr,
            db.name()
        ),
        ..config.clone()
    })
    .await
    .expect("connect through the proxy");
    let pro = insert_professional(&store).await;

    let (mut tx, pid) = take_professional_lock(&behind_proxy, pro).await;
    // The session's keepalive came from the adapter's configuration.
    let keepalive: String =
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'tcp_keepalives_idle'")
            .fetch_one(&mut *tx)
            .await
            .expect("keepalive setting");
    assert_eq!(keepalive, "3");
    proxy.freeze();
    // The stuck client's next statement goes nowhere: it hangs rather than fails.
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        sqlx::query("SELECT 1").execute(&mut *tx),
    )
    .await;
    assert!(hung.is_err(), "the partition swallows the statement");
    blocked_then_books_again(&store, pro, pid).await;
    // The frozen connection is dropped with its pool, not closed (that would wait on it).
    drop(tx);
    drop(behind_proxy);
    store.close().await;
    drop(db);
}

/// Makes every insert into `bookings` fail with SQLSTATE `code` on its first `failures`
/// attempts (counted by a sequence, which a rollback does not undo).
async fn inject_failures(store: &PgStore, code: &str, failures: i64) {
    for sql in [
        "DROP TRIGGER IF EXISTS inject_fault ON bookings".to_owned(),
        "DROP SEQUENCE IF EXISTS fault_attempts".to_owned(),
        "CREATE SEQUENCE fault_attempts".to_owned(),
        format!(
            "CREATE OR REPLACE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
                 IF nextval('fault_attempts') <= {failures} THEN \
                     RAISE EXCEPTION 'injected fault' USING ERRCODE = '{code}'; \
                 END IF; \
                 RETURN NEW; \
             END $$"
        ),
        "CREATE TRIGGER inject_fault BEFORE INSERT ON bookings \
         FOR EACH ROW EXECUTE FUNCTION inject_fault()"
            .to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(store.pool())
            .await
            .expect("install the fault");
    }
}

/// How many attempts reached the trigger since [`inject_failures`].
async fn attempts(store: &PgStore) -> i64 {
    sqlx::query_scalar("SELECT last_value FROM fault_attempts")
        .fetch_one(store.pool())
        .await
        .expect("attempts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_and_deadlocks_are_retried_a_bounded_number_of_times() {
    let Some(store) = booking_postgres::test_support::fresh_store(2).await else {
        return;
    };
    let pro = insert_professional(&store).await;
    for (hour, code) in [(0, "40001"), (2, "40P01")] {
        // Four failures: the fifth attempt (the policy allows five) succeeds, and the
        // caller sees only the success.
        inject_failures(&store, code, 4).await;
        let wanted = booking(pro, hour);
        let inserted = store.insert_booking(&wanted, Utc::now()).await;
        assert!(
            matches!(&inserted, Ok(Inserted::Created(b)) if b.id == wanted.id),
            "{code} four times, then success: {inserted:?}"
        );
        assert_eq!(
            attempts(&store).await,
            5,
            "{code}: one try and four retries"
        );
        assert_eq!(
            store.get_booking(wanted.id).await.map(|b| b.is_some()),
            Ok(true)
        );

        // Failing for ever: five attempts, then Unavailable, and nothing stored.
        inject_failures(&store, code, i64::MAX).await;
        let doomed = booking(pro, hour + 1);
        let refused = store.insert_booking(&doomed, Utc::now()).await;
        assert!(
            matches!(refused, Err(Error::Unavailable(_))),
            "{code} for ever: {refused:?}"
        );
        assert_eq!(attempts(&store).await, 5, "{code}: the retries are bounded");
        assert_eq!(store.get_booking(doomed.id).await, Ok(None));
    }

    // Another error is not retried: one attempt, mapped as usual.
    inject_failures(&store, "23P01", i64::MAX).await;
    let refused = store.insert_booking(&booking(pro, 4), Utc::now()).await;
    assert_eq!(refused.map(|_| ()), Err(Error::SlotUnavailable));
    assert_eq!(attempts(&store).await, 1, "an exclusion violation is final");
}
