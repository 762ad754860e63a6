//! Webhook load driver (PostgreSQL only): Stripe events accepted per second by
//! `POST /v1/webhooks/stripe` and applied per second by one inbox worker, each against
//! pgbench running the same SQL in the same run.
//!
//! ```text
//! cargo run --release -p booking-bench --bin webhook_load -- [seconds]
//! ```
//!
//! On a fresh database on `DATABASE_URL`'s server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; created and dropped), SQL seeds one
//! professional, one client and one paid hold per event to come (`pending_payment`, a Stripe
//! intent `pi_bench_<n>`, a hold that runs out in ten years, distinct 30-minute slots).
//!
//! 1. **Intake.** The server's router (the state configured from the environment like the
//!    real server, plus a webhook secret; no inbox worker and no sweep running) serves on a
//!    loopback port; 32 connections POST signed `payment_intent.succeeded` events, each
//!    with its own event id and naming its own hold and intent, for `seconds`. Reported:
//!    events/s answered 200, p50, p99.
//! 2. **Apply.** One worker, [`reference_server::workers::process_inbox`] called until it
//!    finds nothing due: claims batches of 32 (`FOR UPDATE SKIP LOCKED`), reads each
//!    event's booking, and settles it in one transaction. Reported: events/s applied, and
//!    the holds confirmed (counted with SQL) against the events accepted.
//! 3. **pgbench, same SQL** (`booking_postgres::test_support::sql`, verbatim; each `$n`
//!    becomes a small SQL expression, pgbench's `-M prepared` binds its variables):
//!    (a) the inbox insert, one per transaction, at 32 clients (`PGBENCH_CLIENTS`, e.g.
//!    `"16 32"`, runs several; the best is the ceiling); (b) what the worker sends per
//!    event at 1 client: the claim of a batch of 32 every 32nd transaction, then the read of
//!    the booking and the settle transaction (`BEGIN`, lock the event, the professional's
//!    insert lock, lock the booking, write it, record its outbox event, mark the event
//!    processed, `COMMIT`). (b) runs on rows of its own, seeded after phase 2: holds
//!    `pi_pgb_<n>` and pending events `evt_pgb_<n>`, due in `n` order so that the `k`-th
//!    claim takes exactly events `32k+1..32k+32`; transaction `n` settles event `n`.
//!    Afterwards the confirmed holds are counted against pgbench's transactions.
//!
//! The `cpu` columns are cores in use during the phase (from `/proc`): this process (server,
//! load driver or worker) and everything else (PostgreSQL, pgbench, any other work).
//! `PGBENCH` names the binary (default: on `PATH`, else `/usr/lib/postgresql/*/bin/pgbench`);
//! `PGBENCH_SCRIPT_COPY=dir` keeps copies of the scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{CpuSample, ms, percentile, pgbench_binary};
use booking_core::webhook::sign;
use booking_core::{ClientId, ProfessionalId, WebhookSecret};
use booking_postgres::test_support::TestDatabase;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use reference_server::{Application, Config};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

mod pgbench;

use pgbench::{apply_script, confirmed_payload, intake_script, pgbench_phase};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The webhook signing secret of the run.
const SECRET: &str = "whsec_webhook_load_0123456789abcdef";
/// Concurrent connections of the intake phase (and default pgbench clients for (a)).
const INTAKE_CONNECTIONS: usize = 32;
/// The inbox worker's batch (`INBOX_BATCH` in `reference_server::workers`).
const CLAIM_BATCH: usize = 32;
/// Holds seeded per second of intake: more than the server can take on this kind of host.
const HOLDS_PER_SECOND: usize = 10_000;
/// Slot numbers of pgbench's holds start here (HTTP holds: from 0).
const PGBENCH_SLOTS: i64 = 1_000_000;
/// pgbench apply rows seeded per second of its run (one client settles far fewer).
const PGBENCH_EVENTS_PER_SECOND: i64 = 10_000;
/// Price of every hold, in cents (EUR).
const PRICE_CENTS: i64 = 3000;

/// The id of the hold in slot `n`; [`booking_id_sql`] computes the same in SQL.
fn booking_id(n: i64) -> String {
    format!("01900000-0000-7000-8000-{n:012x}")
}

/// SQL for the id of the hold in slot `expr` (a bigint expression).
fn booking_id_sql(expr: &str) -> String {
    format!("('01900000-0000-7000-8000-' || lpad(to_hex(({expr})::bigint), 12, '0'))::uuid")
}

/// The body of a `payment_intent.succeeded` event for the hold in slot `n`, shaped as
/// Stripe sends it (the fields of `The Event object` and `The PaymentIntent object` a
/// receiver sees, trimmed of a few that make no difference).
fn event_body(event_id: &str, intent: &str, n: i64, created: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": PRICE_CENTS,
                "amount_capturable": 0,
                "amount_received": PRICE_CENTS,
                "automatic_payment_methods": { "enabled": true },
                "canceled_at": null,
                "capture_method": "automatic",
                "client_secret": format!("{intent}_secret_bench"),
                "confirmation_method": "automatic",
                "created": created,
                "currency": "eur",
                "customer": null,
                "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPc",
                "livemode": false,
                "metadata": { "booking_id": booking_id(n), "source": "reference-server" },
                "payment_method": "pm_1MtwBwLkdIwHu7ixAzAvSUXe",
                "payment_method_types": ["card"],
                "status": "succeeded"
            },
            "previous_attributes": null
        },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_JM8yaSsvhUsfH0", "idempotency_key": "8f2a1c3e-0b7d-4e1a-9c55-3d9e1f0a2b4c" },
        "type": "payment_intent.succeeded"
    }))
    .unwrap()
}

/// One row of the results table.
struct Outcome {
    name: String,
    count: usize,
    errors: usize,
    rate: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    cpu_own: Option<f64>,
    cpu_other: f64,
}

/// Phase 1: `connections` workers POST signed events, one per seeded hold (at most
/// `holds`), for `seconds`.
async fn intake(base: &str, seconds: u64, connections: usize, holds: usize) -> Outcome {
    let client: HttpClient = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(connections * 2)
        .build_http();
    let secret = Arc::new(WebhookSecret::new(SECRET).unwrap());
    let url: Arc<str> = Arc::from(format!("{base}/v1/webhooks/stripe"));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, secret, url, next) = (
            client.clone(),
            Arc::clone(&secret),
            Arc::clone(&url),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= holds {
                    break;
                }
                let n = i64::try_from(i).unwrap();
                let now = Utc::now();
                let t = Instant::now();
                // Built and signed per request, as a sender does.
                let body = event_body(
                    &format!("evt_bench_{n}"),
                    &format!("pi_bench_{n}"),
                    n,
                    now.timestamp(),
                );
                let request = Request::builder()
                    .method("POST")
                    .uri(&*url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", sign(&secret, now, &body))
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let ok = match client.request(request).await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let _ = res.into_body().collect().await;
                        status == 200
                    }
                    Err(_) => false,
                };
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_own, cpu_other) = CpuSample::now().cores_since(&cpu_before);
    all.sort_unstable();
    let accepted = all.len() - errors;
    Outcome {
        name: format!("POST /v1/webhooks/stripe ({connections} conn)"),
        count: accepted,
        errors,
        rate: accepted as f64 / elapsed,
        p50: Some(percentile(&all, 0.50)),
        p99: Some(percentile(&all, 0.99)),
        cpu_own: Some(cpu_own),
        cpu_other,
    }
}

async fn connect(db: &TestDatabase) -> PgConnection {
    PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect to the bench database")
}

/// Runs one statement; returns the rows it affected.
async fn exec(conn: &mut PgConnection, statement: String) -> u64 {
    sqlx::query(AssertSqlSafe(statement))
        .execute(conn)
        .await
        .expect("seed statement")
        .rows_affected()
}

/// One bigint from `query`.
async fn count(conn: &mut PgConnection, query: String) -> i64 {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(query))
        .fetch_one(conn)
        .await
        .expect("count query")
}

/// Seeds paid holds of `pro` for `client` in slots `from..=to`, intents `<prefix><n>`.
async fn seed_holds(
    conn: &mut PgConnection,
    pro: &str,
    client: &str,
    prefix: &str,
    from: i64,
    to: i64,
) {
    let id = booking_id_sql("k");
    let seeded = exec(
        conn,
        format!(
            "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
                 blocked_range, status, price_cents, currency, hold_expires_at, request_ref, \
                 created_at, updated_at, payment_provider, payment_intent_id, \
                 payment_client_secret) \
             SELECT {id}, '{pro}', '{client}', s, s + interval '30 minutes', \
                 tstzrange(s, s + interval '30 minutes', '[)'), 'pending_payment', \
                 {PRICE_CENTS}, 'eur', now() + interval '10 years', NULL, now(), now(), \
                 'stripe', '{prefix}' || k, '{prefix}' || k || '_secret_bench' \
             FROM generate_series({from}::bigint, {to}::bigint) AS k, \
                 LATERAL (SELECT timestamptz '2050-01-01 00:00:00+00' \
                          + k * interval '30 minutes' AS s) AS t"
        ),
    )
    .await;
    assert_eq!(seeded, u64::try_from(to - from + 1).unwrap());
}

fn print_row(r: &Outcome) {
    let opt =
        |v: Option<f64>, prec: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"));
    println!(
        "{:<44} {:>9} {:>7} {:>9.0} {:>8} {:>8} {:>8} {:>9.2}",
        r.name,
        r.count,
        r.errors,
        r.rate,
        opt(r.p50.map(ms), 2),
        opt(r.p99.map(ms), 2),
        opt(r.cpu_own, 2),
        r.cpu_other
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let holds = usize::try_from(seconds)
        .unwrap_or(usize::MAX)
        .saturating_mul(HOLDS_PER_SECOND);
    let last_slot = i64::try_from(holds).unwrap() - 1;

    let db = TestDatabase::create()
        .await
        .expect("PostgreSQL reachable (this bench runs on PostgreSQL only)");
    let mut conn = connect(&db).await;
    let pro = ProfessionalId::new_at(Utc::now());
    let client = ClientId::new_at(Utc::now());
    exec(
        &mut conn,
        format!(
            "INSERT INTO professionals (id, name, category, lat, lng, hourly_rate_cents, \
                 currency, timezone, is_active, created_at, updated_at) \
             VALUES ('{}', 'Bench pro', 'massage', 52.5, 13.4, 6000, 'eur', 'UTC', true, \
                 now(), now())",
            pro.as_uuid()
        ),
    )
    .await;
    exec(
        &mut conn,
        format!(
            "INSERT INTO clients (id, name, email, created_at) \
             VALUES ('{}', 'Bench client', 'bench@example.com', now())",
            client.as_uuid()
        ),
    )
    .await;
    let (pro_s, client_s) = (pro.as_uuid().to_string(), client.as_uuid().to_string());
    let seeding = Instant::now();
    seed_holds(&mut conn, &pro_s, &client_s, "pi_bench_", 0, last_slot).await;
    exec(&mut conn, "ANALYZE".to_owned()).await;
    let seeded_in = seeding.elapsed();

    // The server: configured from the environment like the real one, plus the webhook
    // secret; the router alone is served, so neither the inbox worker nor the sweep runs.
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some("webhook-load-admin-token-0123456789".into()),
        database_url: Some(db.url()),
        webhook_secrets: vec![SECRET.to_owned()],
        ..Config::from_env().expect("configuration")
    };
    let pool_size = config.db_max_connections;
    let app = Application::build(config).await.expect("server");
    let state = app.state().clone();
    let router = app.router();
    drop(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // Phase 1: intake.
    let intake_row = intake(&base, seconds, INTAKE_CONNECTIONS, holds).await;
    let _ = stop.send(());
    let _ = server.await;
    let pending = count(
        &mut conn,
        "SELECT count(*) FROM webhook_inbox WHERE state = 'pending'".to_owned(),
    )
    .await;

    // Phase 2: one worker until nothing is due.
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let mut applied = 0usize;
    loop {
        let n = reference_server::workers::process_inbox(&state).await;
        if n == 0 {
            break;
        }
        applied += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_own, cpu_other) = CpuSample::now().cores_since(&cpu_before);
    let confirmed = count(
        &mut conn,
        "SELECT count(*) FROM bookings \
         WHERE payment_intent_id LIKE 'pi_bench_%' AND status = 'confirmed' \
           AND payment_intent_closed"
            .to_owned(),
    )
    .await;
    let processed = count(
        &mut conn,
        "SELECT count(*) FROM webhook_inbox WHERE state = 'processed'".to_owned(),
    )
    .await;
    let still_due = count(
        &mut conn,
        "SELECT count(*) FROM webhook_inbox WHERE state = 'pending'".to_owned(),
    )
    .await;
    let apply_row = Outcome {
        name: "inbox worker, process_inbox (1 worker)".to_owned(),
        count: applied,
        // Accepted events whose hold did not end up confirmed.
        errors: usize::try_from(pending - confirmed).unwrap_or(0),
        rate: applied as f64 / elapsed,
        p50: None,
        p99: None,
        cpu_own: Some(cpu_own),
        cpu_other,
    };
    drop(state);

    // Phase 3: pgbench, same SQL.
    let mut notes = Vec::new();
    let mut intake_pgbench = Vec::new();
    let mut apply_pgbench = Vec::new();
    match pgbench_binary() {
        None => {
            notes.push("pgbench not found: install postgresql-client or set PGBENCH".to_owned())
        }
        Some(binary) => {
            // (b) first, on rows of its own: nothing else is pending now.
            let events = i64::try_from(seconds).unwrap() * PGBENCH_EVENTS_PER_SECOND;
            seed_holds(
                &mut conn,
                &pro_s,
                &client_s,
                "pi_pgb_",
                PGBENCH_SLOTS + 1,
                PGBENCH_SLOTS + events,
            )
            .await;
            let sample = event_body(
                "evt_pgb_1",
                "pi_pgb_1",
                PGBENCH_SLOTS + 1,
                Utc::now().timestamp(),
            );
            let hex: String = sample.iter().map(|b| format!("{b:02x}")).collect();
            exec(
                &mut conn,
                format!(
                    "INSERT INTO webhook_inbox (provider, event_id, list_id, event_type, \
                         payload, received_at, state, attempts, next_attempt_at) \
                     SELECT 'stripe', 'evt_pgb_' || k, md5('evt_pgb_' || k)::uuid, \
                         'payment_intent.succeeded', decode('{hex}', 'hex'), now(), \
                         'pending', 0, timestamptz '2000-01-01 00:00:00+00' \
                         + k * interval '1 millisecond' \
                     FROM generate_series(1, {events}::bigint) AS k"
                ),
            )
            .await;
            exec(&mut conn, "ANALYZE".to_owned()).await;
            let script = apply_script(&pro_s, &confirmed_payload(pro, client));
            match pgbench_phase(&db, &binary, 1, seconds, 1, "apply SQL per event", &script) {
                Ok(o) => {
                    let settled = count(
                        &mut conn,
                        "SELECT count(*) FROM bookings \
                         WHERE payment_intent_id LIKE 'pi_pgb_%' AND status = 'confirmed'"
                            .to_owned(),
                    )
                    .await;
                    let marked = count(
                        &mut conn,
                        "SELECT count(*) FROM webhook_inbox \
                         WHERE event_id LIKE 'evt_pgb\\_%' AND state = 'processed'"
                            .to_owned(),
                    )
                    .await;
                    let done = i64::try_from(o.count).unwrap_or(i64::MAX);
                    // -T may cut the last transaction off before its COMMIT.
                    if settled < done || marked < done || settled >= events {
                        notes.push(format!(
                            "pgbench apply: {done} transactions but {settled} holds confirmed \
                             and {marked} events processed (of {events} seeded)"
                        ));
                    } else {
                        notes.push(format!(
                            "pgbench apply checked: {done} transactions, {settled} holds \
                             confirmed, {marked} events processed"
                        ));
                    }
                    apply_pgbench.push(o);
                }
                Err(e) => notes.push(e),
            }
            // (a) at 32 clients, or each of PGBENCH_CLIENTS.
            let wanted: Vec<usize> = match std::env::var("PGBENCH_CLIENTS") {
                Ok(v) if !v.trim().is_empty() => v
                    .split([' ', ','])
                    .filter_map(|s| s.trim().parse().ok())
                    .filter(|&n| n > 0)
                    .collect(),
                _ => vec![INTAKE_CONNECTIONS],
            };
            let script = intake_script(&sample);
            for (i, clients) in wanted.into_iter().enumerate() {
                let run = 2 + i;
                match pgbench_phase(&db, &binary, clients, seconds, run, "inbox insert", &script) {
                    Ok(o) => {
                        let rows = count(
                            &mut conn,
                            format!(
                                "SELECT count(*) FROM webhook_inbox \
                                 WHERE event_id LIKE 'evt\\_pgbi\\_{run}\\_%'"
                            ),
                        )
                        .await;
                        if rows < i64::try_from(o.count).unwrap_or(i64::MAX) {
                            notes.push(format!(
                                "pgbench intake with {clients} clients: {} transactions but \
                                 {rows} events recorded",
                                o.count
                            ));
                        }
                        intake_pgbench.push(o);
                    }
                    Err(e) => notes.push(e),
                }
            }
        }
    }
    drop(conn);

    println!(
        "store=postgres seconds={seconds} db_pool={pool_size} holds_seeded={holds} \
         (seeded in {:.1} s)",
        seeded_in.as_secs_f64()
    );
    println!(
        "{:<44} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "scenario", "events", "errors", "events/s", "p50 ms", "p99 ms", "cpu own", "cpu other"
    );
    for r in [&intake_row, &apply_row]
        .into_iter()
        .chain(&intake_pgbench)
        .chain(&apply_pgbench)
    {
        print_row(r);
    }
    println!(
        "intake: {} accepted (200), {} inbox rows pending after intake; apply: {applied} \
         events handled, {confirmed} holds confirmed, {processed} events processed, \
         {still_due} still pending",
        intake_row.count, pending
    );
    if intake_row.count + intake_row.errors >= holds {
        notes.push(format!(
            "intake used all {holds} seeded holds before the time ran out: the rate is a \
             lower bound"
        ));
    }
    if let Some(best) = intake_pgbench.iter().map(|o| o.rate).reduce(f64::max) {
        println!(
            "intake (32 conn): {:.0} events/s / pgbench inbox insert {best:.0} tps = {:.3}; \
             p50 {:.1} ms, p99 {:.1} ms",
            intake_row.rate,
            intake_row.rate / best,
            intake_row.p50.map_or(f64::NAN, ms),
            intake_row.p99.map_or(f64::NAN, ms)
        );
    }
    if let Some(best) = apply_pgbench.iter().map(|o| o.rate).reduce(f64::max) {
        println!(
            "apply (1 worker): {:.0} events/s / pgbench apply SQL {best:.0} tps = {:.3}",
            apply_row.rate,
            apply_row.rate / best
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    drop(db);
}
