//! Fuzz entry point for the server's HTTP surface: request lines, headers and bodies
//! through the router, its extractors and the idempotency layer, over a fresh memory store.
//!
//! Shared by the cargo-fuzz target `fuzz/fuzz_targets/http_request.rs` and by
//! `reference-server/tests/fuzz_corpus.rs`, which replays the committed corpus
//! (`fuzz/corpus/http_request/`) in the normal test suite.
//!
//! Input layout: four selector bytes, then up to four `0x00`-separated segments:
//!
//! | byte / segment | picks |
//! |---|---|
//! | byte 0 | the method |
//! | byte 1 | the route template (low 5 bits) and whether segment 0 replaces its id (bit 7) |
//! | byte 2 | the caller: none, admin, the professional, the client, or segment 2 as a bearer token |
//! | byte 3 | flags: idempotency key (bit 0, value = segment 2), JSON content type (bit 1), `If-None-Match` (bit 2), a valid Stripe signature of the body (bit 3), a raw content type from segment 2 (bit 4) |
//! | segment 0 | a path id (percent-encoded) |
//! | segment 1 | the query string (percent-encoded outside a safe set) |
//! | segment 2 | a header value |
//! | segment 3 | the body |
//!
//! The properties checked on every answer: the server never panics, never answers 500,
//! and every error is `application/problem+json` whose `status` is the response's status
//! and whose `code` is a non-empty snake_case word.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use booking_core::webhook::{self, WebhookSecret};
use http_body_util::BodyExt;
use reference_server::{AppState, Config};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token-0123456789abcdef";
const WEBHOOK_SECRET: &str = "whsec_fuzz_http_request";

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Route templates; `{pro}`, `{client}`, `{booking}` and `{any}` are replaced by the ids of
/// the fixture (or by segment 0).
const ROUTES: [&str; 20] = [
    "/v1/clients",
    "/v1/professionals",
    "/v1/professionals/{pro}",
    "/v1/professionals/{pro}/schedule",
    "/v1/professionals/{pro}/availability",
    "/v1/bookings",
    "/v1/bookings/{booking}",
    "/v1/bookings/{booking}/cancel",
    "/v1/bookings/{booking}/reschedule",
    "/v1/admin/webhooks/dead-letters",
    "/v1/admin/webhooks/dead-letters/{any}/replay",
    "/v1/admin/webhook-subscriptions",
    "/v1/admin/webhook-subscriptions/{any}",
    "/v1/admin/webhook-subscriptions/{any}/deliveries",
    "/v1/admin/webhook-deliveries/{any}/redeliver",
    "/v1/webhooks/stripe",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/v1/{any}",
];

/// Ids and tokens created before the fuzzed request.
struct Fixture {
    app: axum::Router,
    pro: String,
    pro_token: String,
    client: String,
    client_token: String,
    booking: String,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Runs one fuzzed request (see the module docs for the layout of `data`).
pub fn http_request(data: &[u8]) {
    runtime().block_on(run(data));
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
    let res = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (status, content_type, body)
}

async fn setup_call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .body(Body::from(body.to_string()))
        .expect("a valid set-up request");
    let (status, _, bytes) = send(app, req).await;
    assert!(status.is_success(), "fixture {method} {path}: {status}");
    serde_json::from_slice(&bytes).expect("fixture answers are JSON")
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

async fn fixture() -> Fixture {
    let config = Config {
        admin_token: Some(ADMIN.into()),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        ..Config::default()
    };
    let state = AppState::new(
        Arc::new(booking_memory::MemoryStore::new()),
        &config,
        ADMIN,
        None,
    );
    let app = reference_server::router(state, &config);
    let pro = setup_call(
        &app,
        "POST",
        "/v1/professionals",
        ADMIN,
        json!({"name": "Ada", "category": "tutor", "timezone": "Europe/Berlin",
               "location": {"lat": 52.52, "lng": 13.405}, "hourly_rate_cents": 5000,
               "currency": "EUR"}),
    )
    .await;
    let client = setup_call(
        &app,
        "POST",
        "/v1/clients",
        ADMIN,
        json!({"name": "Bo", "email": "bo@example.com"}),
    )
    .await;
    let (pro_id, client_id) = (text(&pro, "id"), text(&client, "id"));
    let always: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "24:00"}))
        .collect();
    let schedule = Request::builder()
        .method("PUT")
        .uri(format!("/v1/professionals/{pro_id}/schedule"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"timezone": "UTC", "weekly": always, "slot_step_minutes": 30}).to_string(),
        ))
        .expect("a valid schedule request");
    let (status, _, _) = send(&app, schedule).await;
    assert!(status.is_success(), "fixture schedule: {status}");
    let start = chrono::Utc::now() + chrono::Duration::days(2);
    let start = start.format("%Y-%m-%dT10:00:00Z").to_string();
    let end = start.replace("T10:00", "T11:00");
    let client_token = text(&client, "api_token");
    let req = Request::builder()
        .method("POST")
        .uri("/v1/bookings")
        .header(header::AUTHORIZATION, format!("Bearer {client_token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "fuzz-fixture-booking")
        .body(Body::from(
            json!({"professional_id": pro_id, "start": start, "end": end}).to_string(),
        ))
        .expect("a valid booking request");
    let (status, _, bytes) = send(&app, req).await;
    assert!(status.is_success(), "fixture booking: {status}");
    let booking = serde_json::from_slice::<Value>(&bytes)
        .map(|v| text(&v, "id"))
        .unwrap_or_default();
    Fixture {
        app,
        pro_token: text(&pro, "api_token"),
        pro: pro_id,
        client: client_id,
        client_token,
        booking,
    }
}

/// Percent-encodes every byte outside `keep`.
fn encode(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn query_safe(b: u8) -> bool {
    unreserved(b) || b"&=,:+".contains(&b)
}

async fn run(data: &[u8]) {
    let [method, route, caller, flags, rest @ ..] = data else {
        return;
    };
    let mut segments = rest.splitn(4, |&b| b == 0);
    let id_override = segments.next().unwrap_or_default();
    let query = segments.next().unwrap_or_default();
    let header_value = segments.next().unwrap_or_default();
    let body = segments.next().unwrap_or_default();

    let fx = fixture().await;
    let method = METHODS[usize::from(*method) % METHODS.len()];
    let template = ROUTES[usize::from(route & 0x1f) % ROUTES.len()];
    let id = |own: &str| {
        if route & 0x80 != 0 {
            encode(id_override, unreserved)
        } else {
            own.to_owned()
        }
    };
    let mut path = template
        .replace("{pro}", &id(&fx.pro))
        .replace("{client}", &id(&fx.client))
        .replace("{booking}", &id(&fx.booking))
        .replace("{any}", &id(&uuid::Uuid::now_v7().to_string()));
    if !query.is_empty() {
        path.push('?');
        path.push_str(&encode(query, query_safe));
    }
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET))
        .uri(path.as_str());
    let raw = HeaderValue::from_bytes(header_value).ok();
    let bearer = match caller % 5 {
        1 => Some(ADMIN.to_owned()),
        2 => Some(fx.pro_token.clone()),
        3 => Some(fx.client_token.clone()),
        4 => raw
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        _ => None,
    };
    if let Some(token) = bearer
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req = req.header(header::AUTHORIZATION, v);
    }
    if flags & 1 != 0
        && let Some(v) = &raw
    {
        req = req.header("idempotency-key", v.clone());
    }
    if flags & 2 != 0 {
        req = req.header(header::CONTENT_TYPE, "application/json");
    } else if flags & 16 != 0
        && let Some(v) = &raw
    {
        req = req.header(header::CONTENT_TYPE, v.clone());
    }
    if flags & 4 != 0
        && let Some(v) = &raw
    {
        req = req.header(header::IF_NONE_MATCH, v.clone());
    }
    if flags & 8 != 0
        && let Ok(secret) = WebhookSecret::new(WEBHOOK_SECRET)
    {
        let signature = webhook::sign(&secret, chrono::Utc::now(), body);
        req = req.header("stripe-signature", signature);
    }
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let (status, content_type, bytes) = send(&fx.app, req).await;

    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {path}: 500"
    );
    if status.is_client_error() || status.is_server_error() {
        if method == "HEAD" {
            return;
        }
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{method} {path}: {status} without problem+json"
        );
        let problem: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} problem is not JSON: {e}"));
        assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())));
        let code = problem["code"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{method} {path}: {status} with code {code:?}"
        );
    }
}
