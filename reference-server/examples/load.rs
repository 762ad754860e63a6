//! Load driver: requests per second and latency of the reference server, against a
//! ceiling (`GET /healthz`, a no-op route of the same server) measured in the same run.
//!
//! ```text
//! cargo run --release -p reference-server --example load -- [memory|postgres] [seconds] [concurrency]
//! ```
//!
//! Scenarios, each for `seconds` (default 5) at `concurrency` (default 64) connections:
//! `GET /healthz` (ceiling), `POST /v1/bookings` with a unique key and a free slot per
//! request, and `GET /v1/professionals/{id}/availability` over one day. The server runs
//! in this process on a loopback port (PostgreSQL: a fresh database on `DATABASE_URL`'s
//! server). Bounded in time and count; loopback only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{Timelike, Utc};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use reference_server::{Application, Config};
use serde_json::{Value, json};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ADMIN: &str = "load-admin-token-0123456789";
const PROFESSIONALS: usize = 100;
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
    name: &'static str,
    requests: usize,
    errors: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `make(i)` requests from `concurrency` workers for `seconds`.
async fn scenario<F, Fut>(
    name: &'static str,
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
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        name,
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = args.get(1).map_or("memory", String::as_str).to_owned();
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);

    let db = if store == "postgres" {
        Some(
            booking_postgres::test_support::TestDatabase::create()
                .await
                .expect("postgres reachable"),
        )
    } else {
        None
    };
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some(ADMIN.into()),
        database_url: db.as_ref().map(|d| d.url()),
        ..Config::default()
    };
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
    for i in 0..16 {
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
    {
        let (c, b, p, cl) = (
            client.clone(),
            base.clone(),
            Arc::clone(&pros),
            Arc::clone(&clients),
        );
        results.push(scenario("POST /v1/bookings", seconds, concurrency, 201, move |i| {
            let (c, b, p, cl) = (c.clone(), b.clone(), Arc::clone(&p), Arc::clone(&cl));
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
    }
    {
        let (c, b, p, cl) = (
            client.clone(),
            base.clone(),
            Arc::clone(&pros),
            Arc::clone(&clients),
        );
        results.push(scenario("GET availability (1 day, 60 min)", seconds, concurrency, 200, move |i| {
            let (c, b, p, cl) = (c.clone(), b.clone(), Arc::clone(&p), Arc::clone(&cl));
            async move {
                let from = day0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let to = (day0 + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let url = format!("{b}/v1/professionals/{}/availability?from={from}&to={to}&duration_minutes=60", p[i % PROFESSIONALS]);
                send(&c, "GET", &url, Some(&cl[i % cl.len()]), None, None).await.0
            }
        }).await);
    }

    let ceiling = results[0].rps;
    println!("store={store} seconds={seconds} concurrency={concurrency}");
    println!(
        "{:<36} {:>9} {:>7} {:>10} {:>10} {:>10} {:>8}",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms", "ratio"
    );
    for r in &results {
        println!(
            "{:<36} {:>9} {:>7} {:>10.0} {:>10.2} {:>10.2} {:>8.3}",
            r.name,
            r.requests,
            r.errors,
            r.rps,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.rps / ceiling
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    drop(db);
}
