//! Time through the server: a running server whose engine reads an injected
//! [`ManualClock`], so that hold expiry, the sweep worker, idempotency lease takeover, key
//! TTLs and their purge are tested over HTTP without waiting for real time.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use booking_core::events::EventKind;
use booking_core::{Fingerprint, IdempotencyKey, ManualClock, Scope};
use chrono::Utc;
use common::served::{Served, TestGateway};
use common::{ADMIN, booking_body, open_schedule, str_of};
use reference_server::Config;
use reference_server::startup::Overrides;
use serde_json::{Value, json};

/// A server on `clock` with payments on (holds), sweeping every `sweep`.
async fn serve(clock: &ManualClock, config: Config) -> Served {
    let overrides = Overrides {
        clock: Some(Arc::new(clock.clone())),
        payments: Some(TestGateway::new()),
        ..Overrides::default()
    };
    Served::start(config, overrides).await
}

fn client_body(name: &str) -> Value {
    json!({"name": name, "email": format!("{name}@example.com")})
}

/// Creates a client; returns its token.
async fn client(server: &Served, name: &str) -> String {
    let key = uuid::Uuid::now_v7().to_string();
    let r = server
        .call(
            "POST",
            "/v1/clients",
            ADMIN,
            Some(&key),
            Some(&client_body(name)),
        )
        .await;
    str_of(&r.expect(201, None)["api_token"])
}

/// Creates a professional open around the clock; returns its id.
async fn professional(server: &Served) -> String {
    let key = uuid::Uuid::now_v7().to_string();
    let body = common::professional_body("massage", 6000);
    let r = server
        .call("POST", "/v1/professionals", ADMIN, Some(&key), Some(&body))
        .await;
    let created = r.expect(201, None);
    let (id, token) = (str_of(&created["id"]), str_of(&created["api_token"]));
    let path = format!("/v1/professionals/{id}/schedule");
    server
        .call("PUT", &path, &token, None, Some(&open_schedule(0)))
        .await
        .expect(200, None);
    id
}

async fn book(server: &Served, token: &str, body: &Value) -> common::served::Answer {
    let key = uuid::Uuid::now_v7().to_string();
    server
        .call("POST", "/v1/bookings", token, Some(&key), Some(body))
        .await
}

/// Polls `done` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A module `$scenario` with the scenario's test on the memory store and on a fresh
/// PostgreSQL database (skipped loudly without one, outside CI).
macro_rules! on_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario(None).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = booking_postgres::test_support::TestDatabase::create().await else {
                    return; // SKIPPED was printed loudly
                };
                super::$scenario(Some(db.url())).await;
            }
        }
    };
}

/// A hold blocks its slot until `hold_expires_at` on the injected clock; then the sweep
/// worker marks it expired (recording `booking_expired`) and the slot can be booked again.
async fn a_hold_runs_out_on_the_clock_and_the_sweep_expires_it(database_url: Option<String>) {
    let clock = ManualClock::new(Utc::now());
    let config = Config {
        database_url,
        sweep_interval: Duration::from_millis(20),
        ..Config::default()
    };
    let server = serve(&clock, config).await;
    let (lin, ada) = (client(&server, "lin").await, client(&server, "ada").await);
    let pro = professional(&server).await;
    let slot = booking_body(&pro, 0, 60);
    let held = book(&server, &lin, &slot).await;
    let held = held.expect(201, None).clone();
    assert_eq!(held["status"], "pending_payment");
    let id = str_of(&held["id"]);
    book(&server, &ada, &slot)
        .await
        .expect(409, Some("slot_unavailable"));

    // One second short of the hold's 15 minutes: still held, nothing for the sweep.
    clock.advance(chrono::Duration::seconds(899));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let path = format!("/v1/bookings/{id}");
    let r = server.call("GET", &path, &lin, None, None).await;
    assert_eq!(r.expect(200, None)["status"], "pending_payment");
    book(&server, &ada, &slot)
        .await
        .expect(409, Some("slot_unavailable"));

    clock.advance(chrono::Duration::seconds(2));
    let store = server.state.engine().store().clone();
    eventually("the sweep expires the hold", async || {
        let events = store.events_after(None, 1000).await.unwrap();
        events
            .iter()
            .any(|e| e.kind == EventKind::BookingExpired && e.booking_id.to_string() == id)
    })
    .await;
    let r = server.call("GET", &path, &lin, None, None).await;
    assert_eq!(r.expect(200, None)["status"], "expired");
    let taken = book(&server, &ada, &slot).await;
    assert_eq!(taken.expect(201, None)["status"], "pending_payment");
    server.stop().await;
}

/// An attempt that claimed a key and never finished (a crash) blocks its retries for the
/// lease (60 s) on the injected clock; then a retry takes the key over and answers.
async fn a_crashed_attempt_s_lease_is_taken_over_when_it_runs_out(database_url: Option<String>) {
    let clock = ManualClock::new(Utc::now());
    let config = Config {
        database_url,
        ..Config::default()
    };
    let server = serve(&clock, config).await;
    let body = client_body("grace");
    let key = "crashed-attempt-1";
    // What the server would have claimed for this request before it crashed.
    let fingerprint =
        Fingerprint::of_request("POST", "/v1/clients", &serde_json::to_vec(&body).unwrap());
    let decision = server
        .state
        .engine()
        .begin_request(
            &Scope::new("admin"),
            &IdempotencyKey::parse(key).unwrap(),
            fingerprint,
        )
        .await
        .unwrap();
    assert!(matches!(decision, booking_core::Decision::Started { .. }));

    let retry = async || {
        server
            .call("POST", "/v1/clients", ADMIN, Some(key), Some(&body))
            .await
    };
    retry()
        .await
        .expect(409, Some("idempotency_request_in_flight"));
    clock.advance(chrono::Duration::seconds(59));
    retry()
        .await
        .expect(409, Some("idempotency_request_in_flight"));
    clock.advance(chrono::Duration::seconds(2));
    let taken = retry().await;
    let id = str_of(&taken.expect(201, None)["id"]);
    assert!(!taken.replayed);
    let replay = retry().await;
    assert!(replay.replayed);
    assert_eq!(str_of(&replay.expect(201, None)["id"]), id);
    server.stop().await;
}

/// A completed key is replayed (and refuses another request) until its TTL passes on the
/// injected clock; after that the same key is a new request.
async fn a_key_lives_for_its_ttl(database_url: Option<String>) {
    let clock = ManualClock::new(Utc::now());
    // The first sweep runs at start-up, the next purge a minute later: the key below
    // expires without being purged.
    let config = Config {
        database_url,
        idempotency_ttl: Duration::from_secs(3600),
        ..Config::default()
    };
    let server = serve(&clock, config).await;
    let key = "ttl-key-1";
    let post = async |body: &Value| {
        server
            .call("POST", "/v1/clients", ADMIN, Some(key), Some(body))
            .await
    };
    let (first, other) = (client_body("first"), client_body("other"));
    let id = str_of(&post(&first).await.expect(201, None)["id"]);
    clock.advance(chrono::Duration::seconds(3599));
    let replay = post(&first).await;
    assert!(replay.replayed);
    assert_eq!(str_of(&replay.expect(201, None)["id"]), id);
    post(&other)
        .await
        .expect(422, Some("idempotency_key_reused"));

    clock.advance(chrono::Duration::seconds(2));
    let again = post(&first).await;
    assert!(!again.replayed);
    assert_ne!(str_of(&again.expect(201, None)["id"]), id);
    server.stop().await;
}

/// The sweep worker purges keys past their TTL: once it has, moving the clock back to
/// when the key was live finds no record (another request with the key is new, where the
/// live record would have refused it).
async fn the_sweep_purges_expired_keys(database_url: Option<String>) {
    let t0 = Utc::now();
    let clock = ManualClock::new(t0);
    let config = Config {
        database_url,
        idempotency_ttl: Duration::from_secs(3600),
        sweep_interval: Duration::from_millis(10),
        ..Config::default()
    };
    let server = serve(&clock, config).await;
    let key = "purged-key-1";
    let post = async |body: &Value| {
        server
            .call("POST", "/v1/clients", ADMIN, Some(key), Some(body))
            .await
    };
    post(&client_body("first")).await.expect(201, None);
    let other = client_body("other");
    // Live and not purged: refused.
    clock.set(t0 + chrono::Duration::minutes(1));
    post(&other)
        .await
        .expect(422, Some("idempotency_key_reused"));
    let mut refused = 0;
    eventually("the sweep purges the expired key", async || {
        clock.set(t0 + chrono::Duration::hours(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
        clock.set(t0 + chrono::Duration::minutes(1));
        let r = post(&other).await;
        if r.status == 422 {
            refused += 1;
            return false;
        }
        r.expect(201, None);
        true
    })
    .await;
    // The purge runs every 12th sweep: the first tries usually found the record.
    println!("refused before the purge: {refused}");
    server.stop().await;
}

on_both_stores!(a_hold_runs_out_on_the_clock_and_the_sweep_expires_it);
on_both_stores!(a_crashed_attempt_s_lease_is_taken_over_when_it_runs_out);
on_both_stores!(a_key_lives_for_its_ttl);
on_both_stores!(the_sweep_purges_expired_keys);
