//! PostgreSQL restarts under load: while the database is down the server answers 503
//! `store_unavailable` (problem+json, `Retry-After`), never a 500 and never a hang, and
//! once it is back the same server process serves again without a restart.
//!
//! The shared test server must keep running for everyone else, so this test starts a
//! PostgreSQL of its own (`booking_postgres::test_support::private_server`: `initdb` on a
//! free port in a temporary directory) and stops it twice, once `fast` (sessions are
//! terminated: 57P01) and once `immediate` (like a crash: connections reset, recovery from
//! the WAL on restart). Without PostgreSQL's server binaries it prints `SKIPPED` and
//! passes, unless it runs in CI (`CI` true) or `BOOKING_REQUIRE_PRIVATE_POSTGRES` is true.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use booking_postgres::test_support::{
    self,
    private_server::{PrivateServer, StopMode},
};
use common::{
    ADMIN, HttpClient, booking_body, http, http_client, open_schedule, professional_body, str_of,
};
use http_body_util::BodyExt;
use reference_server::{Application, Config};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::{Mutex, oneshot};

/// Clients writing bookings at once.
const CLIENTS: usize = 4;
/// Slots each client may book (5 minutes long, back to back, inside the schedule's 60-day
/// horizon): more than a fast machine books before the last outage is over, so the load
/// runs until it is told to stop.
const SLOTS_PER_CLIENT: i64 = 4_000;
/// Length of each booking and the schedule's slot step, minutes.
const SLOT_MINUTES: i64 = 5;
/// No answer may take longer: the pool's acquire timeout (5 s) plus slack for a loaded
/// machine. A request that hangs on a dead connection would exceed it.
const LATENCY_BOUND: Duration = Duration::from_secs(15);
/// How long the database stays down in each round.
const DOWNTIME: Duration = Duration::from_secs(7);

/// One answer of the load.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    latency: Duration,
    /// When it was sent, relative to the start of the load.
    sent: Duration,
}

/// A POST of a booking with a fresh idempotency key, bounded by [`LATENCY_BOUND`] (plus a
/// margin so that an over-long answer is measured rather than cut).
async fn post_booking(client: &HttpClient, base: &str, token: &str, body: &Value) -> Answer {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("{base}/v1/bookings"))
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(body).expect("json"),
        )))
        .expect("request");
    let started = Instant::now();
    let res = tokio::time::timeout(LATENCY_BOUND * 2, async {
        let res = client.request(req).await.expect("server reachable");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (status, content_type, bytes)
    })
    .await
    .expect("the server answers instead of hanging");
    Answer {
        status: res.0,
        content_type: res.1,
        body: serde_json::from_slice(&res.2).unwrap_or(Value::Null),
        latency: started.elapsed(),
        sent: Duration::ZERO,
    }
}

/// The database is down from `down` to `up` (relative to the start of the load).
struct Outage {
    down: Duration,
    up: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_answer_503_and_the_server_recovers_by_itself() {
    let pg = match PrivateServer::start("max_connections = 50", "") {
        Ok(pg) => pg,
        Err(e)
            if !(test_support::in_ci()
                || test_support::env_flag("BOOKING_REQUIRE_PRIVATE_POSTGRES")) =>
        {
            test_support::report_skipped(&format!("cannot start a private PostgreSQL: {e}"));
            return;
        }
        Err(e) => panic!("cannot start a private PostgreSQL: {e}"),
    };
    let mut admin = sqlx::PgConnection::connect(&pg.url("postgres"))
        .await
        .expect("connect to the private server");
    sqlx::query("CREATE DATABASE booking")
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.expect("close");

    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some(ADMIN.into()),
        database_url: Some(pg.url("booking")),
        sweep_interval: Duration::from_millis(500),
        ..Config::default()
    };
    let app = Application::build(config).await.expect("server starts");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = http_client();
    let (pro, clients) = set_up(&client, &base).await;

    // Load: each client books its own slots one after another until told to stop.
    let running = Arc::new(AtomicBool::new(true));
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let load_start = Instant::now();
    let mut load = Vec::new();
    for (n, token) in clients.into_iter().enumerate() {
        let (client, base, pro) = (client.clone(), base.clone(), pro.clone());
        let (running, answers) = (running.clone(), answers.clone());
        load.push(tokio::spawn(async move {
            let first = i64::try_from(n).expect("small") * SLOTS_PER_CLIENT;
            for slot in first..first + SLOTS_PER_CLIENT {
                if !running.load(Ordering::SeqCst) {
                    break;
                }
                let sent = load_start.elapsed();
                let body = booking_body(&pro, slot * SLOT_MINUTES, SLOT_MINUTES);
                let answer = post_booking(&client, &base, &token, &body).await;
                answers.lock().await.push(Answer { sent, ..answer });
            }
        }));
    }

    let mut outages = Vec::new();
    for mode in [StopMode::Fast, StopMode::Immediate] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let down = load_start.elapsed();
        pg.stop(mode).expect("stop PostgreSQL");
        let (s, v) = http(&client, &base, "GET", "/readyz", None, None, None).await;
        assert_eq!(s, 503, "not ready while the database is down: {v}");
        tokio::time::sleep(DOWNTIME).await;
        pg.start_again().expect("start PostgreSQL again");
        let up = load_start.elapsed();
        outages.push(Outage { down, up });
        wait_until_ready(&client, &base).await;
    }
    // Keep the load on after the last restart until every client has booked again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }

    let answers = answers.lock().await;
    check(&answers, &outages);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server exits cleanly");
}

/// A professional open around the clock and [`CLIENTS`] clients; returns the
/// professional's id and the clients' tokens.
async fn set_up(client: &HttpClient, base: &str) -> (String, Vec<String>) {
    let (s, v) = http(
        client,
        base,
        "POST",
        "/v1/professionals",
        Some(ADMIN),
        Some("pro"),
        Some(professional_body("massage", 6000)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (pro, pro_token) = (str_of(&v["id"]), str_of(&v["api_token"]));
    let (s, v) = http(
        client,
        base,
        "PUT",
        &format!("/v1/professionals/{pro}/schedule"),
        Some(&pro_token),
        None,
        Some({
            let mut schedule = open_schedule(0);
            schedule["slot_step_minutes"] = json!(SLOT_MINUTES);
            schedule
        }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut tokens = Vec::new();
    for n in 0..CLIENTS {
        let (s, v) = http(
            client,
            base,
            "POST",
            "/v1/clients",
            Some(ADMIN),
            Some(&format!("client-{n}")),
            Some(json!({"name": format!("c{n}"), "email": format!("c{n}@example.com")})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        tokens.push(str_of(&v["api_token"]));
    }
    (pro, tokens)
}

/// Polls `/readyz` until it answers 200 (at most 60 s).
async fn wait_until_ready(client: &HttpClient, base: &str) {
    for _ in 0..600 {
        let (s, _) = http(client, base, "GET", "/readyz", None, None, None).await;
        if s == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server never became ready again after the database came back");
}

/// Every answer is a 201 or a well-formed 503 `store_unavailable`, within
/// [`LATENCY_BOUND`]; each outage produced 503s, and after each one bookings succeed again.
fn check(answers: &[Answer], outages: &[Outage]) {
    let count = |status: u16| answers.iter().filter(|a| a.status == status).count();
    eprintln!(
        "{} requests: {} created, {} unavailable; slowest {:?}",
        answers.len(),
        count(201),
        count(503),
        answers.iter().map(|a| a.latency).max().unwrap_or_default()
    );
    for a in answers {
        match a.status {
            201 => {}
            503 => {
                assert_eq!(a.body["code"], "store_unavailable", "{:?}", a.body);
                assert_eq!(a.body["status"], 503, "{:?}", a.body);
                assert_eq!(a.content_type, "application/problem+json");
            }
            other => panic!("answer {other} while PostgreSQL restarts: {:?}", a.body),
        }
        assert!(
            a.latency < LATENCY_BOUND,
            "an answer took {:?} (sent at {:?})",
            a.latency,
            a.sent
        );
    }
    for (n, outage) in outages.iter().enumerate() {
        // In flight during the outage: sent before it ended, answered after it began (on a
        // loaded machine the requests of a short outage may all have been sent just before
        // the stop and be refused by it).
        let during = |a: &&Answer| a.sent < outage.up && a.sent + a.latency >= outage.down;
        assert!(
            answers.iter().filter(during).any(|a| a.status == 503),
            "outage {n}: no 503 while the database was down"
        );
        assert!(
            answers
                .iter()
                .filter(|a| a.sent >= outage.up)
                .any(|a| a.status == 201),
            "outage {n}: no booking succeeded after the database came back"
        );
        assert!(
            answers
                .iter()
                .filter(|a| a.sent < outage.down)
                .any(|a| a.status == 201),
            "outage {n}: no booking succeeded before the outage"
        );
    }
}
