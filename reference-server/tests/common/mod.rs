//! Shared test helpers: an in-process app over the memory store (a request builder and
//! named helpers per resource, principals as [`Party`]), per-test metric values
//! ([`metrics`]), and a small HTTP client for a running server.

#![allow(dead_code)]

pub mod fake_stripe;
pub mod invariants;
pub mod metrics;
pub mod rng;
pub mod served;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Duration, Timelike, Utc};
use http_body_util::BodyExt;
use reference_server::{AppState, Config};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token-0123456789";

/// A response, decoded.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Res {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem response with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.json);
        assert_eq!(self.code(), code, "body: {}", self.json);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.json
        );
        for k in ["type", "title", "status", "detail", "code"] {
            assert!(!self.json[k].is_null(), "problem lacks {k}: {}", self.json);
        }
        assert_eq!(self.json["status"], status);
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.json);
        &self.json
    }
}

/// An in-process app over a fresh memory store.
#[derive(Clone)]
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
}

impl TestApp {
    pub fn new() -> Self {
        Self::over(Arc::new(booking_memory::MemoryStore::new()))
    }

    /// An in-process app over `store` (e.g. a `Faulty` wrapper of the memory store).
    pub fn over(store: Arc<dyn booking_core::Store>) -> Self {
        let config = Config {
            admin_token: Some(ADMIN.into()),
            ..Config::default()
        };
        let state = AppState::new(store, &config, ADMIN, None);
        Self {
            router: reference_server::router(state.clone(), &config),
            state,
        }
    }

    /// Sends a raw request.
    pub async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            bytes,
            json,
        }
    }

    /// Starts a request; see [`Call`].
    pub fn request(&self, method: &str, path: &str) -> Call<'_> {
        Call {
            app: self,
            method: Method::from_bytes(method.as_bytes()).expect("method"),
            path: path.to_owned(),
            token: None,
            key: None,
            body: None,
        }
    }

    /// A JSON request with optional token and idempotency key (positional; new tests use
    /// [`TestApp::request`]).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut call = self.request(method, path).maybe_key(key);
        call.token = token.map(str::to_owned);
        call.body = body;
        call.send().await
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.request("GET", path).token(token).send().await
    }

    /// POST with a fresh idempotency key.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.request("POST", path)
            .token(token)
            .fresh_key()
            .json(body)
            .send()
            .await
    }

    /// Creates a client named `name` (as the admin).
    pub async fn create_client(&self, name: &str) -> Party {
        let r = self
            .post(
                "/v1/clients",
                ADMIN,
                json!({"name": name, "email": format!("{name}@example.com")}),
            )
            .await;
        Party::of(r.assert_status(201))
    }

    /// Creates a professional (as the admin), without a schedule.
    pub async fn create_professional(&self, category: &str, rate: i64) -> Party {
        let r = self
            .post(
                "/v1/professionals",
                ADMIN,
                professional_body(category, rate),
            )
            .await;
        Party::of(r.assert_status(201))
    }

    /// Creates a professional open around the clock (UTC, 30-minute grid, `buffer_after`
    /// minutes of buffer after each booking).
    pub async fn create_open_professional(&self, buffer_after: i64) -> Party {
        let pro = self.create_professional("massage", 6000).await;
        self.put_schedule(&pro.token, &pro.id, open_schedule(buffer_after))
            .await
            .assert_status(200);
        pro
    }

    /// Creates a client; returns (id, token).
    pub async fn client(&self, name: &str) -> (String, String) {
        self.create_client(name).await.into()
    }

    /// Creates a professional; returns (id, token).
    pub async fn professional(&self, category: &str, rate: i64) -> (String, String) {
        self.create_professional(category, rate).await.into()
    }

    /// [`TestApp::create_open_professional`]; returns (id, token).
    pub async fn open_professional(&self, buffer_after: i64) -> (String, String) {
        self.create_open_professional(buffer_after).await.into()
    }

    /// `PUT /v1/professionals/{id}/schedule` as `token`.
    pub async fn put_schedule(&self, token: &str, professional: &str, schedule: Value) -> Res {
        self.request("PUT", &format!("/v1/professionals/{professional}/schedule"))
            .token(token)
            .json(schedule)
            .send()
            .await
    }

    /// `PATCH /v1/professionals/{id}` as `token`.
    pub async fn patch_professional(&self, token: &str, professional: &str, patch: Value) -> Res {
        self.request("PATCH", &format!("/v1/professionals/{professional}"))
            .token(token)
            .json(patch)
            .send()
            .await
    }

    /// `POST /v1/bookings` as `token` with a fresh idempotency key.
    pub async fn create_booking(&self, token: &str, body: Value) -> Res {
        self.post("/v1/bookings", token, body).await
    }

    /// `POST /v1/bookings/{id}/cancel` as `token` with idempotency key `key`, no body.
    pub async fn cancel_booking(&self, token: &str, booking: &str, key: &str) -> Res {
        self.request("POST", &format!("/v1/bookings/{booking}/cancel"))
            .token(token)
            .key(key)
            .send()
            .await
    }

    /// `POST /v1/bookings/{id}/reschedule` as `token` with a fresh idempotency key.
    pub async fn reschedule_booking(&self, token: &str, booking: &str, body: Value) -> Res {
        self.post(&format!("/v1/bookings/{booking}/reschedule"), token, body)
            .await
    }
}

/// A request being built: `app.request("PUT", path).token(t).json(body).send().await`.
#[must_use = "a request does nothing until it is sent"]
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    token: Option<String>,
    key: Option<String>,
    body: Option<Value>,
}

impl Call<'_> {
    /// Sends `Authorization: Bearer {token}`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Sends `Idempotency-Key: {key}` (verbatim, so invalid keys can be sent too).
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Sends `key` if there is one.
    pub fn maybe_key(self, key: Option<&str>) -> Self {
        match key {
            Some(k) => self.key(k),
            None => self,
        }
    }

    /// Sends a fresh (unique) idempotency key.
    pub fn fresh_key(self) -> Self {
        let key = uuid::Uuid::now_v7().to_string();
        self.key(&key)
    }

    /// Sends `body` as `application/json`.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Sends the request and decodes the response.
    pub async fn send(self) -> Res {
        let mut b = Request::builder().method(self.method).uri(self.path);
        if let Some(t) = self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(k) = self.key {
            b = b.header("idempotency-key", k);
        }
        let body = match self.body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).expect("json"))
            }
            None => Body::empty(),
        };
        self.app.send(b.body(body).expect("request")).await
    }
}

/// A principal the admin created: its id and its bearer token.
#[derive(Debug, Clone)]
pub struct Party {
    pub id: String,
    pub token: String,
}

impl Party {
    /// The `id` and `api_token` of a creation answer.
    pub fn of(created: &Value) -> Self {
        Self {
            id: str_of(&created["id"]),
            token: str_of(&created["api_token"]),
        }
    }
}

impl From<Party> for (String, String) {
    fn from(p: Party) -> Self {
        (p.id, p.token)
    }
}

pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

pub fn professional_body(category: &str, rate: i64) -> Value {
    json!({
        "name": "Grace",
        "category": category,
        "location": {"lat": 52.52, "lng": 13.40},
        "hourly_rate_cents": rate,
        "currency": "EUR",
        "timezone": "Europe/Berlin"
    })
}

pub fn open_schedule(buffer_after: i64) -> Value {
    let weekly: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "24:00"}))
        .collect();
    json!({
        "timezone": "UTC",
        "weekly": weekly,
        "buffer_after_minutes": buffer_after,
        "horizon_days": 60,
        "slot_step_minutes": 30
    })
}

/// 10:00 UTC two days from now, plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    let day = (Utc::now() + Duration::days(2))
        .with_hour(10)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .expect("valid time");
    day + Duration::minutes(minutes)
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn booking_body(professional: &str, start_min: i64, len_min: i64) -> Value {
    json!({
        "professional_id": professional,
        "start": ts(at(start_min)),
        "end": ts(at(start_min + len_min)),
    })
}

// ---- a minimal HTTP client for a running server ------------------------------------------

pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

/// Sends a JSON request to a running server.
pub async fn http(
    client: &HttpClient,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(format!("{base}{path}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    let bytes = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            serde_json::to_vec(&v).expect("json")
        }
        None => Vec::new(),
    };
    let req = b
        .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
        .expect("request");
    let res = client.request(req).await.expect("server reachable");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
