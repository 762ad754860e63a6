//! In-process tests of every endpoint and every error code (memory store, `oneshot`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use axum::body::Body;
use axum::http::Request;
use booking_core::idempotency::request_ref;
use booking_core::{
    BookingRequest, ClientId, Decision, Fingerprint, IdempotencyKey, ProfessionalId, Scope,
    TimeRange,
};
use common::*;
use serde_json::{Value, json};

fn raw_post(
    path: &str,
    token: &str,
    key: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    if let Some(c) = ctype {
        b = b.header("content-type", c);
    }
    b.body(Body::from(body)).unwrap()
}

// ---- operations ---------------------------------------------------------------------------

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = TestApp::new();
    let r = app.call("GET", "/healthz", None, None, None).await;
    assert_eq!(r.assert_status(200)["status"], "ok");
    assert!(r.header("x-request-id").is_some());
    app.call("GET", "/readyz", None, None, None)
        .await
        .assert_status(200);
    let m = app.call("GET", "/metrics", None, None, None).await;
    m.assert_status(200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let m = String::from_utf8(app.call("GET", "/metrics", None, None, None).await.bytes).unwrap();
    assert!(m.contains("http_requests_total"), "{m}");
    assert!(m.contains("route=\"/healthz\""), "{m}");
    let doc = app.call("GET", "/openapi.json", None, None, None).await;
    let doc = doc.assert_status(200);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/clients", "post"),
        ("/v1/professionals", "post"),
        ("/v1/professionals", "get"),
        ("/v1/professionals/{id}", "get"),
        ("/v1/professionals/{id}", "patch"),
        ("/v1/professionals/{id}/schedule", "put"),
        ("/v1/professionals/{id}/schedule", "get"),
        ("/v1/professionals/{id}/availability", "get"),
        ("/v1/bookings", "post"),
        ("/v1/bookings", "get"),
        ("/v1/bookings/{id}", "get"),
        ("/v1/bookings/{id}/cancel", "post"),
        ("/v1/bookings/{id}/reschedule", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} undocumented");
        if path.starts_with("/v1/") {
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["BookingView"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::new();
    app.call("GET", "/nope", None, None, None)
        .await
        .assert_problem(404, "not_found");
    app.call("GET", "/v1/nope", Some(ADMIN), None, None)
        .await
        .assert_problem(404, "not_found");
    let r = app.call("DELETE", "/healthz", None, None, None).await;
    r.assert_problem(405, "method_not_allowed");
    assert!(r.header("allow").is_some());
    app.call("DELETE", "/v1/bookings", Some(ADMIN), None, None)
        .await
        .assert_problem(405, "method_not_allowed");
}

// ---- auth ----------------------------------------------------------------------------------

#[tokio::test]
async fn missing_or_unknown_tokens_are_401() {
    let app = TestApp::new();
    let r = app.call("GET", "/v1/professionals", None, None, None).await;
    r.assert_problem(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.call("GET", "/v1/professionals", Some("bk_unknown"), None, None)
        .await
        .assert_problem(401, "unauthorized");
    let req = Request::builder()
        .uri("/v1/professionals")
        .header("authorization", "Basic abc")
        .body(Body::empty())
        .unwrap();
    app.send(req).await.assert_problem(401, "unauthorized");
    // Issued tokens work.
    let (_, token) = app.client("lin").await;
    app.get("/v1/professionals", &token)
        .await
        .assert_status(200);
}

// ---- clients -------------------------------------------------------------------------------

#[tokio::test]
async fn create_client_admin_only_and_validated() {
    let app = TestApp::new();
    let r = app
        .post(
            "/v1/clients",
            ADMIN,
            json!({"name": " Lin ", "email": "lin@example.com"}),
        )
        .await;
    let v = r.assert_status(201);
    assert_eq!(v["name"], "Lin");
    assert!(v["api_token"].as_str().unwrap().starts_with("bk_"));
    let token = str_of(&v["api_token"]);
    // A client may not create clients.
    app.post(
        "/v1/clients",
        &token,
        json!({"name": "X", "email": "x@example.com"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Invalid values: 422 with every field.
    let r = app
        .post("/v1/clients", ADMIN, json!({"name": "", "email": "nope"}))
        .await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "email"]);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::new();
    let cases: Vec<(Option<&str>, &[u8])> = vec![
        (Some("application/json"), b"{not json"),
        (Some("text/plain"), br#"{"name":"a","email":"a@b"}"#),
        (None, br#"{"name":"a","email":"a@b"}"#),
        (
            Some("application/json"),
            br#"{"name":"a","email":"a@b","extra":1}"#,
        ),
        (Some("application/json"), br#"{"name":1,"email":"a@b"}"#),
        (Some("application/json"), b""),
    ];
    for (i, (ctype, body)) in cases.into_iter().enumerate() {
        let r = app
            .send(raw_post(
                "/v1/clients",
                ADMIN,
                Some(&format!("m{i}")),
                ctype,
                body.to_vec(),
            ))
            .await;
        r.assert_problem(400, "malformed_request");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::new();
    let big = vec![b' '; 70 * 1024];
    // With a Content-Length.
    let mut req = raw_post(
        "/v1/clients",
        ADMIN,
        Some("big"),
        Some("application/json"),
        big.clone(),
    );
    req.headers_mut()
        .insert("content-length", big.len().to_string().parse().unwrap());
    app.send(req).await.assert_problem(413, "payload_too_large");
    // Streamed, without one.
    let req = raw_post(
        "/v1/clients",
        ADMIN,
        Some("big2"),
        Some("application/json"),
        big,
    );
    app.send(req).await.assert_problem(413, "payload_too_large");
    // Also on routes without idempotency.
    let (id, token) = app.professional("massage", 100).await;
    let req = Request::builder()
        .method("PATCH")
        .uri(format!("/v1/professionals/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(vec![b' '; 70 * 1024]))
        .unwrap();
    app.send(req).await.assert_problem(413, "payload_too_large");
}

// ---- idempotency ---------------------------------------------------------------------------

#[tokio::test]
async fn idempotency_key_rules() {
    let app = TestApp::new();
    let body = json!({"name": "Lin", "email": "lin@example.com"});
    // Missing.
    app.call("POST", "/v1/clients", Some(ADMIN), None, Some(body.clone()))
        .await
        .assert_problem(400, "idempotency_key_missing");
    // Invalid.
    app.call(
        "POST",
        "/v1/clients",
        Some(ADMIN),
        Some("has space"),
        Some(body.clone()),
    )
    .await
    .assert_problem(422, "validation_failed");
    // First use, then a byte-for-byte replay (the quoted form is the same key).
    let first = app
        .call(
            "POST",
            "/v1/clients",
            Some(ADMIN),
            Some("k-1"),
            Some(body.clone()),
        )
        .await;
    first.assert_status(201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = app
        .call(
            "POST",
            "/v1/clients",
            Some(ADMIN),
            Some("\"k-1\""),
            Some(body.clone()),
        )
        .await;
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
    app.call(
        "POST",
        "/v1/clients",
        Some(ADMIN),
        Some("k-1"),
        Some(json!({"name": "Other", "email": "o@example.com"})),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    // Final error answers are replayed too.
    let bad = json!({"name": "", "email": "x"});
    let e1 = app
        .call(
            "POST",
            "/v1/clients",
            Some(ADMIN),
            Some("k-bad"),
            Some(bad.clone()),
        )
        .await;
    e1.assert_problem(422, "validation_failed");
    let e2 = app
        .call("POST", "/v1/clients", Some(ADMIN), Some("k-bad"), Some(bad))
        .await;
    assert_eq!(e2.bytes, e1.bytes);
    assert_eq!(e2.header("idempotent-replayed"), Some("true"));
    let m = String::from_utf8(app.call("GET", "/metrics", None, None, None).await.bytes).unwrap();
    assert!(m.contains("idempotency_replays_total"), "{m}");
    assert!(m.contains("idempotency_mismatches_total"), "{m}");
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_404_before_the_idempotency_key() {
    let app = TestApp::new();
    let (_, client) = app.client("c").await;
    let body = json!({"start": ts(at(60)), "end": ts(at(90))});
    for path in [
        "/v1/bookings/not-a-uuid/cancel",
        "/v1/bookings/not-a-uuid/reschedule",
    ] {
        for token in [ADMIN, client.as_str()] {
            // Without a key, with an invalid one, with a valid one: the id decides first.
            for key in [None, Some("has space"), Some("k-404")] {
                app.call("POST", path, Some(token), key, Some(body.clone()))
                    .await
                    .assert_problem(404, "not_found");
            }
        }
        // Authentication still comes first.
        app.call("POST", path, None, None, None)
            .await
            .assert_problem(401, "unauthorized");
    }
    // A well-formed id still needs its key.
    let unknown = uuid::Uuid::now_v7();
    app.call(
        "POST",
        &format!("/v1/bookings/{unknown}/cancel"),
        Some(&client),
        None,
        None,
    )
    .await
    .assert_problem(400, "idempotency_key_missing");
}

#[tokio::test]
async fn idempotency_scope_is_the_principal() {
    let app = TestApp::new();
    let (pro, _) = app.open_professional(0).await;
    let (_, a) = app.client("a").await;
    let (_, b) = app.client("b").await;
    let ra = app
        .call(
            "POST",
            "/v1/bookings",
            Some(&a),
            Some("same"),
            Some(booking_body(&pro, 0, 60)),
        )
        .await;
    ra.assert_status(201);
    // Client b's identical key is independent: a real attempt, which conflicts.
    let rb = app
        .call(
            "POST",
            "/v1/bookings",
            Some(&b),
            Some("same"),
            Some(booking_body(&pro, 0, 60)),
        )
        .await;
    rb.assert_problem(409, "slot_unavailable");
    assert!(rb.header("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_request_in_flight_is_409_with_retry_after() {
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
}

#[tokio::test]
async fn a_retry_after_a_crash_returns_the_first_attempts_booking() {
    let app = TestApp::new();
    let (pro, _) = app.open_professional(0).await;
    let (client_id, token) = app.client("lin").await;
    let body = booking_body(&pro, 60, 60);
    let bytes = serde_json::to_vec(&body).unwrap();
    // The first attempt began, created the booking, and then failed before storing its
    // answer (a 5xx releases the key without a stored response).
    let scope = Scope::new(format!("client:{client_id}"));
    let key = IdempotencyKey::parse("crashy").unwrap();
    let fp = Fingerprint::of_request("POST", "/v1/bookings", &bytes);
    let engine = app.state.engine();
    let booking_core::Decision::Started { lease, first_seen } =
        engine.begin_request(&scope, &key, fp).await.unwrap()
    else {
        panic!("the first attempt starts");
    };
    let first = engine
        .create_booking(&BookingRequest {
            client_id: client_id.parse::<ClientId>().unwrap(),
            professional_id: pro.parse::<ProfessionalId>().unwrap(),
            range: TimeRange::new(at(60), at(120)).unwrap(),
            request_ref: Some(request_ref(&scope, &key, &fp, first_seen)),
        })
        .await
        .unwrap();
    assert!(engine.abandon_request(&scope, &key, lease).await.unwrap());
    let r = app
        .send(raw_post(
            "/v1/bookings",
            &token,
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

// ---- professionals -------------------------------------------------------------------------

#[tokio::test]
async fn professionals_create_get_patch() {
    let app = TestApp::new();
    let r = app
        .post(
            "/v1/professionals",
            ADMIN,
            professional_body("physio", 9000),
        )
        .await;
    let v = r.assert_status(201).clone();
    for k in [
        "id",
        "name",
        "category",
        "location",
        "hourly_rate_cents",
        "currency",
        "timezone",
        "is_active",
        "created_at",
        "updated_at",
        "api_token",
    ] {
        assert!(!v[k].is_null(), "{k} missing in {v}");
    }
    assert_eq!(v["currency"], "eur");
    assert_eq!(v["is_active"], true);
    let id = str_of(&v["id"]);
    let token = str_of(&v["api_token"]);
    let (_, client) = app.client("lin").await;
    let (_, other_pro) = app.professional("physio", 1).await;

    let g = app.get(&format!("/v1/professionals/{id}"), &client).await;
    let g = g.assert_status(200);
    assert!(g.get("api_token").is_none());
    assert_eq!(g["name"], "Grace");

    app.get("/v1/professionals/not-a-uuid", &client)
        .await
        .assert_problem(404, "not_found");
    app.get(
        &format!("/v1/professionals/{}", uuid::Uuid::now_v7()),
        &client,
    )
    .await
    .assert_problem(404, "not_found");

    let path = format!("/v1/professionals/{id}");
    let patch = |t: &str, b: Value| {
        let app = app.clone();
        let (t, path) = (t.to_owned(), path.clone());
        async move { app.call("PATCH", &path, Some(&t), None, Some(b)).await }
    };
    let r = patch(&token, json!({"hourly_rate_cents": 9500})).await;
    assert_eq!(r.assert_status(200)["hourly_rate_cents"], 9500);
    let r = patch(ADMIN, json!({"name": "Grace H."})).await;
    assert_eq!(r.assert_status(200)["name"], "Grace H.");
    patch(&client, json!({"name": "x"}))
        .await
        .assert_problem(403, "forbidden");
    patch(&other_pro, json!({"name": "x"}))
        .await
        .assert_problem(403, "forbidden");
    let r = patch(&token, json!({"timezone": "Mars/Olympus", "location": {"lat": 91.0, "lng": 0.0}, "hourly_rate_cents": -1})).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 3, "{}", r.json);
    patch(&token, json!({"nope": 1}))
        .await
        .assert_problem(400, "malformed_request");
    app.call(
        "PATCH",
        &format!("/v1/professionals/{}", uuid::Uuid::now_v7()),
        Some(ADMIN),
        None,
        Some(json!({})),
    )
    .await
    .assert_problem(404, "not_found");

    // Create-time validation.
    let mut bad = professional_body("Not A Slug", -5);
    bad["timezone"] = json!("Nowhere/Land");
    bad["location"] = json!({"lat": 0.0, "lng": 200.0});
    let r = app.post("/v1/professionals", ADMIN, bad).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 4, "{}", r.json);
    app.post("/v1/professionals", &client, professional_body("x", 1))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn search_filters_order_and_pagination() {
    let app = TestApp::new();
    for (cat, rate) in [
        ("massage", 5000),
        ("massage", 3000),
        ("physio", 4000),
        ("massage", 7000),
        ("massage", 3000),
    ] {
        app.professional(cat, rate).await;
    }
    let (inactive, _) = app.professional("massage", 1000).await;
    app.call(
        "PATCH",
        &format!("/v1/professionals/{inactive}"),
        Some(ADMIN),
        None,
        Some(json!({"is_active": false})),
    )
    .await
    .assert_status(200);
    let (_, t) = app.client("lin").await;

    let all = app.get("/v1/professionals?category=massage", &t).await;
    let rates: Vec<i64> = all.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hourly_rate_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(rates, [3000, 3000, 5000, 7000]);
    assert!(all.json["next_cursor"].is_null());

    let r = app
        .get(
            "/v1/professionals?min_rate_cents=3500&max_rate_cents=5000",
            &t,
        )
        .await;
    let rates: Vec<i64> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hourly_rate_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(rates, [4000, 5000]);

    // Pages of 3 over all five active professionals.
    let p1 = app.get("/v1/professionals?limit=3", &t).await;
    assert_eq!(p1.json["data"].as_array().unwrap().len(), 3);
    let cursor = str_of(&p1.json["next_cursor"]);
    let p2 = app
        .get(&format!("/v1/professionals?limit=3&cursor={cursor}"), &t)
        .await;
    assert_eq!(p2.assert_status(200)["data"].as_array().unwrap().len(), 2);
    assert!(p2.json["next_cursor"].is_null());
    // The cursor belongs to its query.
    app.get(
        &format!("/v1/professionals?category=massage&cursor={cursor}"),
        &t,
    )
    .await
    .assert_problem(400, "malformed_request");
    app.get("/v1/professionals?cursor=garbage", &t)
        .await
        .assert_problem(400, "malformed_request");

    for q in [
        "limit=0",
        "limit=101",
        "limit=x",
        "category=Bad%20Slug",
        "min_rate_cents=-1",
        "min_rate_cents=5&max_rate_cents=4",
        "lat=1&lng=2",
        "radius_km=3",
        "lat=91&lng=2&radius_km=3",
        "lat=1&lng=-181&radius_km=3",
        "lat=1&lng=2&radius_km=0",
        "lat=1&lng=2&radius_km=20000.5",
        "lat=NaN&lng=2&radius_km=3",
        "lat=1&lng=2&radius_km=inf",
        "lat=x&lng=2&radius_km=3",
        "q=",
        "q=%20%20",
        "q=a%00b",
    ] {
        app.get(&format!("/v1/professionals?{q}"), &t)
            .await
            .assert_problem(422, "validation_failed");
    }
    // Unknown parameters are ignored.
    app.get("/v1/professionals?whatever=1", &t)
        .await
        .assert_status(200);
}

// ---- schedules and availability -----------------------------------------------------------

#[tokio::test]
async fn schedules_put_get_and_permissions() {
    let app = TestApp::new();
    let (id, token) = app.professional("massage", 6000).await;
    let (_, other) = app.professional("massage", 6000).await;
    let (_, client) = app.client("lin").await;
    let path = format!("/v1/professionals/{id}/schedule");
    app.get(&path, &client)
        .await
        .assert_problem(404, "not_found");
    let body = json!({
        "timezone": "Europe/Berlin",
        "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"}],
        "overrides": [{"date": "2027-03-10", "intervals": [{"start": "10:00", "end": "12:00"}]}],
        "buffer_before_minutes": 0, "buffer_after_minutes": 15,
        "min_notice_minutes": 120, "horizon_days": 60, "slot_step_minutes": 30
    });
    let r = app
        .call("PUT", &path, Some(&token), None, Some(body.clone()))
        .await;
    assert_eq!(r.assert_status(200), &body);
    assert_eq!(app.get(&path, &client).await.assert_status(200), &body);
    app.call("PUT", &path, Some(ADMIN), None, Some(body.clone()))
        .await
        .assert_status(200);
    app.call("PUT", &path, Some(&other), None, Some(body.clone()))
        .await
        .assert_problem(403, "forbidden");
    app.call("PUT", &path, Some(&client), None, Some(body.clone()))
        .await
        .assert_problem(403, "forbidden");
    let r = app
        .call(
            "PUT",
            &path,
            Some(&token),
            None,
            Some(json!({"timezone": "Mars/Olympus", "weekly": [{"weekday": "mon", "start": "10:00", "end": "09:00"}]})),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["timezone", "weekly[0].end"]);
    app.call(
        "PUT",
        &path,
        Some(&token),
        None,
        Some(json!({"timezone": "UTC", "bogus": 1})),
    )
    .await
    .assert_problem(400, "malformed_request");
    app.call(
        "PUT",
        &format!("/v1/professionals/{}/schedule", uuid::Uuid::now_v7()),
        Some(ADMIN),
        None,
        Some(body),
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn availability_lists_free_slots() {
    let app = TestApp::new();
    let (pro, _) = app.open_professional(30).await;
    let (_, client) = app.client("lin").await;
    let url = |from: i64, to: i64, d: i64| {
        format!(
            "/v1/professionals/{pro}/availability?from={}&to={}&duration_minutes={d}",
            ts(at(from)),
            ts(at(to))
        )
    };
    let r = app.get(&url(0, 180, 60), &client).await;
    let slots = r.assert_status(200)["slots"].as_array().unwrap().clone();
    assert_eq!(slots.len(), 5, "{slots:?}"); // 10:00 .. 12:00 every 30 minutes
    assert_eq!(slots[0]["start"], ts(at(0)));
    assert_eq!(slots[0]["end"], ts(at(60)));
    // Book 11:00-12:00, blocking 11:00-12:30 with the 30-minute buffer. A slot's own
    // blocked range (slot + 30 minutes) must miss it: 10:00 (blocks to 11:30) is gone,
    // 12:30 and 13:00 remain.
    app.post("/v1/bookings", &client, booking_body(&pro, 60, 60))
        .await
        .assert_status(201);
    let r = app.get(&url(0, 240, 60), &client).await;
    let starts: Vec<String> = r.json["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["start"]))
        .collect();
    assert_eq!(starts, [ts(at(150)), ts(at(180))]);

    for q in [
        format!("/v1/professionals/{pro}/availability"),
        url(60, 0, 60),
        url(0, 60 * 24 * 32, 60),
        url(0, 180, 3),
        url(0, 180, 99_999_999_999_999),
        format!("/v1/professionals/{pro}/availability?from=yesterday&to=now&duration_minutes=x"),
    ] {
        app.get(&q, &client)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.get(
        &format!(
            "/v1/professionals/{}/availability?from={}&to={}&duration_minutes=60",
            uuid::Uuid::now_v7(),
            ts(at(0)),
            ts(at(60))
        ),
        &client,
    )
    .await
    .assert_problem(404, "not_found");
}

// ---- bookings ------------------------------------------------------------------------------

#[tokio::test]
async fn booking_lifecycle_and_permissions() {
    let app = TestApp::new();
    let (pro, pro_token) = app.open_professional(0).await;
    let (_, other_pro) = app.open_professional(0).await;
    let (client_id, client) = app.client("lin").await;
    let (_, other_client) = app.client("max").await;

    let r = app
        .post("/v1/bookings", &client, booking_body(&pro, 0, 90))
        .await;
    let b = r.assert_status(201).clone();
    assert_eq!(b["status"], "confirmed");
    assert_eq!(b["price"], json!({"amount_cents": 9000, "currency": "eur"}));
    assert_eq!(b["client_id"], client_id);
    assert_eq!(b["professional_id"], pro);
    assert!(b["payment"].is_null());
    assert!(b["hold_expires_at"].is_null());
    assert_eq!(b["start"], ts(at(0)));
    let id = str_of(&b["id"]);
    assert_eq!(r.header("location").unwrap(), format!("/v1/bookings/{id}"));
    let path = format!("/v1/bookings/{id}");

    // Who can see it.
    for t in [client.as_str(), pro_token.as_str(), ADMIN] {
        assert_eq!(app.get(&path, t).await.assert_status(200)["id"], id);
    }
    for t in [other_client.as_str(), other_pro.as_str()] {
        app.get(&path, t).await.assert_problem(404, "not_found");
    }
    app.get("/v1/bookings/xyz", &client)
        .await
        .assert_problem(404, "not_found");

    // Conflicts, availability, who may book.
    app.post("/v1/bookings", &other_client, booking_body(&pro, 60, 60))
        .await
        .assert_problem(409, "slot_unavailable");
    app.post("/v1/bookings", &other_client, booking_body(&pro, 90, 60))
        .await
        .assert_status(201);
    let past = json!({"professional_id": pro, "start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"});
    app.post("/v1/bookings", &client, past)
        .await
        .assert_problem(422, "outside_availability");
    let (no_schedule, _) = app.professional("massage", 1).await;
    app.post("/v1/bookings", &client, booking_body(&no_schedule, 0, 60))
        .await
        .assert_problem(422, "outside_availability");
    app.post("/v1/bookings", ADMIN, booking_body(&pro, 300, 60))
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/bookings", &pro_token, booking_body(&pro, 300, 60))
        .await
        .assert_problem(403, "forbidden");
    app.post(
        "/v1/bookings",
        &client,
        booking_body(&uuid::Uuid::now_v7().to_string(), 300, 60),
    )
    .await
    .assert_problem(404, "not_found");
    let r = app
        .post(
            "/v1/bookings",
            &client,
            json!({"professional_id": "x", "start": "soon", "end": "later"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 3);
    app.post("/v1/bookings", &client, booking_body(&pro, 400, -60))
        .await
        .assert_problem(422, "validation_failed");
    app.post("/v1/bookings", &client, json!({"professional_id": pro}))
        .await
        .assert_problem(400, "malformed_request");

    // Reschedule: its client only; conflicts leave it unchanged.
    let resched = format!("{path}/reschedule");
    let to = |m: i64| json!({"start": ts(at(m)), "end": ts(at(m + 90))});
    app.post(&resched, &pro_token, to(300))
        .await
        .assert_problem(403, "forbidden");
    app.post(&resched, &other_client, to(300))
        .await
        .assert_problem(404, "not_found");
    app.post(&resched, &client, to(120))
        .await
        .assert_problem(409, "slot_unavailable");
    assert_eq!(app.get(&path, &client).await.json["start"], ts(at(0)));
    let r = app.post(&resched, &client, to(300)).await;
    assert_eq!(r.assert_status(200)["start"], ts(at(300)));
    app.post(
        &resched,
        &client,
        json!({"start": ts(at(600)), "end": ts(at(630))}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Cancel: client, professional or admin; cancelling again is the same answer.
    let cancel = format!("{path}/cancel");
    app.post(&cancel, &other_client, json!({}))
        .await
        .assert_problem(404, "not_found");
    let r = app
        .call("POST", &cancel, Some(&pro_token), Some("c1"), None)
        .await;
    assert_eq!(r.assert_status(200)["status"], "cancelled");
    let again = app
        .call("POST", &cancel, Some(&client), Some("c2"), None)
        .await;
    assert_eq!(again.assert_status(200)["status"], "cancelled");
    app.post(&resched, &client, to(600))
        .await
        .assert_problem(409, "invalid_state");
    app.call(
        "POST",
        "/v1/bookings/nope/cancel",
        Some(&client),
        Some("c3"),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    // The slot is free again.
    app.post("/v1/bookings", &other_client, booking_body(&pro, 300, 60))
        .await
        .assert_status(201);

    let m = String::from_utf8(app.call("GET", "/metrics", None, None, None).await.bytes).unwrap();
    assert!(m.contains("bookings_created_total"), "{m}");
    assert!(m.contains("booking_conflicts_total"), "{m}");
}

#[tokio::test]
async fn booking_lists_are_scoped_filtered_and_paginated() {
    let app = TestApp::new();
    let (pro_a, token_a) = app.open_professional(0).await;
    let (pro_b, _) = app.open_professional(0).await;
    let (_, lin) = app.client("lin").await;
    let (_, max) = app.client("max").await;
    for i in 0..5 {
        app.post("/v1/bookings", &lin, booking_body(&pro_a, i * 60, 60))
            .await
            .assert_status(201);
    }
    app.post("/v1/bookings", &max, booking_body(&pro_b, 0, 60))
        .await
        .assert_status(201);
    let count = |r: &Res| r.json["data"].as_array().unwrap().len();
    assert_eq!(count(&app.get("/v1/bookings", &lin).await), 5);
    assert_eq!(count(&app.get("/v1/bookings", &max).await), 1);
    assert_eq!(count(&app.get("/v1/bookings", &token_a).await), 5);
    assert_eq!(count(&app.get("/v1/bookings", ADMIN).await), 6);
    assert_eq!(
        count(
            &app.get(&format!("/v1/bookings?professional_id={pro_b}"), ADMIN)
                .await
        ),
        1
    );
    assert_eq!(
        count(&app.get("/v1/bookings?status=cancelled", ADMIN).await),
        0
    );
    assert_eq!(
        count(
            &app.get(
                &format!("/v1/bookings?from={}&to={}", ts(at(60)), ts(at(180))),
                &lin
            )
            .await
        ),
        2
    );
    // Pages in start order.
    let p1 = app.get("/v1/bookings?limit=2", &lin).await;
    let mut starts: Vec<String> = p1.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| str_of(&b["start"]))
        .collect();
    let mut cursor = str_of(&p1.json["next_cursor"]);
    while !cursor.is_empty() {
        let p = app
            .get(&format!("/v1/bookings?limit=2&cursor={cursor}"), &lin)
            .await;
        starts.extend(
            p.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| str_of(&b["start"])),
        );
        cursor = str_of(&p.json["next_cursor"]);
    }
    let expected: Vec<String> = (0..5).map(|i| ts(at(i * 60))).collect();
    assert_eq!(starts, expected);
    // A cursor of another query or caller is rejected.
    let c = str_of(&p1.json["next_cursor"]);
    app.get(&format!("/v1/bookings?status=confirmed&cursor={c}"), &lin)
        .await
        .assert_problem(400, "malformed_request");
    app.get(&format!("/v1/bookings?limit=2&cursor={c}"), ADMIN)
        .await
        .assert_problem(400, "malformed_request");
    for q in [
        "status=done",
        "from=x",
        "professional_id=nope",
        "limit=1000",
        "from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z",
    ] {
        app.get(&format!("/v1/bookings?{q}"), &lin)
            .await
            .assert_problem(422, "validation_failed");
    }
}

// ---- robustness ----------------------------------------------------------------------------

#[tokio::test]
async fn odd_inputs_never_produce_a_5xx() {
    let app = TestApp::new();
    let (pro, _) = app.open_professional(0).await;
    let (_, client) = app.client("lin").await;
    let paths = [
        "/v1/professionals/%FF%FE".to_owned(),
        "/v1/professionals/%00/schedule".to_owned(),
        format!("/v1/professionals/{pro}/availability?from=%FF&to=%00&duration_minutes=-1"),
        format!(
            "/v1/professionals/{pro}/availability?from=2027-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&duration_minutes=60"
        ),
        format!(
            "/v1/professionals/{pro}/availability?from=-262143-01-01T00:00:00Z&to=%2B262142-12-31T23:59:59Z&duration_minutes=60"
        ),
        "/v1/professionals?min_rate_cents=99999999999999999999999".to_owned(),
        "/v1/bookings?from=0000-01-01T00:00:00Z&to=9999-12-31T23:59:59Z".to_owned(),
        "/v1/bookings?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "/v1//bookings".to_owned(),
        "/%2e%2e/etc/passwd".to_owned(),
    ];
    for p in &paths {
        let r = app.get(p, &client).await;
        assert!(r.status.as_u16() < 500, "{p}: {} {}", r.status, r.json);
        assert_eq!(
            r.header("content-type")
                .map(|c| c.starts_with("application/")),
            Some(true),
            "{p}"
        );
    }
    let bodies = [
        json!({"professional_id": pro, "start": "9999-12-31T23:00:00Z", "end": "9999-12-31T23:59:00Z"}),
        json!({"professional_id": pro, "start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:00Z"}),
        json!({"professional_id": pro, "start": ts(at(0)), "end": ts(at(0))}),
        json!({"professional_id": pro, "start": "2027-01-01T00:00:00.5Z", "end": "2027-01-01T01:00:00Z"}),
        json!({"professional_id": null, "start": [], "end": {}}),
        json!([1, 2, 3]),
        json!("string"),
        json!(null),
    ];
    for b in bodies {
        let r = app.post("/v1/bookings", &client, b.clone()).await;
        assert!(r.status.as_u16() < 500, "{b}: {} {}", r.status, r.json);
    }
    let r = app
        .post(
            "/v1/professionals",
            ADMIN,
            json!({"name": "x", "category": "a", "location": {"lat": 1e308, "lng": -1e308}, "hourly_rate_cents": i64::MAX, "currency": "usd", "timezone": "UTC"}),
        )
        .await;
    assert!(r.status.as_u16() < 500, "{}", r.json);
    // A huge rate must not overflow the price.
    if r.status == 201 {
        let pro = str_of(&r.json["id"]);
        let token = str_of(&r.json["api_token"]);
        app.call(
            "PUT",
            &format!("/v1/professionals/{pro}/schedule"),
            Some(&token),
            None,
            Some(open_schedule(0)),
        )
        .await
        .assert_status(200);
        let r = app
            .post("/v1/bookings", &client, booking_body(&pro, 0, 600))
            .await;
        assert!(r.status.as_u16() < 500, "{}", r.json);
    }
}

#[tokio::test]
async fn permission_and_existence_come_before_body_errors() {
    let app = TestApp::new();
    let (pro, _) = app.professional("massage", 5000).await;
    let (_, client) = app.client("nosy").await;
    let garbage = json!({"not": "a schedule"});
    for (method, path) in [
        ("PUT", format!("/v1/professionals/{pro}/schedule")),
        ("PATCH", format!("/v1/professionals/{pro}")),
    ] {
        // A caller who may not change the professional learns that first...
        app.call(method, &path, Some(&client), None, Some(garbage.clone()))
            .await
            .assert_problem(403, "forbidden");
        // ...the admin gets the body's error.
        app.call(method, &path, Some(ADMIN), None, Some(garbage.clone()))
            .await
            .assert_problem(400, "malformed_request");
    }
    let unknown = "/v1/professionals/0190a8f0-e4b2-7d6c-b0f6-d6f1c2a3b4c5/schedule";
    app.call("PUT", unknown, Some(ADMIN), None, Some(garbage))
        .await
        .assert_problem(404, "not_found");
}
