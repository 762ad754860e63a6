//! `Idempotency-Key`: missing, invalid, replayed, reused, scoped by principal, in flight,
//! and retried after a crash.

use booking_core::idempotency::request_ref;
use booking_core::{
    BookingRequest, ClientId, Decision, Fingerprint, IdempotencyKey, ProfessionalId, Scope,
    TimeRange,
};
use serde_json::json;

use crate::common::metrics::isolated;
use crate::common::*;
use crate::raw_post;

#[tokio::test]
async fn idempotency_key_rules() {
    isolated(|metrics| async move {
        let app = TestApp::new();
        let body = json!({"name": "Lin", "email": "lin@example.com"});
        let create = |key: Option<&str>, body| {
            app.request("POST", "/v1/clients")
                .token(ADMIN)
                .maybe_key(key)
                .json(body)
                .send()
        };
        // Missing.
        create(None, body.clone())
            .await
            .assert_problem(400, "idempotency_key_missing");
        // Invalid.
        create(Some("has space"), body.clone())
            .await
            .assert_problem(422, "validation_failed");
        // First use, then a byte-for-byte replay (the quoted form is the same key).
        let first = create(Some("k-1"), body.clone()).await;
        first.assert_status(201);
        assert!(first.header("idempotent-replayed").is_none());
        let again = create(Some("\"k-1\""), body.clone()).await;
        assert_eq!(again.status, first.status);
        assert_eq!(again.bytes, first.bytes);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.header("content-type"), Some("application/json"));
        // Key order and white space do not change the fingerprint.
        let reordered = raw_post(
            "/v1/clients",
            ADMIN,
            Some("k-1"),
            Some("application/json"),
            br#" { "email": "lin@example.com", "name": "Lin" } "#.to_vec(),
        );
        assert_eq!(app.send(reordered).await.bytes, first.bytes);
        // Same key, other body: 422.
        create(
            Some("k-1"),
            json!({"name": "Other", "email": "o@example.com"}),
        )
        .await
        .assert_problem(422, "idempotency_key_reused");
        // Final error answers are replayed too.
        let bad = json!({"name": "", "email": "x"});
        let e1 = create(Some("k-bad"), bad.clone()).await;
        e1.assert_problem(422, "validation_failed");
        let e2 = create(Some("k-bad"), bad).await;
        assert_eq!(e2.bytes, e1.bytes);
        assert_eq!(e2.header("idempotent-replayed"), Some("true"));
        // Three replays (quoted key, reordered body, stored error) and one mismatch.
        let m = metrics.scrape();
        assert_eq!(m.value("idempotency_replays_total", &[]), 3.0);
        assert_eq!(m.value("idempotency_mismatches_total", &[]), 1.0);
        assert_eq!(m.value("idempotency_in_flight_total", &[]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_404_before_the_idempotency_key() {
    let app = TestApp::new();
    let client = app.create_client("c").await;
    let body = json!({"start": ts(at(60)), "end": ts(at(90))});
    for path in [
        "/v1/bookings/not-a-uuid/cancel",
        "/v1/bookings/not-a-uuid/reschedule",
    ] {
        for token in [ADMIN, client.token.as_str()] {
            // Without a key, with an invalid one, with a valid one: the id decides first.
            for key in [None, Some("has space"), Some("k-404")] {
                app.request("POST", path)
                    .token(token)
                    .maybe_key(key)
                    .json(body.clone())
                    .send()
                    .await
                    .assert_problem(404, "not_found");
            }
        }
        // Authentication still comes first.
        app.request("POST", path)
            .send()
            .await
            .assert_problem(401, "unauthorized");
    }
    // A well-formed id still needs its key.
    let unknown = uuid::Uuid::now_v7();
    app.request("POST", &format!("/v1/bookings/{unknown}/cancel"))
        .token(&client.token)
        .send()
        .await
        .assert_problem(400, "idempotency_key_missing");
}

#[tokio::test]
async fn idempotency_scope_is_the_principal() {
    let app = TestApp::new();
    let pro = app.create_open_professional(0).await;
    let a = app.create_client("a").await;
    let b = app.create_client("b").await;
    let book = |client: &Party| {
        app.request("POST", "/v1/bookings")
            .token(&client.token)
            .key("same")
            .json(booking_body(&pro.id, 0, 60))
            .send()
    };
    book(&a).await.assert_status(201);
    // Client b's identical key is independent: a real attempt, which conflicts.
    let rb = book(&b).await;
    rb.assert_problem(409, "slot_unavailable");
    assert!(rb.header("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_request_in_flight_is_409_with_retry_after() {
    isolated(|metrics| async move {
        let app = TestApp::new();
        let body = json!({"name": "Lin", "email": "lin@example.com"});
        let bytes = serde_json::to_vec(&body).unwrap();
        // Another attempt holds the key.
        let key = IdempotencyKey::parse("busy").unwrap();
        let fp = Fingerprint::of_request("POST", "/v1/clients", &bytes);
        let d = app
            .state
            .engine()
            .begin_request(&Scope::new("admin"), &key, fp)
            .await
            .unwrap();
        assert!(matches!(d, Decision::Started { .. }));
        let r = app
            .send(raw_post(
                "/v1/clients",
                ADMIN,
                Some("busy"),
                Some("application/json"),
                bytes,
            ))
            .await;
        r.assert_problem(409, "idempotency_request_in_flight");
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(secs >= 1);
        let m = metrics.scrape();
        assert_eq!(m.value("idempotency_in_flight_total", &[]), 1.0);
        assert_eq!(m.value("idempotency_replays_total", &[]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_retry_after_a_crash_returns_the_first_attempts_booking() {
    let app = TestApp::new();
    let pro = app.create_open_professional(0).await;
    let lin = app.create_client("lin").await;
    let body = booking_body(&pro.id, 60, 60);
    let bytes = serde_json::to_vec(&body).unwrap();
    // The first attempt began, created the booking, and then failed before storing its
    // answer (a 5xx releases the key without a stored response).
    let scope = Scope::new(format!("client:{}", lin.id));
    let key = IdempotencyKey::parse("crashy").unwrap();
    let fp = Fingerprint::of_request("POST", "/v1/bookings", &bytes);
    let engine = app.state.engine();
    let Decision::Started { lease, first_seen } =
        engine.begin_request(&scope, &key, fp).await.unwrap()
    else {
        panic!("the first attempt starts");
    };
    let first = engine
        .create_booking(&BookingRequest {
            client_id: lin.id.parse::<ClientId>().unwrap(),
            professional_id: pro.id.parse::<ProfessionalId>().unwrap(),
            range: TimeRange::new(at(60), at(120)).unwrap(),
            request_ref: Some(request_ref(&scope, &key, &fp, first_seen)),
        })
        .await
        .unwrap();
    assert!(engine.abandon_request(&scope, &key, lease).await.unwrap());
    let r = app
        .send(raw_post(
            "/v1/bookings",
            &lin.token,
            Some("crashy"),
            Some("application/json"),
            bytes,
        ))
        .await;
    let v = r.assert_status(201);
    assert_eq!(v["id"], first.booking().id.to_string());
    let list = app.get("/v1/bookings", ADMIN).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
}
