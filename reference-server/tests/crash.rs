//! Crash and restart: the server binary on PostgreSQL, killed with SIGKILL several times
//! under load and started again on the same database and address, while its clients keep
//! retrying with the same idempotency keys.
//!
//! 32 clients book a few hot slots of three professionals, cancel and reschedule their
//! bookings, and the admin creates clients, each request retried with its key (after a
//! refused connection, a reset, a 5xx or a 409 "in flight") until it gets a final answer.
//! A request that still has none after 2 s (its key is held by an attempt that died with
//! the process) is retried at the end, once the leases of the dead attempts have passed.
//! The idempotency lease is 60 s and not configurable, so by default the test moves the
//! `locked_until` of every key in flight into the past (as if the lease had run out);
//! the long mode waits for the real leases instead.
//!
//! Checked afterwards against the database: no duplicate bookings or subjects (every 201
//! is exactly one row, every row has its 201, one row per subject request), nothing
//! acknowledged is lost (each 2xx status is the row's or one that may follow it), every
//! answer of one request is the same bytes, the outbox matches the rows, no two active
//! bookings overlap, and no key is left in flight.
//!
//! The run prints its seed and counts (`-- --nocapture`). `BOOKING_TORTURE_SEED=<n>`
//! replays a seed's choices; `BOOKING_TORTURE_SCALE=<n>` (long mode) kills the server
//! 3 x n times and waits for the real 60 s leases.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::invariants::{self, Exchange, Kind, Ledger};
use common::rng::{self, Rng};
use common::wire::{self, Call, Reply};
use common::{ADMIN, HttpClient, at, http_client, professional_body, str_of, ts};
use serde_json::{Value, json};

const TOKEN_SECRET: &str = "crash-test-token-secret-0123456789abcdef";
const CLIENTS: usize = 32;
const PROFESSIONALS: usize = 3;
/// Start offsets (minutes) of the hot slots; bookings last an hour.
const STARTS: [i64; 8] = [0, 30, 60, 90, 120, 150, 180, 210];
/// How long a request is retried during the load before it waits for the end.
const PATIENCE: Duration = Duration::from_secs(2);

/// The server process.
struct Server {
    child: Child,
    base: String,
    panics: Arc<AtomicUsize>,
}

impl Server {
    /// Starts the binary on `database_url`, listening on `port` of 127.0.0.1, and waits
    /// until it is ready.
    async fn start(database_url: &str, port: u16, http: &HttpClient) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
            .env("DATABASE_URL", database_url)
            .env("BOOKING_LISTEN", format!("127.0.0.1:{port}"))
            .env("BOOKING_ADMIN_TOKEN", ADMIN)
            .env("BOOKING_TOKEN_SECRET", TOKEN_SECRET)
            .env("RUST_LOG", "warn")
            .env_remove("STRIPE_SECRET_KEY")
            .env_remove("NATS_URL")
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_READ_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let panics = Arc::new(AtomicUsize::new(0));
        let seen = panics.clone();
        // Reads the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("panicked") {
                    seen.fetch_add(1, Ordering::Relaxed);
                    eprintln!("server: {line}");
                }
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let ready = Call {
            method: "GET",
            path: "/readyz",
            token: None,
            key: None,
            body: None,
            headers: &[],
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !wire::send(http, &base, &ready)
            .await
            .is_ok_and(|r| r.status == 200)
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited at start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the server is not ready after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            base,
            panics,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) -> usize {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap the server");
        self.panics.load(Ordering::Relaxed)
    }
}

/// A request that had no final answer during the load.
#[derive(Debug, Clone)]
struct Unanswered {
    kind: Kind,
    token: String,
    key: String,
    path: String,
    body: Value,
    target: Option<String>,
}

/// What every client task shares.
struct Shared {
    base: String,
    http: HttpClient,
    ledger: Ledger,
    professionals: Vec<String>,
    stop: AtomicBool,
    unanswered: Mutex<Vec<Unanswered>>,
}

impl Shared {
    /// Sends `req` with its key until a final answer, or until `patience` has passed.
    async fn until_answered(&self, req: &Unanswered, patience: Duration) -> Option<Reply> {
        let body = serde_json::to_vec(&req.body).unwrap();
        let deadline = Instant::now() + patience;
        loop {
            let call = Call::post(&req.path, &req.token, &req.key, &body);
            let outcome = wire::send(&self.http, &self.base, &call).await;
            self.ledger.record(Exchange {
                kind: req.kind,
                scope: req.token.clone(),
                key: req.key.clone(),
                body: body.clone(),
                target: req.target.clone(),
                outcome: outcome.clone(),
            });
            if let Some(r) = outcome
                .ok()
                .filter(|r| r.is_final() && r.code() != "idempotency_request_in_flight")
            {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a request during the load; one left unanswered is kept for the end.
    async fn run(
        &self,
        kind: Kind,
        token: &str,
        path: String,
        body: Value,
        target: Option<&str>,
    ) -> Option<Reply> {
        let req = Unanswered {
            kind,
            token: token.to_owned(),
            key: uuid::Uuid::now_v7().to_string(),
            path,
            body,
            target: target.map(str::to_owned),
        };
        let answer = self.until_answered(&req, PATIENCE).await;
        if answer.is_none() {
            self.unanswered.lock().unwrap().push(req);
        }
        answer
    }
}

impl Shared {
    /// The admin creates a client named `name`.
    async fn create_client(&self, name: &str) -> Option<Reply> {
        let body = json!({"name": name, "email": format!("{name}@example.com")});
        let path = "/v1/clients".to_owned();
        self.run(Kind::CreateSubject, ADMIN, path, body, Some("clients"))
            .await
    }
}

async fn client_task(s: Arc<Shared>, mut rng: Rng, token: String) {
    let mut mine: Vec<(String, i64)> = Vec::new();
    while !s.stop.load(Ordering::Relaxed) {
        match rng.below(100) {
            0..5 => {
                let _ = s.create_client(&format!("n{}", rng.next_u64())).await;
            }
            5..20 if !mine.is_empty() => {
                let (id, _) = mine.swap_remove(rng.below(mine.len()));
                let path = format!("/v1/bookings/{id}/cancel");
                let _ = s
                    .run(Kind::Cancel, &token, path, json!({}), Some(&id))
                    .await;
            }
            20..35 if !mine.is_empty() => {
                let i = rng.below(mine.len());
                let (id, current) = mine[i].clone();
                let to = *rng.pick(&STARTS);
                if to != current {
                    let path = format!("/v1/bookings/{id}/reschedule");
                    let body = json!({"start": ts(at(to)), "end": ts(at(to + 60))});
                    let r = s.run(Kind::Reschedule, &token, path, body, Some(&id)).await;
                    if r.is_some_and(|r| r.status == 200) {
                        mine[i].1 = to;
                    }
                }
            }
            _ => {
                let pro = rng.pick(&s.professionals).clone();
                let start = *rng.pick(&STARTS);
                let body = json!({"professional_id": pro, "start": ts(at(start)), "end": ts(at(start + 60))});
                let r = s
                    .run(
                        Kind::CreateBooking,
                        &token,
                        "/v1/bookings".into(),
                        body,
                        None,
                    )
                    .await;
                if let Some(r) = r.filter(|r| r.status == 201) {
                    mine.push((str_of(&r.json["id"]), start));
                }
            }
        }
    }
}

/// One row per subject request, and every subject request got its 201.
async fn subjects_unique(pool: &sqlx::PgPool, exchanges: &[Exchange]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut requests: BTreeMap<(&str, &str), Vec<&Reply>> = BTreeMap::new();
    for e in exchanges.iter().filter(|e| e.kind == Kind::CreateSubject) {
        let answers = requests
            .entry((e.target.as_deref().unwrap_or(""), e.key.as_str()))
            .or_default();
        answers.extend(e.answer());
    }
    for table in ["clients", "professionals"] {
        let mut ids: Vec<&str> = Vec::new();
        for ((_, key), answers) in requests.iter().filter(|((t, _), _)| *t == table) {
            match answers.iter().find(|r| r.status == 201) {
                Some(r) => ids.push(r.json["id"].as_str().unwrap_or_default()),
                None => bad.push(format!("{table} request {key} never got its 201")),
            }
        }
        let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .unwrap();
        if distinct.len() != ids.len() || rows != ids.len() as i64 {
            bad.push(format!(
                "{table}: {} requests answered {} ids, {rows} rows",
                ids.len(),
                distinct.len()
            ));
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_under_load() {
    let Some(db) = booking_postgres::test_support::TestDatabase::create().await else {
        return; // SKIPPED was printed loudly
    };
    let seed = rng::seed();
    let scale = rng::scale();
    let kills = 3 * scale;
    eprintln!("crash: seed {seed} (BOOKING_TORTURE_SEED), {CLIENTS} clients, {kills} kills");
    let mut rng = Rng::new(seed);
    let url = db.url();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let http = http_client();
    let mut server = Server::start(&url, port, &http).await;
    let mut shared = Shared {
        base: server.base.clone(),
        http,
        ledger: Ledger::default(),
        professionals: Vec::new(),
        stop: AtomicBool::new(false),
        unanswered: Mutex::new(Vec::new()),
    };
    let patience = Duration::from_secs(30);
    for i in 0..PROFESSIONALS {
        let body = professional_body("massage", 6000);
        let r = shared
            .run(
                Kind::CreateSubject,
                ADMIN,
                "/v1/professionals".into(),
                body,
                Some("professionals"),
            )
            .await
            .expect("server up");
        assert_eq!(r.status, 201, "{}", r.json);
        let (id, token) = (str_of(&r.json["id"]), str_of(&r.json["api_token"]));
        wire::open_all_week(&shared.http, &server.base, &id, &token, 15 * (i as i64 % 2)).await;
        shared.professionals.push(id);
    }
    let mut client_of = HashMap::new();
    for i in 0..CLIENTS {
        let r = shared
            .create_client(&format!("c{i}"))
            .await
            .expect("server up");
        client_of.insert(str_of(&r.json["api_token"]), str_of(&r.json["id"]));
    }
    assert!(
        shared.unanswered.lock().unwrap().is_empty(),
        "set-up requests answered"
    );

    let started = Instant::now();
    let shared = Arc::new(shared);
    let tasks: Vec<_> = client_of
        .keys()
        .map(|token| tokio::spawn(client_task(shared.clone(), rng.fork(), token.clone())))
        .collect();
    let mut panics = 0;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(1500 + rng.below(1500) as u64)).await;
        panics += server.kill();
        server = Server::start(&url, port, &shared.http).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    let load = started.elapsed();

    // The attempts that died with the server hold their keys until their leases pass.
    let pool = sqlx::PgPool::connect_with(db.connect_options())
        .await
        .expect("connect");
    let held = invariants::keys_in_flight(&pool).await;
    if scale > 1 {
        let wait: f64 = sqlx::query_scalar(
            "SELECT coalesce(extract(epoch FROM max(locked_until) - now())::float8, 0) \
             FROM idempotency_keys WHERE state = 'in_flight'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0) + 1.0)).await;
    } else {
        sqlx::query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE state = 'in_flight'")
            .execute(&pool)
            .await
            .unwrap();
    }
    let late = shared.unanswered.lock().unwrap().clone();
    let mut violations = Vec::new();
    for req in &late {
        if shared.until_answered(req, patience).await.is_none() {
            violations.push(format!(
                "key {} has no final answer after its lease",
                req.key
            ));
        }
    }
    panics += server.kill();

    let exchanges = shared.ledger.all();
    let mut findings = invariants::check_bookings(&pool, &exchanges, &client_of).await;
    if findings.explained != 0 {
        let n = findings.explained;
        findings
            .violations
            .push(format!("{n} bookings whose request never got an answer"));
    }
    findings
        .violations
        .extend(subjects_unique(&pool, &exchanges).await);
    if panics != 0 {
        findings
            .violations
            .push(format!("the server panicked {panics} times"));
    }
    eprintln!(
        "crash: seed {seed}: {} attempts in {load:?}, {kills} SIGKILLs; {held} keys held by dead \
         attempts, {} requests answered only after the leases",
        exchanges.len(),
        late.len()
    );
    invariants::report(seed, &exchanges, &[], &findings);
}
