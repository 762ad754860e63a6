//! The outbox relay against the real NATS server (`NATS_URL`, default
//! `nats://127.0.0.1:4222`). Each test uses its own stream and subject prefix. Outside CI a
//! test skips loudly when NATS is unreachable; in CI (`CI` set to a true value) it fails.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use booking_core::Store;
use booking_core::events::{Consumer, DomainEvent, EventKind};
use booking_postgres::test_support;
use common::{ADMIN, TestApp, booking_body, str_of};
use reference_server::relay::{NatsConfig, Relay};
use reference_server::{AppState, Config};
use serde_json::Value;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A fresh stream name and subject prefix on the test server, or `None` (skipped) when
/// NATS is unreachable outside CI.
async fn nats_config() -> Option<NatsConfig> {
    let url = nats_url();
    let reachable = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .is_ok();
    if !reachable {
        if test_support::in_ci() {
            panic!("NATS is not reachable at {url}, and CI requires it");
        }
        test_support::report_skipped(&format!(
            "NATS is not reachable at {url} (set NATS_URL or start nats-server -js)"
        ));
        return None;
    }
    let tag = uuid::Uuid::now_v7().simple().to_string();
    Some(NatsConfig {
        url,
        stream: format!("BOOKINGS_TEST_{tag}"),
        subject_prefix: format!("test_{tag}.bookings"),
    })
}

/// Every message of the stream, in stream order: (subject, Nats-Msg-Id, payload).
async fn stream_messages(config: &NatsConfig) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(config.url.as_str())
        .await
        .expect("connect");
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&config.stream).await.expect("stream exists");
    let count = stream.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        let m = stream.get_raw_message(seq).await.expect("message");
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .expect("Nats-Msg-Id");
        let payload: Value = serde_json::from_slice(&m.payload).expect("json payload");
        out.push((m.subject.to_string(), id, payload));
    }
    out
}

async fn drop_stream(config: &NatsConfig) {
    if let Ok(client) = async_nats::connect(config.url.as_str()).await {
        let _ = jetstream::new(client).delete_stream(&config.stream).await;
    }
}

fn app_on(store: Arc<dyn Store>) -> TestApp {
    let config = Config {
        admin_token: Some(ADMIN.into()),
        ..Config::default()
    };
    let state = AppState::new(store, &config, ADMIN, None);
    TestApp {
        router: reference_server::router(state.clone(), &config),
        state,
    }
}

/// `n` bookings, every other one cancelled; returns every event the store recorded.
async fn make_events(app: &TestApp, n: i64) -> Vec<DomainEvent> {
    let (pro, _) = app.open_professional(0).await;
    let (_, client) = app.client("relay").await;
    for i in 0..n {
        let b = app
            .post("/v1/bookings", &client, booking_body(&pro, i * 60, 30))
            .await;
        let id = str_of(&b.assert_status(201)["id"]);
        if i % 2 == 0 {
            app.post(
                &format!("/v1/bookings/{id}/cancel"),
                &client,
                serde_json::json!({}),
            )
            .await
            .assert_status(200);
        }
    }
    app.state
        .engine()
        .store()
        .events_after(None, 10_000)
        .await
        .expect("events")
}

/// Runs relay rounds until one publishes nothing.
async fn run_until_idle(relay: &Relay, state: &AppState) -> usize {
    let mut total = 0;
    loop {
        let n = relay.round(state, 64).await.expect("round");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Checks the stream holds exactly `events`, once each, as the contract's JSON, with each
/// booking's events in the order they happened.
fn assert_published_once(
    messages: &[(String, String, Value)],
    events: &[DomainEvent],
    config: &NatsConfig,
) {
    let ids: Vec<&str> = messages.iter().map(|(_, id, _)| id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event id twice in the stream");
    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let got: HashSet<String> = unique.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(got, expected, "every outbox event, and nothing else");
    let mut last_kind: HashMap<String, String> = HashMap::new();
    for (subject, id, payload) in messages {
        assert_eq!(payload["id"].as_str(), Some(id.as_str()));
        let kind = payload["type"].as_str().expect("type");
        assert_eq!(subject, &format!("{}.{kind}", config.subject_prefix));
        assert!(payload["data"]["booking"]["id"].is_string(), "{payload}");
        let booking = str_of(&payload["booking_id"]);
        if kind == EventKind::BookingCancelled.as_str() {
            assert_eq!(
                last_kind.get(&booking).map(String::as_str),
                Some(EventKind::BookingCreated.as_str()),
                "a booking's cancellation follows its creation"
            );
        }
        last_kind.insert(booking, kind.to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_every_event_once() {
    let Some(config) = nats_config().await else {
        return;
    };
    let app = app_on(Arc::new(booking_memory::MemoryStore::new()));
    let events = make_events(&app, 10).await;
    assert_eq!(events.len(), 15);
    let relay = Relay::connect(config.clone()).await.expect("relay");
    assert_eq!(run_until_idle(&relay, &app.state).await, 15);
    let messages = stream_messages(&config).await;
    assert_eq!(messages.len(), 15);
    assert_published_once(&messages, &events, &config);
    // Another round finds nothing left.
    assert_eq!(run_until_idle(&relay, &app.state).await, 0);
    drop_stream(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_is_repaired_without_duplicates() {
    let Some(config) = nats_config().await else {
        return;
    };
    let app = app_on(Arc::new(booking_memory::MemoryStore::new()));
    let events = make_events(&app, 8).await;
    let relay = Relay::connect(config.clone()).await.expect("relay");
    // A relay claims everything with a short lease, publishes half, and dies before
    // marking anything.
    let store = app.state.engine().store();
    let claim = store
        .claim_events(
            Consumer::Nats,
            app.state.engine().now(),
            100,
            chrono::Duration::milliseconds(500),
        )
        .await
        .expect("claim");
    let half = claim.events.len() / 2;
    assert!(half > 0);
    relay.publish(&claim.events[..half]).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Its claim ran out: the next relay publishes everything, the first half again with
    // the same Nats-Msg-Id, which JetStream drops.
    run_until_idle(&relay, &app.state).await;
    let messages = stream_messages(&config).await;
    assert_published_once(&messages, &events, &config);
    drop_stream(&config).await;
}

async fn two_relays_in_parallel(store: Arc<dyn Store>) {
    let Some(config) = nats_config().await else {
        return;
    };
    let app = app_on(store);
    let events = make_events(&app, 30).await;
    let a = Relay::connect(config.clone()).await.expect("relay a");
    let b = Relay::connect(config.clone()).await.expect("relay b");
    let (sa, sb) = (app.state.clone(), app.state.clone());
    let ta = tokio::spawn(async move { run_until_idle(&a, &sa).await });
    let tb = tokio::spawn(async move { run_until_idle(&b, &sb).await });
    let (na, nb) = (ta.await.expect("a"), tb.await.expect("b"));
    // Claims are exclusive: between them the relays marked each event once (and whatever
    // one round left behind, the other's later rounds picked up).
    let c = Relay::connect(config.clone()).await.expect("relay c");
    let rest = run_until_idle(&c, &app.state).await;
    assert_eq!(na + nb + rest, events.len(), "each event marked once");
    let messages = stream_messages(&config).await;
    assert_eq!(messages.len(), events.len());
    assert_published_once(&messages, &events, &config);
    drop_stream(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_parallel_on_memory() {
    two_relays_in_parallel(Arc::new(booking_memory::MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_parallel_on_postgres() {
    let Some(pg) = booking_postgres::test_support::fresh_store(8).await else {
        return;
    };
    two_relays_in_parallel(Arc::new(pg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_then_up_loses_nothing() {
    let Some(config) = nats_config().await else {
        return;
    };
    let app = app_on(Arc::new(booking_memory::MemoryStore::new()));
    let events = make_events(&app, 6).await;
    // NATS "down": nothing listens there.
    let down = NatsConfig {
        url: "nats://127.0.0.1:1".into(),
        ..config.clone()
    };
    assert!(Relay::connect(down).await.is_err());
    // Up again (the real server; its stream is created on connect): nothing was lost.
    let relay = Relay::connect(config.clone()).await.expect("relay");
    run_until_idle(&relay, &app.state).await;
    let messages = stream_messages(&config).await;
    assert_published_once(&messages, &events, &config);
    drop_stream(&config).await;
}

/// A private `nats-server -js` on a free port, with its own store directory, that the
/// test can stop and start again (the shared server on 4222 must stay up for the rest).
struct OwnNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnNats {
    fn binary() -> Option<std::path::PathBuf> {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    }

    fn new() -> Option<Self> {
        Self::binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("relay-nats-{}", uuid::Uuid::now_v7().simple()));
        Some(Self {
            port,
            dir,
            child: None,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let binary = Self::binary().expect("nats-server");
        let child = std::process::Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// NATS really goes down while the server's relay runs, events are written meanwhile, and
/// NATS comes back (same store directory): every event arrives once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_survives_nats_going_down_and_up() {
    if nats_config().await.is_none() {
        return;
    }
    let Some(mut nats) = OwnNats::new() else {
        if test_support::in_ci() {
            panic!("nats-server binary not found, and CI requires it");
        }
        test_support::report_skipped("no nats-server binary to stop and start");
        return;
    };
    nats.start().await;
    let config = NatsConfig::new(nats.url());
    let app = app_on(Arc::new(booking_memory::MemoryStore::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = reference_server::relay::spawn(app.state.clone(), config.clone(), stopped);
    let mut events = make_events(&app, 2).await;
    wait_for_messages(&config, events.len()).await;
    nats.stop();
    // Written while NATS is down: they wait in the outbox.
    events = {
        let (pro, _) = app.open_professional(0).await;
        let (_, client) = app.client("relay-down").await;
        for i in 0..3 {
            app.post(
                "/v1/bookings",
                &client,
                booking_body(&pro, 600 + i * 60, 30),
            )
            .await
            .assert_status(201);
        }
        app.state
            .engine()
            .store()
            .events_after(None, 10_000)
            .await
            .expect("events")
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.start().await;
    let messages = wait_for_messages(&config, events.len()).await;
    let _ = stop.send(true);
    task.await.expect("relay task");
    assert_published_once(&messages, &events, &config);
}

/// Polls the stream of `config` until it holds `n` messages (or 60 s: a claim made while
/// NATS was down is handed out again when its 30 s lease runs out); returns them.
async fn wait_for_messages(config: &NatsConfig, n: usize) -> Vec<(String, String, Value)> {
    let mut messages = Vec::new();
    for _ in 0..600 {
        if let Ok(client) = async_nats::connect(config.url.as_str()).await
            && jetstream::new(client)
                .get_stream(&config.stream)
                .await
                .is_ok()
        {
            messages = stream_messages(config).await;
            if messages.len() >= n {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    messages
}

/// The server's own loop (`NATS_URL` set) publishes what the API writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_relays_on_its_own() {
    let Some(config) = nats_config().await else {
        return;
    };
    let app = app_on(Arc::new(booking_memory::MemoryStore::new()));
    let events = make_events(&app, 4).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = reference_server::relay::spawn(app.state.clone(), config.clone(), stopped);
    let mut messages = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(client) = async_nats::connect(config.url.as_str()).await
            && jetstream::new(client)
                .get_stream(&config.stream)
                .await
                .is_ok()
        {
            messages = stream_messages(&config).await;
            if messages.len() == events.len() {
                break;
            }
        }
    }
    let _ = stop.send(true);
    task.await.expect("relay task");
    assert_published_once(&messages, &events, &config);
    drop_stream(&config).await;
}
