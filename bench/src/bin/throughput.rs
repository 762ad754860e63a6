//! Create-booking throughput of the adapter against a ceiling measured in the same run:
//! pgbench executing the same SQL statements (same tables, clauses, round trips and
//! transaction boundaries) with the same number of clients.
//!
//! ```text
//! cargo run --release -p booking-bench --bin throughput -- [SECONDS [CLIENTS]]
//! booking-postgres/bench/pg_throughput.sh [SECONDS [CLIENTS]]
//! ```
//!
//! `DATABASE_URL` names the server (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each phase runs on a fresh database that is dropped afterwards. `PGBENCH` overrides the
//! pgbench binary (default: on `PATH`, else `/usr/lib/postgresql/*/bin/pgbench`).
//!
//! Per booking both sides run, in one transaction: `BEGIN`; the look-up of the request's
//! earlier booking; the release of overlapping holds that ran out; the insert (`RETURNING`
//! the row); the outbox insert; `COMMIT`. Each of
//! the clients books consecutive one-hour slots of its own professional, so nothing
//! conflicts. pgbench cannot bind typed values, so its parameters are computed server-side
//! (`gen_random_uuid()`, `to_timestamp(..)`); that is the only difference.
//!
//! The outbox before and after: pgbench also runs, in the same run, the outbox as it was
//! (every booking write took a shared advisory lock that a reader took exclusively to read
//! a gap-free prefix) and as it is (no shared lock; the relay claims and marks with
//! `FOR UPDATE SKIP LOCKED`), each with one reader transaction per 50 bookings beside the
//! writers, as a relay polling under load would.

#![allow(clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{BASE_EPOCH, BoxError, PgbenchSummary, confirmed_booking, pgbench_binary};
use booking_core::domain::{ClientId, ProfessionalId};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::store::{BookingStore, Inserted};
use booking_postgres::test_support::TestDatabase;
use booking_postgres::{PgConfig, PgStore};
use chrono::Utc;

/// Runs `clients` tasks inserting bookings for `warmup + duration`; returns the bookings
/// per second during `duration`.
async fn adapter_phase(
    store: Arc<PgStore>,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(f64, u64), BoxError> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (store, measuring, stop, counted) = (
            Arc::clone(&store),
            Arc::clone(&measuring),
            Arc::clone(&stop),
            Arc::clone(&counted),
        );
        tasks.push(tokio::spawn(async move {
            let pro = ProfessionalId::new_at(Utc::now());
            let client = ClientId::new_at(Utc::now());
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let b = confirmed_booking(pro, client, n, Some(format!("bench-{worker}-{n}")))?;
                match store.insert_booking(&b, b.created_at).await? {
                    Inserted::Created(_) => {}
                    Inserted::Existing(_) => {
                        return Err::<u64, BoxError>("unexpected Existing".into());
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            u64::try_from(n).map_err(Into::into)
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let done = counted.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok((done as f64 / elapsed.as_secs_f64(), total))
}

/// The pgbench script: the adapter's statements, parameters computed server-side.
/// The outbox's old global advisory lock key ("bkoutbox"), for the "before" phase only.
const LEGACY_OUTBOX_LOCK: i64 = 0x626b_6f75_7462_6f78;

/// How a pgbench phase treats the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outbox {
    /// As the adapter writes it now: no lock shared by every writer, no reader.
    Current,
    /// As it was: writers take the shared advisory lock; plus a reader taking it
    /// exclusively and reading the next 256 events, one per 50 bookings.
    LegacyWithReader,
    /// As it is: no shared lock; plus a reader claiming and marking 256 events, one per 50
    /// bookings.
    CurrentWithReader,
}

fn reader_script(outbox: Outbox) -> Option<String> {
    match outbox {
        Outbox::Current => None,
        Outbox::LegacyWithReader => Some(format!(
            "BEGIN;\nSELECT pg_advisory_xact_lock({LEGACY_OUTBOX_LOCK});\n\
             SELECT payload FROM domain_events WHERE seq > (SELECT coalesce(max(seq), 0) - 256 FROM domain_events) ORDER BY seq LIMIT 256;\n\
             COMMIT;\n"
        )),
        Outbox::CurrentWithReader => Some(
            "WITH picked AS (SELECT d.professional_id, d.id FROM domain_events d \
               WHERE d.nats_marked_at IS NULL AND (d.nats_lease IS NULL OR d.nats_lease_until <= now()) \
                 AND NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.booking_id = d.booking_id \
                   AND e.nats_marked_at IS NULL AND e.seq < d.seq) \
               ORDER BY d.seq LIMIT 256 FOR UPDATE OF d SKIP LOCKED) \
             UPDATE domain_events d SET nats_marked_at = now() FROM picked \
             WHERE d.professional_id = picked.professional_id AND d.id = picked.id;\n"
                .to_owned(),
        ),
    }
}

fn pgbench_script(payload_hex: &str, outbox: Outbox) -> String {
    let (lock_cte, from_lock) = match outbox {
        Outbox::LegacyWithReader => (
            format!(
                "WITH outbox_lock AS (SELECT pg_advisory_xact_lock_shared({LEGACY_OUTBOX_LOCK}))\n"
            ),
            " FROM outbox_lock",
        ),
        Outbox::Current | Outbox::CurrentWithReader => (String::new(), ""),
    };
    let cols = "id, professional_id, client_id, starts_at, ends_at, blocked_range, status, \
                price_cents, currency, hold_expires_at, request_ref, created_at, updated_at";
    format!(
        r#"\set n :n + 1
\if :n = 1
SELECT gen_random_uuid() AS pro, gen_random_uuid() AS client,
       convert_from(decode('{payload_hex}', 'hex'), 'UTF8') AS payload \gset
\endif
\set start {BASE_EPOCH} + :n * 3600
BEGIN;
SELECT {cols} FROM bookings WHERE professional_id = :pro AND request_ref = 'bench-' || :client_id || '-' || :n;
WITH due AS (
    SELECT id AS due_id FROM bookings
    WHERE professional_id = :pro AND status = 'pending_payment'
      AND (hold_expires_at <= now() OR hold_expires_at IS NULL)
      AND blocked_range && tstzrange(to_timestamp(:start), to_timestamp(:start + 3600), '[)')
      AND id <> '00000000-0000-0000-0000-000000000000'
    ORDER BY id FOR UPDATE)
UPDATE bookings SET status = 'expired', updated_at = now()
FROM due WHERE professional_id = :pro AND id = due.due_id
RETURNING {cols};
INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at,
    blocked_range, status, price_cents, currency, hold_expires_at, request_ref,
    created_at, updated_at)
VALUES (gen_random_uuid(), :pro, :client, to_timestamp(:start), to_timestamp(:start + 3600),
    tstzrange(to_timestamp(:start), to_timestamp(:start + 3600), '[)'), 'confirmed', 6000, 'eur',
    NULL, 'bench-' || :client_id || '-' || :n, now(), now())
RETURNING {cols} \gset b_
{lock_cte}INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload)
SELECT gen_random_uuid(), 'booking_created', :b_id, :pro, now(), :payload::jsonb{from_lock};
COMMIT;
"#
    )
}

fn pgbench_phase(
    db: &TestDatabase,
    clients: usize,
    duration: Duration,
    payload_hex: &str,
    outbox: Outbox,
) -> Result<(f64, u64), BoxError> {
    let script = std::env::temp_dir().join(format!("booking-bench-{}.sql", std::process::id()));
    std::fs::write(&script, pgbench_script(payload_hex, outbox))?;
    let reader = std::env::temp_dir().join(format!("booking-bench-{}-r.sql", std::process::id()));
    let reader_text = reader_script(outbox);
    if let Some(text) = &reader_text {
        std::fs::write(&reader, text)?;
    }
    let threads = clients.min(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let output = Command::new(pgbench_binary().ok_or("pgbench not found (set PGBENCH)")?)
        .args(["-n", "-M", "prepared", "-D", "n=0"])
        .arg("-c")
        .arg(clients.to_string())
        .arg("-j")
        .arg(threads.to_string())
        .arg("-T")
        .arg(duration.as_secs().max(1).to_string())
        .args(
            if reader_text.is_some() {
                vec![
                    format!("{}@50", script.display()),
                    format!("{}@1", reader.display()),
                ]
            } else {
                vec![script.display().to_string()]
            }
            .iter()
            .flat_map(|f| ["-f".to_owned(), f.clone()]),
        )
        .arg(db.url())
        .output()?;
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&reader);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("pgbench failed: {}\n{stdout}\n{stderr}", output.status).into());
    }
    let summary = PgbenchSummary::parse(&stdout)?;
    if summary.failed > 0 {
        return Err(format!("pgbench transactions failed: {}\n{stdout}", summary.failed).into());
    }
    Ok((summary.tps, summary.processed as u64))
}

async fn count_bookings(store: &PgStore) -> Result<i64, BoxError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(store.pool())
        .await?)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let clients: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let duration = Duration::from_secs(seconds);
    let warmup = Duration::from_secs(2);

    // A representative outbox payload for pgbench (the adapter serialises its own).
    let sample = confirmed_booking(
        ProfessionalId::new_at(Utc::now()),
        ClientId::new_at(Utc::now()),
        1,
        Some("bench-0-1".to_owned()),
    )?;
    let payload =
        serde_json::to_string(&DomainEvent::new(EventKind::BookingCreated, &sample, None))?;
    let payload_hex: String = payload.bytes().map(|b| format!("{b:02x}")).collect();

    println!("create-booking throughput: {clients} concurrent clients, {seconds} s per phase");

    // Phase 1: the adapter.
    let db = TestDatabase::create()
        .await
        .ok_or("postgres unreachable: set DATABASE_URL")?;
    let store = PgStore::connect(&PgConfig {
        max_connections: u32::try_from(clients)?,
        min_connections: u32::try_from(clients)?,
        ..PgConfig::from_url(db.url())
    })
    .await?;
    let store = Arc::new(store);
    let (adapter_tps, adapter_total) =
        adapter_phase(Arc::clone(&store), clients, warmup, duration).await?;
    let stored = count_bookings(&store).await?;
    if u64::try_from(stored)? != adapter_total {
        return Err(format!("adapter inserted {adapter_total}, table has {stored}").into());
    }
    store.close().await;
    drop(db);

    // Phase 2: pgbench, same statements, on a fresh database; then the outbox before and
    // after the global lock was removed, each with a reader beside the writers.
    let mut rates = Vec::new();
    for outbox in [
        Outbox::Current,
        Outbox::LegacyWithReader,
        Outbox::CurrentWithReader,
    ] {
        let db = TestDatabase::create()
            .await
            .ok_or("postgres unreachable: set DATABASE_URL")?;
        let (tps, total) = pgbench_phase(&db, clients, duration, &payload_hex, outbox)?;
        let check = PgStore::connect(&PgConfig::from_url(db.url())).await?;
        let stored = u64::try_from(count_bookings(&check).await?)?;
        if outbox == Outbox::Current && stored != total {
            return Err(format!("pgbench processed {total}, table has {stored}").into());
        }
        check.close().await;
        drop(db);
        // With a reader, pgbench's tps counts its transactions too: count bookings.
        let bookings_per_s = if outbox == Outbox::Current {
            tps
        } else {
            stored as f64 / duration.as_secs_f64()
        };
        rates.push((outbox, bookings_per_s));
    }
    let pgbench_tps = rates[0].1;

    println!("adapter  (booking-postgres, {clients} tasks):   {adapter_tps:>9.1} bookings/s");
    println!("pgbench  (same SQL, {clients} clients):          {pgbench_tps:>9.1} bookings/s");
    for (outbox, rate) in &rates[1..] {
        println!("pgbench  {outbox:?}: {rate:>9.1} bookings/s");
    }
    let ratio = adapter_tps / pgbench_tps;
    println!(
        "ratio adapter/pgbench: {ratio:.3} (target >= 0.8: {})",
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );
    Ok(())
}
