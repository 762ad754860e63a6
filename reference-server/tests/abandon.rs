//! A request that ends without an answer leaves its idempotency key retryable right away
//! (not locked for the 60 s lease): a handler that panics, a request the timeout layer
//! gives up on, and a client that disconnects after the key was claimed. Each retry with
//! the same key then answers with the booking the first attempt created.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::served::{Answer, Intent, Served, TestGateway};
use common::{ADMIN, booking_body, open_schedule, str_of};
use reference_server::Config;
use reference_server::startup::Overrides;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A server with payments through `gateway` and a request timeout of `timeout`; returns
/// it with a client's token and a booking request for an open slot.
async fn setup(gateway: &Arc<TestGateway>, timeout: Duration) -> (Served, String, Value) {
    let overrides = Overrides {
        payments: Some(gateway.clone()),
        ..Overrides::default()
    };
    let config = Config {
        request_timeout: timeout,
        ..Config::default()
    };
    let server = Served::start(config, overrides).await;
    let key = uuid::Uuid::now_v7().to_string();
    let body = json!({"name": "lin", "email": "lin@example.com"});
    let r = server
        .call("POST", "/v1/clients", ADMIN, Some(&key), Some(&body))
        .await;
    let token = str_of(&r.expect(201, None)["api_token"]);
    let key = uuid::Uuid::now_v7().to_string();
    let body = common::professional_body("massage", 6000);
    let r = server
        .call("POST", "/v1/professionals", ADMIN, Some(&key), Some(&body))
        .await;
    let created = r.expect(201, None);
    let path = format!("/v1/professionals/{}/schedule", str_of(&created["id"]));
    let pro_token = str_of(&created["api_token"]);
    server
        .call("PUT", &path, &pro_token, None, Some(&open_schedule(0)))
        .await
        .expect(200, None);
    let slot = booking_body(&str_of(&created["id"]), 0, 60);
    (server, token, slot)
}

/// The retry of `key` after the failed attempt, repeated while it answers 409 in flight:
/// the key is released as soon as the stopped attempt has been cleaned up (a spawned
/// step, so a retry sent within the same instant can still meet the claim), and must be
/// within 10 s, far below the 60 s lease a crashed attempt leaves behind.
async fn retry(server: &Served, token: &str, key: &str, slot: &Value) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = server
            .call("POST", "/v1/bookings", token, Some(key), Some(slot))
            .await;
        if again.status != 409 {
            return again;
        }
        assert_eq!(again.body["code"], "idempotency_request_in_flight");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key stayed claimed after its attempt ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `retry` ran again (no 409 in flight) and answered 201 with the one booking both
/// attempts are about, which later retries replay.
async fn booked_once(server: &Served, token: &str, key: &str, slot: &Value, retry: Answer) {
    assert!(!retry.replayed);
    let booking = retry.expect(201, None);
    assert_eq!(booking["status"], "pending_payment");
    assert!(booking["payment"]["payment_intent_id"].is_string());
    let list = server.call("GET", "/v1/bookings", token, None, None).await;
    let data = list.expect(200, None)["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0]["id"], booking["id"]);
    let replay = server
        .call("POST", "/v1/bookings", token, Some(key), Some(slot))
        .await;
    assert!(replay.replayed);
    assert_eq!(replay.expect(201, None)["id"], booking["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_leaves_the_key_retryable() {
    let gateway = TestGateway::new();
    let (server, token, slot) = setup(&gateway, Duration::from_secs(30)).await;
    let key = "panics-once";
    gateway.next_intent(Intent::Panic);
    let first = server
        .call("POST", "/v1/bookings", &token, Some(key), Some(&slot))
        .await;
    first.expect(500, Some("internal"));
    let again = retry(&server, &token, key, &slot).await;
    booked_once(&server, &token, key, &slot, again).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_by_the_timeout_leaves_the_key_retryable() {
    let gateway = TestGateway::new();
    let (server, token, slot) = setup(&gateway, Duration::from_millis(300)).await;
    let key = "times-out-once";
    gateway.next_intent(Intent::Hang);
    let first = server
        .call("POST", "/v1/bookings", &token, Some(key), Some(&slot))
        .await;
    first.expect(408, Some("request_timeout"));
    let again = retry(&server, &token, key, &slot).await;
    booked_once(&server, &token, key, &slot, again).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_leaves_the_key_retryable() {
    let gateway = TestGateway::new();
    let (server, token, slot) = setup(&gateway, Duration::from_secs(30)).await;
    let key = "disconnects-once";
    gateway.next_intent(Intent::Hang);
    let body = serde_json::to_vec(&slot).unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/bookings HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
         idempotency-key: {key}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    // The key is claimed and the handler waits on the payment provider: hang up.
    tokio::time::timeout(Duration::from_secs(10), gateway.entered.notified())
        .await
        .expect("the request reaches the payment provider");
    drop(stream);
    // The server notices the closed connection and abandons the key.
    let again = retry(&server, &token, key, &slot).await;
    booked_once(&server, &token, key, &slot, again).await;
    server.stop().await;
}
