//! Load driver: requests per second and latency of the reference server, against ceilings
//! measured in the same run: `GET /healthz` (a no-op route of the same server) and, on
//! PostgreSQL, pgbench executing the SQL statements the server sends per booking.
//!
//! ```text
//! cargo run --release -p booking-bench --bin load -- [memory|postgres] [seconds] ["16 32 64"]
//! ```
//!
//! Scenarios, each for `seconds` (default 5): `GET /healthz` (ceiling), `POST /v1/bookings`
//! with a unique key and a free slot per request at each concurrency level (e.g.
//! `"16 32 64"`; default 64), and `GET /v1/professionals/{id}/availability` over one day,
//! both at the highest level. The server runs
//! in this process on a loopback port (PostgreSQL: a fresh database on `DATABASE_URL`'s
//! server). Bounded in time and count; loopback only.
//!
//! The server is configured from the environment like the real one
//! ([`Config::from_env`], e.g. `BOOKING_DB_MAX_CONNECTIONS`), except for the listen
//! address, the admin token and the database.
//!
//! ## The pgbench ceiling (PostgreSQL only)
//!
//! After the HTTP scenarios, with the server stopped, on the same database, pgbench runs
//! for `seconds` a script made of the statements one booking sends, verbatim from the
//! adapter (`booking_postgres::test_support::sql`): the idempotency claim that also reads
//! the professional, their schedule and the client, then the insert that also records the
//! outbox event and stores the key's answer, each in its own implicit transaction as the
//! adapter sends them (the token look-up is cached by the server). pgbench cannot bind
//! typed values, so each `$n` becomes a small SQL expression (`md5(..)::uuid`, `now()`,
//! `to_timestamp(..)`); that is the only difference. One pgbench transaction is one
//! booking. A second script runs the availability statement the same way.
//!
//! pgbench runs with as many clients as the server's pool has connections
//! (`PGBENCH_CLIENTS` overrides it, e.g. `"16 64"` runs both; the best is the ceiling): the
//! server never has more database sessions than that in flight, so that is the database
//! work it can be compared with. It is also where pgbench peaks (on a 2-core host: 8 and 16
//! clients alike, 32 and 64 about 5-10% lower), so the ratio is not flattered by a ceiling
//! measured with too many clients. `PGBENCH` names the binary (default: on `PATH`, else
//! `/usr/lib/postgresql/*/bin/pgbench`); `PGBENCH_SCRIPT_COPY=path` keeps a copy of the
//! script.
//!
//! The `cpu` columns are cores in use during the scenario (from `/proc`): this process
//! (server and load driver together) and everything else (PostgreSQL, pgbench, and any
//! other work on the machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{CpuSample, ms, percentile, pgbench_binary};
use booking_postgres::test_support::TestDatabase;
use bytes::Bytes;
use chrono::{Timelike, Utc};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use reference_server::{Application, Config};
use serde_json::{Value, json};

mod pgbench;

use pgbench::{
    availability_script, pgbench_effects, pgbench_phase, pgbench_script, sample_payload,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ADMIN: &str = "load-admin-token-0123456789";
const PROFESSIONALS: usize = 100;
const CLIENTS: usize = 16;
const MAX_REQUESTS: usize = 250_000;

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    let bytes = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            serde_json::to_vec(v).unwrap()
        }
        None => Vec::new(),
    };
    let res = client
        .request(b.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .expect("request");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

struct Outcome {
    name: String,
    requests: usize,
    errors: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
    cpu_own: f64,
    cpu_other: f64,
}

/// Runs `make(i)` requests from `concurrency` workers for `seconds`.
async fn scenario<F, Fut>(
    name: &str,
    seconds: u64,
    concurrency: usize,
    expect: u16,
    make: F,
) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let make = Arc::clone(&make);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= MAX_REQUESTS {
                    break;
                }
                let t = Instant::now();
                let status = make(i).await;
                lat.push(t.elapsed());
                if status != expect {
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
    Outcome {
        name: name.to_owned(),
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        cpu_own,
        cpu_other,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = args.get(1).map_or("memory", String::as_str).to_owned();
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    // One or more levels, e.g. "16 32 64": bookings run at each, the rest at the last.
    let levels: Vec<usize> = args
        .get(3)
        .map(|s| {
            s.split([' ', ','])
                .filter_map(|x| x.trim().parse().ok())
                .collect()
        })
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![64]);
    let concurrency = *levels.iter().max().unwrap_or(&64);

    let db = if store == "postgres" {
        Some(TestDatabase::create().await.expect("postgres reachable"))
    } else {
        None
    };
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some(ADMIN.into()),
        database_url: db.as_ref().map(TestDatabase::url),
        ..Config::from_env().expect("configuration")
    };
    let pool_size = config.db_max_connections;
    let app = Application::build(config).await.expect("server");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let client: HttpClient = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(concurrency * 2)
        .build_http();

    // Setup: professionals open around the clock, clients.
    let mut pros = Vec::new();
    for i in 0..PROFESSIONALS {
        let (s, v) = send(&client, "POST", &format!("{base}/v1/professionals"), Some(ADMIN), Some(&format!("p{i}")), Some(&json!({
            "name": format!("Pro {i}"), "category": "massage", "location": {"lat": 52.5, "lng": 13.4},
            "hourly_rate_cents": 6000, "currency": "eur", "timezone": "UTC"
        }))).await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        let token = v["api_token"].as_str().unwrap().to_owned();
        let weekly: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "00:00", "end": "24:00"}))
            .collect();
        let (s, v) = send(&client, "PUT", &format!("{base}/v1/professionals/{id}/schedule"), Some(&token), None,
            Some(&json!({"timezone": "UTC", "weekly": weekly, "horizon_days": 3660, "slot_step_minutes": 30}))).await;
        assert_eq!(s, 200, "{v}");
        pros.push(id);
    }
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (s, v) = send(
            &client,
            "POST",
            &format!("{base}/v1/clients"),
            Some(ADMIN),
            Some(&format!("c{i}")),
            Some(&json!({"name": format!("c{i}"), "email": format!("c{i}@example.com")})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        clients.push(v["api_token"].as_str().unwrap().to_owned());
    }
    let day0 = (Utc::now() + chrono::Duration::days(1))
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let pros = Arc::new(pros);
    let clients = Arc::new(clients);

    let mut results = Vec::new();
    {
        let (c, b) = (client.clone(), base.clone());
        results.push(
            scenario(
                "GET /healthz (ceiling)",
                seconds,
                concurrency,
                200,
                move |_| {
                    let (c, b) = (c.clone(), b.clone());
                    async move {
                        send(&c, "GET", &format!("{b}/healthz"), None, None, None)
                            .await
                            .0
                    }
                },
            )
            .await,
        );
    }
    // Bookings at each level; `offset` keeps keys and slots of the runs apart.
    let mut booking_rows = Vec::new();
    for (run, &level) in levels.iter().enumerate() {
        let (c, b, p, cl) = (
            client.clone(),
            base.clone(),
            Arc::clone(&pros),
            Arc::clone(&clients),
        );
        let offset = run * MAX_REQUESTS;
        let name = format!("POST /v1/bookings ({level} conn)");
        results.push(scenario(&name, seconds, level, 201, move |i| {
            let (c, b, p, cl) = (c.clone(), b.clone(), Arc::clone(&p), Arc::clone(&cl));
            let i = i + offset;
            async move {
                // A distinct 30-minute slot per request: professional i % 100, slot i / 100.
                let start = day0 + chrono::Duration::minutes(30 * (i / PROFESSIONALS) as i64);
                let body = json!({
                    "professional_id": p[i % PROFESSIONALS],
                    "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "end": (start + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
                send(&c, "POST", &format!("{b}/v1/bookings"), Some(&cl[i % cl.len()]), Some(&format!("load-{i}")), Some(&body)).await.0
            }
        }).await);
        booking_rows.push(results.len() - 1);
    }

    {
        let (c, b, p, cl) = (
            client.clone(),
            base.clone(),
            Arc::clone(&pros),
            Arc::clone(&clients),
        );
        results.push(scenario(&format!("GET availability ({concurrency} conn)"), seconds, concurrency, 200, move |i| {
            let (c, b, p, cl) = (c.clone(), b.clone(), Arc::clone(&p), Arc::clone(&cl));
            async move {
                let from = day0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let to = (day0 + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let url = format!("{b}/v1/professionals/{}/availability?from={from}&to={to}&duration_minutes=60", p[i % PROFESSIONALS]);
                send(&c, "GET", &url, Some(&cl[i % cl.len()]), None, None).await.0
            }
        }).await);
    }

    // The server is done: stop it, so its pool's connections are closed before pgbench
    // opens its own (a pool of 64 plus 64 pgbench clients would exceed a default
    // `max_connections` of 100).
    let _ = stop.send(());
    let _ = server.await;

    // pgbench on the same database, after the HTTP scenarios.
    let mut pgbench: Vec<Outcome> = Vec::new();
    let mut availability_pgbench: Vec<Outcome> = Vec::new();
    let mut pgbench_note = None;
    if let Some(db) = &db {
        let wanted: Vec<usize> = match std::env::var("PGBENCH_CLIENTS") {
            Ok(v) if !v.trim().is_empty() => v
                .split([' ', ','])
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
            _ => vec![pool_size as usize],
        };
        match pgbench_binary() {
            None => {
                pgbench_note =
                    Some("pgbench not found: install postgresql-client or set PGBENCH".to_owned());
            }
            Some(binary) => {
                let script = pgbench_script(&sample_payload());
                let mut run = 0;
                for n in wanted.iter().copied() {
                    // One professional per pgbench client.
                    let n = n.clamp(1, PROFESSIONALS);
                    run += 1;
                    match pgbench_phase(db, &binary, n, seconds, run, "booking SQL", &script) {
                        Ok(o) => {
                            let (bookings, keys) = pgbench_effects(db, run).await;
                            let processed = i64::try_from(o.requests).unwrap_or(i64::MAX);
                            // A client cut off by -T may leave its last booking uncompleted.
                            if bookings < processed || keys < processed {
                                pgbench_note = Some(format!(
                                    "pgbench with {n} clients: {processed} transactions but \
                                     {bookings} bookings and {keys} completed keys"
                                ));
                            }
                            pgbench.push(o);
                        }
                        Err(e) => pgbench_note = Some(e),
                    }
                }
                let script = availability_script();
                for n in wanted {
                    run += 1;
                    let n = n.clamp(1, PROFESSIONALS);
                    match pgbench_phase(db, &binary, n, seconds, run, "availability SQL", &script) {
                        Ok(o) => availability_pgbench.push(o),
                        Err(e) => pgbench_note = Some(e),
                    }
                }
            }
        }
    }

    let ceiling = results[0].rps;
    let pool = if db.is_some() {
        format!(" db_pool={pool_size}")
    } else {
        String::new()
    };
    println!("store={store} seconds={seconds} concurrency={levels:?}{pool}");
    println!(
        "{:<36} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "scenario",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "/healthz",
        "cpu own",
        "cpu other"
    );
    for r in &results {
        println!(
            "{:<36} {:>9} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.3} {:>8.2} {:>9.2}",
            r.name,
            r.requests,
            r.errors,
            r.rps,
            ms(r.p50),
            ms(r.p99),
            r.rps / ceiling,
            r.cpu_own,
            r.cpu_other
        );
    }
    for r in pgbench.iter().chain(&availability_pgbench) {
        println!(
            "{:<36} {:>9} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8} {:>8} {:>9.2}",
            r.name,
            r.requests,
            r.errors,
            r.rps,
            ms(r.p50),
            ms(r.p99),
            "-",
            "-",
            r.cpu_other
        );
    }
    if let Some(best) = pgbench.iter().map(|o| o.rps).reduce(f64::max) {
        for &row in &booking_rows {
            let r = &results[row];
            println!(
                "{}: {:.0} / pgbench {best:.0} = {:.3}; p50 {:.1} ms, p99 {:.1} ms",
                r.name,
                r.rps,
                r.rps / best,
                ms(r.p50),
                ms(r.p99)
            );
        }
    }
    if let (Some(best), Some(avail)) = (
        availability_pgbench.iter().map(|o| o.rps).reduce(f64::max),
        results.last(),
    ) {
        println!(
            "{}: {:.0} / pgbench {best:.0} = {:.3}",
            avail.name,
            avail.rps,
            avail.rps / best
        );
    }
    if let Some(note) = pgbench_note {
        println!("note: {note}");
    }
    drop(db);
}
