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
//!    for the listen address, the admin token, the database and no read replica.
//!    Scenario `uncached`: a zero search-cache TTL, which turns the cache off. Scenario
//!    `cached`: the in-process (moka) cache, warmed by one pass over the query set first.
//!    With `REDIS_URL` set, `cached (Redis)` then does the same with the pages in Redis
//!    (under a key prefix of this run's own; the keys expire with the cache's TTL).
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
//!    sample; a page after the first is counted as `deep`. A client reads only the page's
//!    `next_cursor` from a 200 (its CPU is taken from the same two cores).
//!
//!    Two ceilings run in the same process, with the same clients and jobs:
//!    * `GET /healthz (HTTP ceiling)`: the server's no-op route instead of each search
//!      (same layers, same client, no store): the most requests HTTP alone carries here,
//!      which bounds the cached path;
//!    * `store only (no HTTP)`: `PgStore::search_professionals` called directly by
//!      `clients` tasks, with the server's pool size: what PostgreSQL and the driver give
//!      with no server in the way, which bounds the uncached path.
//! 4. Per scenario: requests, errors, req/s, p50, p99, cores in use (this process: server
//!    and clients; everything else: PostgreSQL and any other work), then per query kind;
//!    last, the cached / uncached throughput ratio, the ratios to the ceilings, the
//!    throughput a p50 of 5 ms needs at this many clients, and the load average before and
//!    after.
//!
//! With `SEARCH_LOAD_EXPLAIN=1` it also prints `EXPLAIN (ANALYZE, BUFFERS)` of the
//! statement shapes the benchmark sends, with the densest city's centre, at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use booking_bench::{CATEGORIES, CpuSample, load_average, ms, percentile};
use booking_core::Category;
use booking_core::search::{GeoFilter, TextQuery};
use booking_core::store::{DirectoryStore, ProfessionalQuery};
use booking_postgres::PgStore;
use booking_postgres::test_support::TestDatabase;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use reference_server::{Application, Config};
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
/// Rows per page (the server's default `limit`).
const PAGE: u32 = 20;

/// One search job: a first page and, for paging jobs, the pages after it.
#[derive(Clone)]
struct Job {
    kind: &'static str,
    /// The search as `GET /v1/professionals`' query string.
    query: String,
    /// The same search as the store takes it (the `store only` scenario).
    search: ProfessionalQuery,
    pages: usize,
}

/// A page's `next_cursor`, found by its key from the end of the body instead of by parsing
/// the page (which cost the clients more CPU than a cached answer costs the server): the
/// key cannot occur inside a string value, where JSON escapes the quotes.
fn next_cursor(body: &[u8]) -> Result<Option<String>, String> {
    const KEY: &[u8] = b"\"next_cursor\":";
    let at = body
        .windows(KEY.len())
        .rposition(|w| w == KEY)
        .ok_or("not a page: no next_cursor")?;
    let rest = &body[at + KEY.len()..];
    if rest.starts_with(b"null") {
        return Ok(None);
    }
    let rest = rest
        .strip_prefix(b"\"")
        .ok_or("next_cursor is neither null nor a string")?;
    let end = rest
        .iter()
        .position(|b| *b == b'"')
        .ok_or("next_cursor does not end")?;
    Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
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
        let mut search = ProfessionalQuery::all(PAGE);
        let near = || Some(GeoFilter::new(lat, lng, 10.0).expect("a valid radius"));
        let category = || Some(Category::parse(cat).expect("a category slug"));
        let job = match n % 10 {
            0..=3 => {
                search.near = near();
                search.category = category();
                search.min_rate_cents = Some(i64::from(min));
                search.max_rate_cents = Some(i64::from(max));
                Job {
                    kind: "radius+cat+rate",
                    query: format!(
                        "lat={lat}&lng={lng}&radius_km=10&category={cat}\
                         &min_rate_cents={min}&max_rate_cents={max}"
                    ),
                    search,
                    pages: 1,
                }
            }
            4 | 5 => {
                let text = TEXTS[mix.below(TEXTS.len())];
                search.text = Some(TextQuery::parse(text).expect("a text query"));
                Job {
                    kind: "text",
                    query: format!("q={}", enc(text)),
                    search,
                    pages: 1,
                }
            }
            6 | 7 => {
                search.near = near();
                Job {
                    kind: "radius pages",
                    query: format!("lat={lat}&lng={lng}&radius_km=10"),
                    search,
                    pages: PAGES,
                }
            }
            _ => {
                search.category = category();
                search.min_rate_cents = Some(i64::from(min));
                search.max_rate_cents = Some(i64::from(max));
                Job {
                    kind: "cat+rate pages",
                    query: format!("category={cat}&min_rate_cents={min}&max_rate_cents={max}"),
                    search,
                    pages: PAGES,
                }
            }
        };
        out.push(job);
    }
    // Fisher-Yates with the same generator.
    for i in (1..out.len()).rev() {
        out.swap(i, mix.below(i + 1));
    }
    out
}

/// One `GET`: the status and, for a 200, the page's `next_cursor` (the only field a
/// client needs to go on: the clients' CPU is taken from the server and PostgreSQL on a
/// shared machine, so they read no more); for anything else the body, to report.
async fn get(client: &HttpClient, url: &str, token: &str) -> (u16, Result<Option<String>, String>) {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = match fetch(client, req).await {
        Ok(answer) => answer,
        Err(e) => return (0, Err(e)),
    };
    if status != 200 {
        return (status, Err(String::from_utf8_lossy(&body).into_owned()));
    }
    match next_cursor(&body) {
        Ok(next) => (status, Ok(next)),
        Err(e) => (0, Err(e)),
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
    let (status, bytes) = fetch(client, req).await.expect("create a client");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert_eq!(status, 201, "{v}");
    v["api_token"].as_str().expect("api_token").to_owned()
}

/// What a scenario's clients send their jobs to.
#[derive(Clone)]
enum Target {
    /// `GET /v1/professionals` on the server at `base`, as the client with `token`.
    Search {
        client: HttpClient,
        base: String,
        token: String,
    },
    /// The store's `search_professionals`, called directly: no HTTP, no JSON, no cache.
    Store(Arc<PgStore>),
    /// `GET /healthz` on the server at `base` for every page: the HTTP ceiling.
    Healthz { client: HttpClient, base: String },
}

/// Runs `job`'s pages against `target`; pushes `(label, latency)` per request (a page
/// after the first is `deep`); returns the errors.
async fn run_job(target: &Target, job: &Job, samples: &mut Vec<(String, Duration)>) -> usize {
    let mut search = job.search.clone();
    let mut cursor: Option<String> = None;
    let mut errors = 0;
    for page_no in 0..job.pages {
        let t = Instant::now();
        let (next, failure) = match target {
            Target::Search {
                client,
                base,
                token,
            } => {
                let url = match &cursor {
                    None => format!("{base}/v1/professionals?{}", job.query),
                    Some(c) => format!(
                        "{base}/v1/professionals?{}&cursor={}",
                        job.query,
                        form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
                    ),
                };
                match get(client, &url, token).await {
                    (_, Ok(next)) => {
                        cursor = next;
                        (cursor.is_some(), None)
                    }
                    (status, Err(body)) => (false, Some(format!("{url}: {status} {body}"))),
                }
            }
            Target::Store(store) => match store.search_professionals(&search).await {
                Ok(page) => {
                    search.after = page.next_cursor;
                    (page.next_cursor.is_some(), None)
                }
                Err(e) => (false, Some(format!("store: {e}"))),
            },
            Target::Healthz { client, base } => {
                let url = format!("{base}/healthz");
                match get_status(client, &url).await {
                    200 => (page_no + 1 < job.pages, None),
                    status => (false, Some(format!("{url}: {status}"))),
                }
            }
        };
        let label = if page_no == 0 {
            format!("{} (first)", job.kind)
        } else {
            format!("{} (deep)", job.kind)
        };
        samples.push((label, t.elapsed()));
        if let Some(failure) = failure {
            if errors == 0 {
                eprintln!("{failure}");
            }
            errors += 1;
        }
        if !next {
            break;
        }
    }
    errors
}

/// Sends `req` and reads the whole answer: its status and body.
async fn fetch(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

/// The status of one `GET` (0 when there is none); the body is read and dropped.
async fn get_status(client: &HttpClient, url: &str) -> u16 {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    fetch(client, req).await.map_or(0, |(status, _)| status)
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
    target: &Target,
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
        let (target, jobs, next) = (target.clone(), Arc::clone(jobs), Arc::clone(&next));
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
                errors += run_job(&target, &jobs[i % jobs.len()], &mut samples).await;
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

/// The search cache of a scenario's server.
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    Off,
    /// In-process (moka).
    Local,
    /// Redis at `REDIS_URL`, under a prefix of this run's own.
    Redis,
}

/// On a server with `cache`: the warm-up pass over the jobs, then the timed run.
async fn cached_scenarios(
    db: &TestDatabase,
    cache: Cache,
    target: impl Fn(&str) -> Target,
    jobs: &Arc<Vec<Job>>,
    clients: usize,
    seconds: u64,
) -> (Outcome, Outcome) {
    let (base, stop, server, _) = start(db, cache).await;
    let target = target(&base);
    let warm = drive(&target, jobs, clients, None).await;
    let cached = drive(&target, jobs, clients, Some(seconds)).await;
    let _ = stop.send(());
    let _ = server.await;
    (warm, cached)
}

/// Starts the server on `db` with `cache`.
async fn start(
    db: &TestDatabase,
    cache: Cache,
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
        redis_url: match cache {
            Cache::Redis => base_config.redis_url.clone(),
            Cache::Off | Cache::Local => None,
        },
        redis_prefix: format!("search-load-{}:", std::process::id()),
        search_cache_ttl: if cache == Cache::Off {
            Duration::ZERO
        } else {
            base_config.search_cache_ttl
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

/// A scenario's totals line.
fn print_totals(name: &str, o: &Outcome) {
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
}

/// A scenario's totals line, then one line per query kind.
fn print_outcome(name: &str, o: &Outcome) {
    print_totals(name, o);
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

    let (base, stop, server, pool) = start(&db, Cache::Off).await;
    // Search is open to any caller: one client's token (it stays valid on the second server).
    let token = client_token(&http, &base).await;
    let search = |base: &str| Target::Search {
        client: http.clone(),
        base: base.to_owned(),
        token: token.clone(),
    };
    let healthz = drive(
        &Target::Healthz {
            client: http.clone(),
            base: base.clone(),
        },
        &jobs,
        clients,
        Some(seconds),
    )
    .await;
    let single = drive(&search(&base), &jobs, 1, Some(seconds)).await;
    let uncached = drive(&search(&base), &jobs, clients, Some(seconds)).await;
    let _ = stop.send(());
    let _ = server.await;

    // The store with the server's pool size, called directly.
    let store = PgStore::connect(&booking_postgres::PgConfig {
        max_connections: pool,
        ..booking_postgres::PgConfig::from_url(db.url())
    })
    .await
    .expect("store");
    let store_only = drive(
        &Target::Store(Arc::new(store)),
        &jobs,
        clients,
        Some(seconds),
    )
    .await;

    let (warm, cached) = cached_scenarios(&db, Cache::Local, search, &jobs, clients, seconds).await;

    // With REDIS_URL, the same two scenarios with the pages in Redis.
    let redis = if Config::from_env()
        .expect("configuration")
        .redis_url
        .is_some()
    {
        Some(cached_scenarios(&db, Cache::Redis, search, &jobs, clients, seconds).await)
    } else {
        None
    };
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
    print_totals("GET /healthz (HTTP ceiling)", &healthz);
    print_outcome("uncached (1 client)", &single);
    print_outcome("uncached", &uncached);
    print_outcome("store only (no HTTP)", &store_only);
    print_outcome("cached (warm-up pass)", &warm);
    print_outcome("cached (in-process moka)", &cached);
    if let Some((warm, cached)) = &redis {
        print_totals("cached, Redis (warm-up)", warm);
        print_outcome("cached (Redis)", cached);
    }
    let ratio = |name: &str, a: &Outcome, b: &Outcome, what: &str| {
        println!(
            "{name}: {:.0} / {:.0} = {:.2}{what}",
            a.rps,
            b.rps,
            a.rps / b.rps
        );
    };
    ratio("cached / uncached throughput", &cached, &uncached, "x");
    if let Some((_, on_redis)) = &redis {
        ratio("cached (Redis) / uncached", on_redis, &uncached, "x");
    }
    ratio("uncached / store only", &uncached, &store_only, "");
    ratio("cached / GET /healthz", &cached, &healthz, "");
    println!(
        "p50 <= 5 ms at {clients} clients that wait for each answer needs {:.0} req/s \
         ({clients} / 5 ms)",
        clients as f64 / 0.005
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

#[cfg(test)]
mod tests {
    use super::next_cursor;

    #[test]
    fn next_cursor_is_read_from_the_page_key_only() {
        let last = br#"{"data":[{"name":"A \"next_cursor\":\"x\""}],"next_cursor":null}"#;
        assert_eq!(next_cursor(last), Ok(None));
        let more = br#"{"data":[],"next_cursor":"AbC-_9"}"#;
        assert_eq!(next_cursor(more), Ok(Some("AbC-_9".into())));
        assert!(next_cursor(br#"{"type":"about:blank"}"#).is_err());
        assert!(next_cursor(br#"{"next_cursor":17}"#).is_err());
        assert!(next_cursor(br#"{"next_cursor":"open"#).is_err());
    }
}
