//! Search benchmark through the server on PostgreSQL (issue 11): `GET /v1/professionals` at
//! `rows` professionals (default 1,000,000), uncached and with the in-process cache.
//!
//! ```text
//! cargo run --release -p booking-bench --bin search_load -- [rows] [seconds] [clients]
//! ```
//!
//! 1. A fresh database on `DATABASE_URL`'s server (dropped at the end) is seeded with
//!    `booking-postgres/bench/search_seed.sql` (300 cities, a few big and many small; 20
//!    categories; rates 20–200 €; 5% inactive). The secondary indexes of `professionals`
//!    are dropped for the insert and recreated from their own definitions afterwards
//!    (bulk builds are several times faster than maintaining a GiST and a trigram GIN row
//!    by row), then `ANALYZE`.
//! 2. The server runs in this process on a loopback port, configured from the environment
//!    like the real one ([`Config::from_env`], e.g. `BOOKING_DB_MAX_CONNECTIONS`) except
//!    for the listen address, the admin token, the database, no read replica and no Redis.
//!    Scenario `uncached`: a zero search-cache TTL, which turns the cache off. Scenario
//!    `cached`: the in-process (moka) cache, warmed by one pass over the query set first.
//! 3. `clients` (default 32) concurrent clients for `seconds` (default 10) per scenario run
//!    a fixed, shuffled set of searches (the same set in both scenarios), each job one of
//!    the kinds below; `uncached (1 client)` first runs the same jobs with one client, for
//!    the latency of a query that waits for nothing:
//!    * `radius+cat+rate`: 10 km around a centre + a category + a rate range, first page;
//!    * `text`: `q` of one or two terms (names, surnames, categories), first page;
//!    * `radius pages`: 10 km around a centre, pages 1–5 following `next_cursor`;
//!    * `cat+rate pages`: a category + a rate range in rate order, pages 1–5.
//!
//!    Centres are the locations of 64 active professionals picked by a hash of their id, so
//!    dense cities come up as often as they hold professionals. Every HTTP request is one
//!    sample; a page after the first is counted as `deep`.
//! 4. Per scenario: requests, errors, req/s, p50, p99, cores in use (this process: server
//!    and clients; everything else: PostgreSQL and any other work), then per query kind;
//!    last, the cached / uncached throughput ratio and the load average before and after.
//!
//! With `SEARCH_LOAD_EXPLAIN=1` it also prints `EXPLAIN (ANALYZE, BUFFERS)` of the
//! statement shapes the benchmark sends, with the densest city's centre, at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{CATEGORIES, CpuSample, load_average, ms, percentile};
use booking_postgres::test_support::TestDatabase;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use reference_server::{Application, Config};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

mod database;

use database::{centres, explain, seed};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ADMIN: &str = "search-load-admin-token-0123456789";
/// `q` values: common and rare names, surnames, two-term combinations, a category.
const TEXTS: [&str; 12] = [
    "anna",
    "schmidt",
    "kowalski",
    "anna schmidt",
    "zoë yilmaz",
    "paul berg",
    "yoga",
    "mia",
    "novak",
    "felix rossi",
    "ber",
    "tara nagy",
];
/// Rate ranges in cents.
const RATES: [(u32, u32); 3] = [(4000, 12000), (2000, 6000), (8000, 20000)];
/// Distinct centres of the radius queries.
const CENTRES: usize = 64;
/// Jobs in the shuffled job list (the cycle the clients walk).
const JOBS: usize = 4096;
/// Pages a paging job reads.
const PAGES: usize = 5;

/// One search job: a first page and, for paging jobs, the pages after it.
#[derive(Clone)]
struct Job {
    kind: &'static str,
    query: String,
    pages: usize,
}

/// A tiny deterministic generator (SplitMix64), so both scenarios see the same jobs.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn jobs(centres: &[(f64, f64)]) -> Vec<Job> {
    let mut mix = Mix(0x5EA2C4);
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut out = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let (lat, lng) = centres[mix.below(centres.len())];
        let cat = CATEGORIES[mix.below(CATEGORIES.len())];
        let (min, max) = RATES[mix.below(RATES.len())];
        let job = match n % 10 {
            0..=3 => Job {
                kind: "radius+cat+rate",
                query: format!(
                    "lat={lat}&lng={lng}&radius_km=10&category={cat}\
                     &min_rate_cents={min}&max_rate_cents={max}"
                ),
                pages: 1,
            },
            4 | 5 => Job {
                kind: "text",
                query: format!("q={}", enc(TEXTS[mix.below(TEXTS.len())])),
                pages: 1,
            },
            6 | 7 => Job {
                kind: "radius pages",
                query: format!("lat={lat}&lng={lng}&radius_km=10"),
                pages: PAGES,
            },
            _ => Job {
                kind: "cat+rate pages",
                query: format!("category={cat}&min_rate_cents={min}&max_rate_cents={max}"),
                pages: PAGES,
            },
        };
        out.push(job);
    }
    // Fisher-Yates with the same generator.
    for i in (1..out.len()).rev() {
        out.swap(i, mix.below(i + 1));
    }
    out
}

async fn get(client: &HttpClient, url: &str, token: &str) -> (u16, Value) {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match client.request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = match res.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return (0, Value::Null),
            };
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Creates a client through the API and returns its bearer token.
async fn client_token(client: &HttpClient, base: &str) -> String {
    let body = serde_json::json!({"name": "searcher", "email": "searcher@example.com"});
    let req = Request::post(format!("{base}/v1/clients"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("idempotency-key", "search-load-client")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let res = client.request(req).await.expect("create a client");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(status, 201, "{v}");
    v["api_token"].as_str().expect("api_token").to_owned()
}

/// Runs `job`'s pages; pushes `(label, latency)` per request; returns the errors.
async fn run_job(
    client: &HttpClient,
    base: &str,
    token: &str,
    job: &Job,
    samples: &mut Vec<(String, Duration)>,
) -> usize {
    let mut cursor: Option<String> = None;
    let mut errors = 0;
    for page in 0..job.pages {
        let url = match &cursor {
            None => format!("{base}/v1/professionals?{}", job.query),
            Some(c) => format!(
                "{base}/v1/professionals?{}&cursor={}",
                job.query,
                form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ),
        };
        let t = Instant::now();
        let (status, body) = get(client, &url, token).await;
        let label = if page == 0 {
            format!("{} (first)", job.kind)
        } else {
            format!("{} (deep)", job.kind)
        };
        samples.push((label, t.elapsed()));
        if status != 200 {
            if errors == 0 {
                eprintln!("{url}: {status} {body}");
            }
            errors += 1;
            break;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    errors
}

struct Outcome {
    requests: usize,
    errors: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
    cpu_own: f64,
    cpu_other: f64,
    by_kind: BTreeMap<String, Vec<Duration>>,
}

/// `clients` workers walk the job list from a shared counter for `seconds` (or once
/// through it when `seconds` is `None`: the cache warm-up).
async fn drive(
    client: &HttpClient,
    base: &str,
    token: &str,
    jobs: &Arc<Vec<Job>>,
    clients: usize,
    seconds: Option<u64>,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let cpu_before = CpuSample::now();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (client, base, token, jobs, next) = (
            client.clone(),
            base.to_owned(),
            token.to_owned(),
            Arc::clone(jobs),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match deadline {
                    Some(d) if Instant::now() >= d => break,
                    None if i >= jobs.len() => break,
                    _ => {}
                }
                errors +=
                    run_job(&client, &base, &token, &jobs[i % jobs.len()], &mut samples).await;
            }
            (samples, errors)
        }));
    }
    let mut all = Vec::new();
    let mut by_kind: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut errors = 0;
    for w in workers {
        let (samples, e) = w.await.unwrap();
        errors += e;
        for (label, d) in samples {
            all.push(d);
            by_kind.entry(label).or_default().push(d);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_own, cpu_other) = CpuSample::now().cores_since(&cpu_before);
    all.sort_unstable();
    for v in by_kind.values_mut() {
        v.sort_unstable();
    }
    Outcome {
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        cpu_own,
        cpu_other,
        by_kind,
    }
}

/// Starts the server on `db`; the search cache is off unless `cached`.
async fn start(
    db: &TestDatabase,
    cached: bool,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
    u32,
) {
    let base_config = Config::from_env().expect("configuration");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some(ADMIN.into()),
        database_url: Some(db.url()),
        database_read_url: None,
        redis_url: None,
        search_cache_ttl: if cached {
            base_config.search_cache_ttl
        } else {
            Duration::ZERO
        },
        ..base_config
    };
    let pool = config.db_max_connections;
    let app = Application::build(config).await.expect("server");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (base, stop, server, pool)
}

fn print_outcome(name: &str, o: &Outcome) {
    println!(
        "{:<28} {:>9} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2}",
        name,
        o.requests,
        o.errors,
        o.rps,
        ms(o.p50),
        ms(o.p99),
        o.cpu_own,
        o.cpu_other
    );
    for (kind, lat) in &o.by_kind {
        println!(
            "  {:<26} {:>9} {:>7} {:>9} {:>8.2} {:>8.2}",
            kind,
            lat.len(),
            "",
            "",
            ms(percentile(lat, 0.50)),
            ms(percentile(lat, 0.99))
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);

    let load_before = load_average();
    let db = TestDatabase::create().await.expect("postgres reachable");
    let seeded_in = seed(&db, rows).await;
    let active = db
        .query_i64("SELECT count(*) FROM professionals WHERE is_active")
        .await
        .expect("count");
    let centres = centres(&db).await;
    let jobs = Arc::new(jobs(&centres));
    let http: HttpClient = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(clients * 2)
        .build_http();

    let (base, stop, server, pool) = start(&db, false).await;
    // Search is open to any caller: one client's token (it stays valid on the second server).
    let token = client_token(&http, &base).await;
    let single = drive(&http, &base, &token, &jobs, 1, Some(seconds)).await;
    let uncached = drive(&http, &base, &token, &jobs, clients, Some(seconds)).await;
    let _ = stop.send(());
    let _ = server.await;

    let (base, stop, server, _) = start(&db, true).await;
    let warm = drive(&http, &base, &token, &jobs, clients, None).await;
    let cached = drive(&http, &base, &token, &jobs, clients, Some(seconds)).await;
    let _ = stop.send(());
    let _ = server.await;
    let load_after = load_average();

    println!(
        "rows={rows} active={active} seeded_in={:.1}s seconds={seconds} clients={clients} \
         db_pool={pool} jobs={} centres={}",
        seeded_in.as_secs_f64(),
        jobs.len(),
        centres.len()
    );
    println!(
        "{:<28} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms", "cpu own", "cpu other"
    );
    print_outcome("uncached (1 client)", &single);
    print_outcome("uncached", &uncached);
    print_outcome("cached (warm-up pass)", &warm);
    print_outcome("cached (in-process moka)", &cached);
    println!(
        "cached / uncached throughput: {:.0} / {:.0} = {:.1}x",
        cached.rps,
        uncached.rps,
        cached.rps / uncached.rps
    );
    println!("load average: before {load_before}, after {load_after}");

    if std::env::var("SEARCH_LOAD_EXPLAIN").is_ok_and(|v| v == "1") {
        // The densest city's centre: the mean location of the most common rounded point.
        let mut conn = PgConnection::connect_with(&db.connect_options())
            .await
            .expect("connect");
        let (lat, lng): (f64, f64) = sqlx::query_as(
            "SELECT avg(lat), avg(lng) FROM professionals \
             GROUP BY round(lat::numeric, 0), round(lng::numeric, 0) \
             ORDER BY count(*) DESC LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await
        .expect("densest city");
        let _ = conn.close().await;
        println!("\n### Plans at {rows} rows, 10 km around ({lat:.6}, {lng:.6})");
        explain(&db, lat, lng).await;
    }
    drop(db);
}
