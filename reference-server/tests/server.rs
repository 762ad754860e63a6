//! Tests against a running server (a real TCP listener on port 0): a booking race on the
//! memory store, graceful shutdown with a request in flight, and an end-to-end run on
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use reference_server::{Application, Config};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(database_url: Option<String>) -> Self {
        let config = Config {
            listen: "127.0.0.1:0".into(),
            admin_token: Some(ADMIN.into()),
            database_url,
            sweep_interval: Duration::from_millis(200),
            ..Config::default()
        };
        let app = Application::build(config).await.expect("server starts");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            base,
            stop: Some(tx),
            task,
        }
    }

    /// Sends the shutdown signal.
    fn signal(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Signals and waits for a clean exit.
    async fn stop(mut self) {
        self.signal();
        self.exited().await;
    }

    /// Waits for the server to exit cleanly (after its signal).
    async fn exited(self) {
        let r = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task");
        r.expect("server exits cleanly");
    }
}

fn parse(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Fires `n` concurrent bookings at starts `k * 30` minutes (k = i % 20), 60 minutes long,
/// from 10 clients; checks that winners never overlap and every loser overlaps a winner.
async fn booking_race(base: &str, n: usize) {
    let client = http_client();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (s, v) = http(
        &client,
        base,
        "POST",
        "/v1/professionals",
        Some(ADMIN),
        Some(&format!("p-{run}")),
        Some(professional_body("massage", 6000)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let pro = str_of(&v["id"]);
    let pro_token = str_of(&v["api_token"]);
    let (s, v) = http(
        &client,
        base,
        "PUT",
        &format!("/v1/professionals/{pro}/schedule"),
        Some(&pro_token),
        None,
        Some(open_schedule(0)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut tokens = Vec::new();
    for c in 0..10 {
        let (s, v) = http(
            &client,
            base,
            "POST",
            "/v1/clients",
            Some(ADMIN),
            Some(&format!("c{c}-{run}")),
            Some(json!({"name": format!("c{c}"), "email": format!("c{c}@example.com")})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        tokens.push(str_of(&v["api_token"]));
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = client.clone();
        let base = base.to_owned();
        let token = tokens[i % tokens.len()].clone();
        let body = booking_body(&pro, (i % 20) as i64 * 30, 60);
        tasks.push(tokio::spawn(async move {
            let key = format!("race-{i}");
            let (s, v) = http(
                &client,
                &base,
                "POST",
                "/v1/bookings",
                Some(&token),
                Some(&key),
                Some(body.clone()),
            )
            .await;
            (s, v, body)
        }));
    }
    let mut winners: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        let (s, v, body) = t.await.unwrap();
        match s {
            201 => winners.push((parse(&v["start"]), parse(&v["end"]), str_of(&v["id"]))),
            409 => {
                assert_eq!(v["code"], "slot_unavailable", "{v}");
                losers.push((parse(&body["start"]), parse(&body["end"])));
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(winners.len() + losers.len(), n);
    for (i, a) in winners.iter().enumerate() {
        for b in &winners[i + 1..] {
            assert!(a.1 <= b.0 || b.1 <= a.0, "overlapping winners {a:?} {b:?}");
        }
    }
    for l in &losers {
        assert!(
            winners.iter().any(|w| w.0 < l.1 && l.0 < w.1),
            "loser {l:?} overlaps no winner"
        );
    }
    // Twenty 60-minute slots on a 30-minute grid, each overlapping its neighbours: the
    // winners are a maximal set of pairwise disjoint slots, 7 to 10 of them.
    assert!((7..=10).contains(&winners.len()), "{}", winners.len());
    // The stored bookings are exactly the winners.
    let (s, v) = http(
        &client,
        base,
        "GET",
        &format!("/v1/bookings?professional_id={pro}&limit=100"),
        Some(ADMIN),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let stored: HashSet<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| str_of(&b["id"]))
        .collect();
    let won: HashSet<String> = winners.iter().map(|w| w.2.clone()).collect();
    assert_eq!(stored, won);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_parallel_bookings_have_exactly_the_right_winners() {
    let server = Running::start(None).await;
    booking_race(&server.base, 200).await;
    server.stop().await;
}

/// Reads from `conn` until `done` holds for what was read (or the peer closes).
async fn read_until(conn: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&out) {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the server answers within 10 s")
            .expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request in flight when the signal arrives is answered; meanwhile new connections are
/// refused; then the server exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuts_down_gracefully_on_signal() {
    let mut server = Running::start(None).await;
    let client = http_client();
    let (s, _) = http(&client, &server.base, "GET", "/healthz", None, None, None).await;
    assert_eq!(s, 200);
    let addr = server.base.trim_start_matches("http://").to_owned();

    // Headers only, asking to be told when to send the body: the server's `100 Continue`
    // means the handler is reading the body, so the request is in flight.
    let body = serde_json::to_vec(&json!({"name": "Lin", "email": "lin@example.com"})).unwrap();
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/clients HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN}\r\n\
         idempotency-key: in-flight\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let interim = read_until(&mut conn, |r| r.windows(4).any(|w| w == b"\r\n\r\n")).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");

    server.signal();
    // The listener closes: new connections are refused...
    let refused = async {
        while TcpStream::connect(&addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("new connections are refused after the signal");
    // ...but the server waits for the request in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.task.is_finished(),
        "the server exited with a request in flight"
    );

    conn.write_all(&body).await.unwrap();
    let answer = read_until(&mut conn, |_| false).await;
    assert!(answer.starts_with("HTTP/1.1 201 Created"), "{answer}");
    assert!(answer.contains("\"api_token\""), "{answer}");
    server.exited().await;
    assert!(TcpStream::connect(&addr).await.is_err(), "still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres() {
    let Some(db) = booking_postgres::test_support::TestDatabase::create().await else {
        return; // SKIPPED was printed loudly
    };
    let server = Running::start(Some(db.url())).await;
    let base = server.base.as_str();
    let client = http_client();

    let (s, v) = http(&client, base, "GET", "/readyz", None, None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = http(
        &client,
        base,
        "POST",
        "/v1/professionals",
        Some(ADMIN),
        Some("p1"),
        Some(professional_body("massage", 6000)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let pro = str_of(&v["id"]);
    let pro_token = str_of(&v["api_token"]);
    let (s, v) = http(
        &client,
        base,
        "PUT",
        &format!("/v1/professionals/{pro}/schedule"),
        Some(&pro_token),
        None,
        Some(open_schedule(15)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = http(
        &client,
        base,
        "POST",
        "/v1/clients",
        Some(ADMIN),
        Some("c1"),
        Some(json!({"name": "Lin", "email": "lin@example.com"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let lin = str_of(&v["api_token"]);

    let avail = format!(
        "/v1/professionals/{pro}/availability?from={}&to={}&duration_minutes=60",
        ts(at(0)),
        ts(at(120))
    );
    let (s, v) = http(&client, base, "GET", &avail, Some(&lin), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["slots"].as_array().unwrap().len(), 3);

    let body = booking_body(&pro, 0, 60);
    let (s, first) = http(
        &client,
        base,
        "POST",
        "/v1/bookings",
        Some(&lin),
        Some("b1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["status"], "confirmed");
    let (s, again) = http(
        &client,
        base,
        "POST",
        "/v1/bookings",
        Some(&lin),
        Some("b1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, &again), (201, &first));
    let (s, v) = http(
        &client,
        base,
        "POST",
        "/v1/bookings",
        Some(&lin),
        Some("b2"),
        Some(booking_body(&pro, 30, 60)),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("slot_unavailable")));
    let (s, v) = http(
        &client,
        base,
        "POST",
        "/v1/bookings",
        Some(&lin),
        Some("b1"),
        Some(booking_body(&pro, 300, 60)),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (s, v) = http(&client, base, "GET", &avail, Some(&lin), None, None).await;
    assert_eq!(s, 200);
    assert!(v["slots"].as_array().unwrap().is_empty(), "{v}");

    let id = str_of(&first["id"]);
    let (s, v) = http(
        &client,
        base,
        "POST",
        &format!("/v1/bookings/{id}/reschedule"),
        Some(&lin),
        Some("r1"),
        Some(json!({"start": ts(at(240)), "end": ts(at(300))})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = http(
        &client,
        base,
        "POST",
        &format!("/v1/bookings/{id}/cancel"),
        Some(&pro_token),
        Some("x1"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")));
    let (s, v) = http(
        &client,
        base,
        "GET",
        "/v1/bookings?status=cancelled",
        Some(&lin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (s, v) = http(
        &client,
        base,
        "GET",
        "/v1/professionals?category=massage",
        Some(&lin),
        None,
        None,
    )
    .await;
    assert_eq!((s, v["data"].as_array().unwrap().len()), (200, 1));

    booking_race(base, 100).await;
    server.stop().await;
    drop(db);
}
