//! Outbound webhooks end to end: a receiver on 127.0.0.1 verifies every delivery's
//! signature with `booking_core::webhook::verify` and records it; the fan-out and delivery
//! rounds run in the test. On the memory store and on PostgreSQL (`DATABASE_URL`; skipped
//! loudly when unreachable outside CI).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use booking_core::Store;
use booking_core::webhook::{DEFAULT_TOLERANCE, WebhookSecret, verify};
use common::{ADMIN, TestApp, booking_body, str_of};
use reference_server::config::OutboundConfig;
use reference_server::outbound::{self, Sender};
use reference_server::{AppState, Config};
use serde_json::{Value, json};

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    delivery_id: String,
    event_id: String,
    body: Value,
    /// The signature verified and the body was declared JSON.
    verified: bool,
}

#[derive(Default)]
struct ReceiverState {
    /// The secret to verify with (set once the subscription is made).
    secret: Option<String>,
    /// Requests still to be answered 500.
    fail_next: u32,
    received: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1:0.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn set_secret(&self, secret: &str) {
        self.state.lock().expect("lock").secret = Some(secret.to_owned());
    }

    fn fail_next(&self, n: u32) {
        self.state.lock().expect("lock").fail_next = n;
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut s = state.lock().expect("lock");
    let verified = s.secret.as_ref().is_some_and(|secret| {
        let secrets = [WebhookSecret::new(secret.clone()).expect("secret")];
        verify(
            headers.get("booking-signature").map(|v| v.as_bytes()),
            &body,
            &secrets,
            chrono::Utc::now(),
            DEFAULT_TOLERANCE,
        )
        .is_ok()
    });
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let json_body = header("content-type") == "application/json";
    s.received.push(Received {
        delivery_id: header("booking-delivery-id"),
        event_id: header("booking-event-id"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified: verified && json_body,
    });
    if s.fail_next > 0 {
        s.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Fast retries, private targets allowed (the receiver is on loopback).
fn test_config(allow_private: bool) -> Config {
    Config {
        admin_token: Some(ADMIN.into()),
        outbound: OutboundConfig {
            allow_private,
            timeout: Duration::from_secs(2),
            retry_base: Duration::from_millis(20),
            retry_cap: Duration::from_millis(50),
            ..OutboundConfig::default()
        },
        ..Config::default()
    }
}

fn app_on(store: Arc<dyn Store>, allow_private: bool) -> (TestApp, Sender) {
    let config = test_config(allow_private);
    let state = AppState::new(store, &config, ADMIN, None);
    let sender = Sender::new(allow_private, config.outbound.timeout).expect("sender");
    (
        TestApp {
            router: reference_server::router(state.clone(), &config),
            state,
        },
        sender,
    )
}

/// Stores to run each scenario on: memory, and PostgreSQL when reachable.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(booking_memory::MemoryStore::new()))];
    if let Some(pg) = booking_postgres::test_support::fresh_store(8).await {
        out.push(("postgres", Arc::new(pg)));
    }
    out
}

/// Subscribes `url` to every event type; returns the created subscription.
async fn subscribe(app: &TestApp, url: &str) -> Value {
    let r = app
        .post(
            "/v1/admin/webhook-subscriptions",
            ADMIN,
            json!({
                "url": url,
                "event_types": ["booking_created", "booking_confirmed", "booking_cancelled",
                                "booking_expired", "booking_rescheduled"],
            }),
        )
        .await;
    r.assert_status(201).clone()
}

/// Runs fan-out and delivery rounds until nothing is left to do or `deadline` passes.
async fn pump(state: &AppState, sender: &Sender, until: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !until() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not arrive in time"
        );
        outbound::fan_out(state).await.expect("fan out");
        outbound::deliver(state, sender).await.expect("deliver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` bookings of one professional, every other one cancelled; returns the event count.
async fn make_events(app: &TestApp, n: i64) -> usize {
    let (pro, _) = app.open_professional(0).await;
    let (_, client) = app.client("hooks").await;
    let mut count = 0;
    for i in 0..n {
        let b = app
            .post("/v1/bookings", &client, booking_body(&pro, i * 60, 30))
            .await;
        let id = str_of(&b.assert_status(201)["id"]);
        count += 1;
        if i % 2 == 0 {
            app.post(&format!("/v1/bookings/{id}/cancel"), &client, json!({}))
                .await
                .assert_status(200);
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_receiver_signed_and_retries_keep_the_delivery_id() {
    for (name, store) in stores().await {
        let (app, sender) = app_on(store, true);
        let receiver = Receiver::start().await;
        let sub = subscribe(&app, &receiver.url).await;
        let secret = str_of(&sub["secret"]);
        assert!(
            secret.starts_with("whsec_") && secret.len() == 6 + 43,
            "{name}"
        );
        receiver.set_secret(&secret);
        receiver.fail_next(3);
        let events = make_events(&app, 4).await;
        let r = receiver.clone();
        pump(&app.state, &sender, || {
            let got = r.received();
            let events_seen: HashSet<&str> = got.iter().map(|x| x.event_id.as_str()).collect();
            events_seen.len() == events && got.len() == events + 3
        })
        .await;
        let sub_id = str_of(&sub["id"]);
        let got = receiver.received();
        assert!(
            got.iter().all(|x| x.verified),
            "{name}: every signature verifies"
        );
        let mut per_delivery: HashMap<String, HashSet<String>> = HashMap::new();
        for x in &got {
            per_delivery
                .entry(x.delivery_id.clone())
                .or_default()
                .insert(x.event_id.clone());
            assert_eq!(x.body["id"].as_str(), Some(x.event_id.as_str()), "{name}");
            assert!(x.body["data"]["booking"]["id"].is_string(), "{name}");
            assert!(
                x.body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("booking_"))
            );
        }
        assert_eq!(
            per_delivery.len(),
            events,
            "{name}: one delivery id per event"
        );
        assert!(
            per_delivery.values().all(|e| e.len() == 1),
            "{name}: a delivery id always carries the same event"
        );
        let retried = got.len() - per_delivery.len();
        assert_eq!(retried, 3, "{name}: the three failures were retried");
        // The log shows them delivered, the retried ones with more than one attempt.
        let log = app
            .get(
                &format!("/v1/admin/webhook-subscriptions/{sub_id}/deliveries?limit=100"),
                ADMIN,
            )
            .await;
        let data = log.assert_status(200)["data"]
            .as_array()
            .expect("data")
            .clone();
        assert_eq!(data.len(), events, "{name}");
        assert!(
            data.iter().all(|d| d["status"] == "delivered"),
            "{name}: {data:?}"
        );
        let attempts: u64 = data
            .iter()
            .map(|d| d["attempt"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(attempts as usize, events + 3, "{name}");
        assert!(data.iter().all(|d| d["response_status"] == 204));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_resends_with_the_same_delivery_id() {
    for (name, store) in stores().await {
        let (app, sender) = app_on(store, true);
        let receiver = Receiver::start().await;
        // By name: the connector's guarded resolver picks the address.
        let by_name = receiver.url.replace("127.0.0.1", "localhost");
        let sub = subscribe(&app, &by_name).await;
        receiver.set_secret(&str_of(&sub["secret"]));
        make_events(&app, 1).await; // created + cancelled
        let r = receiver.clone();
        pump(&app.state, &sender, || r.received().len() == 2).await;
        let sub_id = str_of(&sub["id"]);
        let log = app
            .get(
                &format!("/v1/admin/webhook-subscriptions/{sub_id}/deliveries?limit=1"),
                ADMIN,
            )
            .await;
        let body = log.assert_status(200).clone();
        assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
        let cursor = str_of(&body["next_cursor"]);
        let rest = app
            .get(
                &format!(
                    "/v1/admin/webhook-subscriptions/{sub_id}/deliveries?limit=1&cursor={cursor}"
                ),
                ADMIN,
            )
            .await;
        assert_eq!(
            rest.assert_status(200)["data"].as_array().map(Vec::len),
            Some(1)
        );
        let delivery = body["data"][0].clone();
        let id = str_of(&delivery["id"]);
        let r = app
            .post(
                &format!("/v1/admin/webhook-deliveries/{id}/redeliver"),
                ADMIN,
                json!({}),
            )
            .await;
        let again = r.assert_status(202);
        assert_eq!(again["id"], delivery["id"], "{name}");
        assert_eq!(again["status"], "pending", "{name}");
        let r2 = receiver.clone();
        pump(&app.state, &sender, || r2.received().len() == 3).await;
        let got = receiver.received();
        assert_eq!(got[2].delivery_id, id, "{name}: the same delivery id");
        assert_eq!(got[2].event_id, str_of(&delivery["event_id"]));
        assert!(got[2].verified);
        app.post(
            &format!(
                "/v1/admin/webhook-deliveries/{}/redeliver",
                uuid::Uuid::now_v7()
            ),
            ADMIN,
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
        // Deleting the subscription stops deliveries.
        app.call(
            "DELETE",
            &format!("/v1/admin/webhook-subscriptions/{sub_id}"),
            Some(ADMIN),
            None,
            None,
        )
        .await
        .assert_status(204);
        make_events(&app, 1).await;
        for _ in 0..5 {
            outbound::fan_out(&app.state).await.expect("fan out");
            outbound::deliver(&app.state, &sender)
                .await
                .expect("deliver");
        }
        assert_eq!(
            receiver.received().len(),
            3,
            "{name}: nothing after the delete"
        );
        app.get(
            &format!("/v1/admin/webhook-subscriptions/{sub_id}/deliveries"),
            ADMIN,
        )
        .await
        .assert_problem(404, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_without_the_allow_flag() {
    let (app, sender) = app_on(Arc::new(booking_memory::MemoryStore::new()), false);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.1/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let r = app
            .post(
                "/v1/admin/webhook-subscriptions",
                ADMIN,
                json!({"url": url, "event_types": ["booking_created"]}),
            )
            .await;
        r.assert_problem(422, "validation_failed");
    }
    for (body, why) in [
        (
            json!({"url": "ftp://example.com/x", "event_types": ["booking_created"]}),
            "scheme",
        ),
        (
            json!({"url": "https://example.com/x", "event_types": []}),
            "no types",
        ),
        (
            json!({"url": "https://example.com/x", "event_types": ["nope"]}),
            "unknown type",
        ),
    ] {
        let r = app
            .post("/v1/admin/webhook-subscriptions", ADMIN, body)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    }
    // Only the admin manages subscriptions.
    let (_, client) = app.client("nosy").await;
    app.get("/v1/admin/webhook-subscriptions", &client)
        .await
        .assert_problem(403, "forbidden");
    // A subscription made while private targets were allowed fails at delivery time once
    // they are not: the guard runs again on every attempt.
    let store: Arc<dyn Store> = Arc::new(booking_memory::MemoryStore::new());
    let (open, _) = app_on(store.clone(), true);
    let receiver = Receiver::start().await;
    let sub = subscribe(&open, &receiver.url).await;
    make_events(&open, 1).await;
    let (strict, strict_sender) = app_on(store, false);
    outbound::fan_out(&strict.state).await.expect("fan out");
    outbound::deliver(&strict.state, &strict_sender)
        .await
        .expect("deliver");
    assert!(
        receiver.received().is_empty(),
        "nothing reaches a private target"
    );
    let log = strict
        .get(
            &format!(
                "/v1/admin/webhook-subscriptions/{}/deliveries",
                str_of(&sub["id"])
            ),
            ADMIN,
        )
        .await;
    let data = log.assert_status(200)["data"].clone();
    assert!(
        data.as_array().is_some_and(|d| !d.is_empty()
            && d.iter().all(|x| x["attempt"] == 1
                && x["status"] == "pending"
                && x["response_status"].is_null())),
        "{data:?}"
    );
    drop(sender);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_list_without_secrets_and_paginate() {
    let (app, _) = app_on(Arc::new(booking_memory::MemoryStore::new()), true);
    let receiver = Receiver::start().await;
    let a = subscribe(&app, &receiver.url).await;
    let b = subscribe(&app, &receiver.url).await;
    let first = app
        .get("/v1/admin/webhook-subscriptions?limit=1", ADMIN)
        .await;
    let first = first.assert_status(200).clone();
    assert_eq!(first["data"][0]["id"], a["id"]);
    assert!(
        first["data"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    let cursor = str_of(&first["next_cursor"]);
    let second = app
        .get(
            &format!("/v1/admin/webhook-subscriptions?limit=1&cursor={cursor}"),
            ADMIN,
        )
        .await;
    let second = second.assert_status(200).clone();
    assert_eq!(second["data"][0]["id"], b["id"]);
    assert!(second["next_cursor"].is_null());
    app.get("/v1/admin/webhook-subscriptions?cursor=nope", ADMIN)
        .await
        .assert_problem(400, "malformed_request");
}

/// The running server's own worker (spawned by `Application::run_until`) fans out and
/// delivers, and stops with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_delivers_on_its_own() {
    use common::{http, http_client, open_schedule};
    let mut config = test_config(true);
    config.listen = "127.0.0.1:0".into();
    let app = reference_server::Application::build(config)
        .await
        .expect("server starts");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = http_client();
    let receiver = Receiver::start().await;
    let key = |k: &str| Some(format!("{k}-{}", uuid::Uuid::now_v7()));
    let (status, sub) = http(
        &client,
        &base,
        "POST",
        "/v1/admin/webhook-subscriptions",
        Some(ADMIN),
        key("sub").as_deref(),
        Some(json!({"url": receiver.url, "event_types": ["booking_created"]})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    receiver.set_secret(&str_of(&sub["secret"]));
    let (status, pro) = http(
        &client,
        &base,
        "POST",
        "/v1/professionals",
        Some(ADMIN),
        key("pro").as_deref(),
        Some(common::professional_body("massage", 5000)),
    )
    .await;
    assert_eq!(status, 201);
    let (pro_id, pro_token) = (str_of(&pro["id"]), str_of(&pro["api_token"]));
    let (status, _) = http(
        &client,
        &base,
        "PUT",
        &format!("/v1/professionals/{pro_id}/schedule"),
        Some(&pro_token),
        None,
        Some(open_schedule(0)),
    )
    .await;
    assert_eq!(status, 200);
    let (status, c) = http(
        &client,
        &base,
        "POST",
        "/v1/clients",
        Some(ADMIN),
        key("client").as_deref(),
        Some(json!({"name": "Webhook", "email": "webhook@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, booking) = http(
        &client,
        &base,
        "POST",
        "/v1/bookings",
        Some(&str_of(&c["api_token"])),
        key("booking").as_deref(),
        Some(booking_body(&pro_id, 0, 30)),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while receiver.received().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = receiver.received();
    assert!(got[0].verified);
    assert_eq!(got[0].body["type"], "booking_created");
    assert_eq!(got[0].body["booking_id"], booking["id"]);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops within 10 s")
        .expect("server task")
        .expect("server exits cleanly");
}
