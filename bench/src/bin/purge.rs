//! The idempotency purge at scale: how fast the adapter's batched `DELETE`
//! (`IdempotencyStore::purge_expired`, as the reference server's sweep calls it) removes
//! millions of expired records, what it does to the table's and indexes' size, and what it
//! costs the bookings written meanwhile.
//!
//! ```text
//! nice -n 10 cargo run --release -p booking-bench --bin purge -- [ROWS [SECONDS [CLIENTS [BATCH]]]]
//! ```
//!
//! Defaults: 10,000,000 expired records, 10 s measuring windows, 4 booking clients,
//! batches of 1,000 (the reference server's). `DATABASE_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); it runs on a fresh database that is
//! dropped afterwards.
//!
//! 1. Seeds `ROWS` completed, expired records with `generate_series` (a stored 201 answer
//!    of about 150 bytes each, 1,000 scopes).
//! 2. Throughout, a writer adds 1,000 new (unexpired) keys per second, in batches of 100
//!    every 100 ms: the rate the purge must keep up with.
//! 3. Baseline: `CLIENTS` tasks insert bookings through the adapter for `SECONDS`.
//! 4. The purge runs batch after batch until a batch comes back short, printing its rate
//!    per million rows; the same booking load is measured in consecutive `SECONDS` windows
//!    for as long as it runs.
//! 5. Sizes (table, indexes) before, right after the purge, and after a plain `VACUUM`;
//!    before and after that `VACUUM`, the time of the next run's first call.
//!
//! `PURGE_FROM_START=1` runs every batch from the beginning of the `expires_at` index, as
//! the adapter did before it kept a cursor (`booking-postgres/src/store/purge.rs`): the
//! comparison, in the same run.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{BoxError, confirmed_booking};
use booking_core::domain::{ClientId, ProfessionalId};
use booking_core::store::{BookingStore, IdempotencyStore};
use booking_postgres::test_support::{self, TestDatabase};
use booking_postgres::{PgConfig, PgStore};
use chrono::Utc;
use sqlx::{Connection, PgConnection};

/// Records seeded per statement.
const SEED_CHUNK: i64 = 1_000_000;

/// Inserts records `from..=to`, all completed and expired an hour ago.
const SEED: &str = "INSERT INTO idempotency_keys (scope, key, fingerprint, response_status, \
     response_headers, response_body, created_at, expires_at) \
     SELECT 'client:' || (g % 1000), 'seed-' || g, sha256(g::text::bytea), 201, \
         '{\"location\": \"/v1/bookings/x\"}'::jsonb, \
         convert_to(repeat('{\"id\":\"0190f0e0-0000-7000-8000-000000000000\"}', 3), 'UTF8'), \
         now() - interval '25 hours', now() - interval '1 hour' - g * interval '1 ms' \
     FROM generate_series($1::bigint, $2::bigint) AS g";

/// 100 new keys that expire in a day (`$1`: the first number).
const NEW_KEYS: &str = "INSERT INTO idempotency_keys (scope, key, fingerprint, response_status, \
     response_headers, response_body, created_at, expires_at) \
     SELECT 'client:' || (g % 1000), 'new-' || g, sha256(g::text::bytea), 201, '{}'::jsonb, \
         '\\x7b7d'::bytea, now(), now() + interval '24 hours' \
     FROM generate_series($1::bigint, $1::bigint + 99) AS g";

const SIZES: &str = "SELECT pg_relation_size('idempotency_keys'), \
     pg_indexes_size('idempotency_keys'), (SELECT count(*) FROM idempotency_keys)";

fn mb(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn sizes(conn: &mut PgConnection, label: &str) -> Result<(), BoxError> {
    let (table, indexes, rows): (i64, i64, i64) = sqlx::query_as(SIZES).fetch_one(conn).await?;
    println!(
        "{label:<28} rows {rows:>11}  table {:>8.1} MB  indexes {:>8.1} MB",
        mb(table),
        mb(indexes)
    );
    Ok(())
}

/// Times one more purge call: the first of the next run, which starts at the beginning of
/// the index and steps over the entries of every row the last run deleted that no vacuum
/// has removed yet (it may meet the statement timeout).
async fn next_run(store: &PgStore, batch: usize, label: &str) {
    let started = Instant::now();
    let outcome = store.purge_expired(Utc::now(), batch).await;
    let took = started.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok(n) => println!("{label:<40} {n} rows in {took:.0} ms"),
        Err(e) => println!("{label:<40} failed after {took:.0} ms: {e}"),
    }
}

/// Bookings through the adapter: `clients` tasks, each on its own professional, counted
/// while `counting` is set, until `stop` is.
struct Load {
    counted: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), BoxError>>>,
}

impl Load {
    fn start(store: &PgStore, clients: usize) -> Self {
        let counted = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (store, counted) = (store.clone(), counted.clone());
                let (counting, stop) = (counting.clone(), stop.clone());
                tokio::spawn(async move {
                    let pro = ProfessionalId::new_at(Utc::now());
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let b = confirmed_booking(pro, ClientId::new_at(Utc::now()), n, None)?;
                        store.insert_booking(&b, b.created_at).await?;
                        if counting.load(Ordering::Relaxed) {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        Self {
            counted,
            counting,
            stop,
            tasks,
        }
    }

    /// Bookings per second over the next `window`.
    async fn measure(&self, window: Duration) -> f64 {
        let before = self.counted.load(Ordering::Relaxed);
        self.counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let done = self.counted.load(Ordering::Relaxed) - before;
        self.counting.store(false, Ordering::Relaxed);
        done as f64 / started.elapsed().as_secs_f64()
    }

    async fn stop(self) -> Result<(), BoxError> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }
}

/// Writes 100 new keys every 100 ms until `stop`; returns how many.
async fn new_keys(store: PgStore, stop: Arc<AtomicBool>) -> Result<i64, BoxError> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        sqlx::query(NEW_KEYS)
            .bind(next)
            .execute(store.pool())
            .await?;
        next += 100;
    }
    Ok(next)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let rows: i64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let clients: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000);
    let window = Duration::from_secs(seconds);
    println!(
        "idempotency purge: {rows} expired records, batches of {batch}, {clients} booking \
         clients, {seconds} s windows, 1,000 new keys/s throughout"
    );

    let db = TestDatabase::create()
        .await
        .ok_or("postgres unreachable: set DATABASE_URL")?;
    let mut admin = PgConnection::connect_with(&db.connect_options()).await?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut admin)
        .await?;
    let started = Instant::now();
    let mut from = 1;
    while from <= rows {
        let to = (from + SEED_CHUNK - 1).min(rows);
        sqlx::query(SEED)
            .bind(from)
            .bind(to)
            .execute(&mut admin)
            .await?;
        from = to + 1;
    }
    sqlx::query("VACUUM ANALYZE idempotency_keys")
        .execute(&mut admin)
        .await?;
    let seeding = started.elapsed();
    println!(
        "seeded in {:.1} s ({:.0} rows/s)",
        seeding.as_secs_f64(),
        rows as f64 / seeding.as_secs_f64()
    );
    sizes(&mut admin, "before the purge").await?;

    let pool = u32::try_from(clients)? + 4;
    let store = PgStore::connect(&PgConfig {
        max_connections: pool,
        min_connections: pool,
        ..PgConfig::from_url(db.url())
    })
    .await?;
    let stop_keys = Arc::new(AtomicBool::new(false));
    let keys_started = Instant::now();
    let keys = tokio::spawn(new_keys(store.clone(), stop_keys.clone()));
    let load = Load::start(&store, clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = load.measure(window).await;

    let purger = store.clone();
    let from_start = std::env::var_os("PURGE_FROM_START").is_some_and(|v| v == "1");
    let purge = tokio::spawn(async move {
        let started = Instant::now();
        let (mut deleted, mut batches, mut slowest) = (0_u64, 0_u64, Duration::ZERO);
        let (mut mark_rows, mut mark_time) = (0_u64, Instant::now());
        loop {
            let t = Instant::now();
            let n = if from_start {
                // The purge before it kept a cursor: every batch starts at the beginning.
                let (n, _): (i64, Option<chrono::DateTime<Utc>>) =
                    sqlx::query_as(test_support::sql::IDEMPOTENCY_PURGE)
                        .bind(Utc::now())
                        .bind(i64::try_from(batch)?)
                        .bind(None::<chrono::DateTime<Utc>>)
                        .fetch_one(purger.pool())
                        .await?;
                u64::try_from(n)?
            } else {
                purger.purge_expired(Utc::now(), batch).await?
            };
            slowest = slowest.max(t.elapsed());
            deleted += n;
            batches += 1;
            // The rate of each million: a purge that slows down as it goes shows here.
            if deleted - mark_rows >= 1_000_000 || n < batch as u64 {
                let rate = (deleted - mark_rows) as f64 / mark_time.elapsed().as_secs_f64();
                println!("  deleted {deleted:>10}: {rate:>8.0} rows/s since the last line");
                (mark_rows, mark_time) = (deleted, Instant::now());
            }
            if n < batch as u64 {
                return Ok::<_, BoxError>((deleted, batches, slowest, started.elapsed()));
            }
        }
    });
    // Bookings in consecutive windows for as long as the purge runs.
    let mut during = Vec::new();
    while !purge.is_finished() {
        during.push(load.measure(window).await);
    }
    let (deleted, batches, slowest, purge_time) = purge.await??;
    let after = load.measure(window).await;
    load.stop().await?;
    stop_keys.store(true, Ordering::Relaxed);
    let written = keys.await??;
    let keys_per_s = written as f64 / keys_started.elapsed().as_secs_f64();

    println!(
        "purge: {deleted} rows in {:.1} s = {:.0} rows/s ({batches} batches, slowest {:.0} ms)",
        purge_time.as_secs_f64(),
        deleted as f64 / purge_time.as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    );
    println!("new keys written meanwhile: {written} (target 1,000/s; {keys_per_s:.0}/s overall)");
    let mean = during.iter().sum::<f64>() / during.len().max(1) as f64;
    let least = during.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "bookings/s: {baseline:.1} before; during the purge ({} windows) mean {mean:.1} \
         ({:.0}%), lowest {least:.1}; {after:.1} after",
        during.len(),
        100.0 * mean / baseline.max(f64::MIN_POSITIVE)
    );
    sizes(&mut admin, "right after the purge").await?;
    next_run(&store, batch, "next run's first call, before VACUUM").await;
    sqlx::query("VACUUM idempotency_keys")
        .execute(&mut admin)
        .await?;
    sizes(&mut admin, "after VACUUM").await?;
    next_run(&store, batch, "next run's first call, after VACUUM").await;
    admin.close().await?;
    store.close().await;
    drop(db);
    Ok(())
}
