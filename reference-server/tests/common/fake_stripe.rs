//! A fake Stripe API for tests: an axum server on 127.0.0.1 answering
//! `POST /v1/payment_intents`, `POST /v1/payment_intents/{id}/cancel` and `POST /v1/refunds`
//! with Stripe-shaped JSON.
//!
//! It records every request, keeps intents' states, honours idempotency keys the way Stripe
//! does (the same key with the same request replays the stored answer; with another request
//! it is a 400 `idempotency_error`), and fails on demand ([`FakeStripe::set_down`],
//! [`FakeStripe::fail_next`], [`FakeStripe::set_delay`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The path, e.g. `/v1/payment_intents`.
    pub path: String,
    /// The form body, in order.
    pub form: Vec<(String, String)>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// The first form value named `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A payment intent kept by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIntent {
    pub id: String,
    pub client_secret: String,
    pub amount: i64,
    pub currency: String,
    /// `requires_payment_method`, `succeeded` or `canceled`.
    pub status: String,
    pub metadata: Vec<(String, String)>,
    pub amount_refunded: i64,
}

/// A refund kept by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRefund {
    pub id: String,
    pub payment_intent: String,
    pub amount: i64,
    pub currency: String,
    pub metadata: Vec<(String, String)>,
}

/// A stored answer to an idempotency key.
#[derive(Debug, Clone)]
struct Stored {
    path: String,
    form: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
}

#[derive(Debug, Default)]
struct FakeState {
    requests: Vec<RecordedRequest>,
    intents: Vec<FakeIntent>,
    refunds: Vec<FakeRefund>,
    idempotent: HashMap<String, Stored>,
    down: bool,
    fail_next: u32,
    fail_status: u16,
    delay: Duration,
    next_id: u64,
}

impl FakeState {
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_fake{:010}", self.next_id)
    }

    fn intent(&self, id: &str) -> Option<&FakeIntent> {
        self.intents.iter().find(|i| i.id == id)
    }
}

/// A running fake Stripe; the server stops when this is dropped.
#[derive(Debug)]
pub struct FakeStripe {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    /// Starts a fake on a free port of 127.0.0.1.
    pub async fn start() -> FakeStripe {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts a fake listening on `addr` (e.g. `127.0.0.1:12111`).
    pub async fn start_on(addr: &str) -> FakeStripe {
        let state = Arc::new(Mutex::new(FakeState {
            fail_status: 500,
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
            .route("/v1/refunds", post(create_refund))
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the fake Stripe");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, state, task }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The base URL to configure as `STRIPE_API_BASE` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every intent, in creation order.
    pub fn intents(&self) -> Vec<FakeIntent> {
        self.lock().intents.clone()
    }

    /// Every refund, in creation order.
    pub fn refunds(&self) -> Vec<FakeRefund> {
        self.lock().refunds.clone()
    }

    /// While down, every request is answered 500 (and recorded).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: u32) {
        self.fail_next_with(n, 500);
    }

    /// The next `n` requests are answered `status` (e.g. 429) with an `api_error` body.
    pub fn fail_next_with(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.fail_next = n;
        s.fail_status = status;
    }

    /// Every answer waits `delay` first (the request is processed before the wait, like
    /// a slow network after Stripe did the work).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Marks intent `id` succeeded (as if the customer paid); false if there is no such
    /// intent.
    pub fn succeed(&self, id: &str) -> bool {
        let mut s = self.lock();
        match s.intents.iter_mut().find(|i| i.id == id) {
            Some(i) => {
                i.status = "succeeded".into();
                true
            }
            None => false,
        }
    }
}

/// What a handler decided before any delay.
type Answer = (StatusCode, Value);

fn intent_json(i: &FakeIntent) -> Value {
    let metadata: serde_json::Map<String, Value> = i
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let succeeded = i.status == "succeeded";
    json!({
        "id": i.id,
        "object": "payment_intent",
        "amount": i.amount,
        "amount_capturable": 0,
        "amount_received": if succeeded { i.amount } else { 0 },
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
        "canceled_at": if i.status == "canceled" { json!(1_700_000_100) } else { Value::Null },
        "cancellation_reason": Value::Null,
        "capture_method": "automatic_async",
        "client_secret": i.client_secret,
        "confirmation_method": "automatic",
        "created": 1_700_000_000,
        "currency": i.currency,
        "customer": Value::Null,
        "description": Value::Null,
        "last_payment_error": Value::Null,
        "latest_charge": Value::Null,
        "livemode": false,
        "metadata": metadata,
        "next_action": Value::Null,
        "payment_method": Value::Null,
        "payment_method_types": ["card"],
        "status": i.status,
    })
}

fn refund_json(r: &FakeRefund) -> Value {
    let metadata: serde_json::Map<String, Value> = r
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "charge": Value::Null,
        "created": 1_700_000_200,
        "currency": r.currency,
        "metadata": metadata,
        "payment_intent": r.payment_intent,
        "reason": Value::Null,
        "status": "succeeded",
    })
}

fn error_json(
    type_: &str,
    code: Option<&str>,
    message: &str,
    extra: Option<(&str, Value)>,
) -> Value {
    let mut e = json!({"type": type_, "message": message});
    if let Some(code) = code {
        e["code"] = json!(code);
        e["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{code}"));
    }
    if let Some((k, v)) = extra {
        e[k] = v;
    }
    json!({ "error": e })
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `metadata[k]=v` pairs of a form.
fn metadata_of(form: &[(String, String)]) -> Vec<(String, String)> {
    form.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|key| (key.to_owned(), v.clone()))
        })
        .collect()
}

fn first<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Records the request, applies the failure switches and idempotency, and runs `handle`
/// for a new request.
async fn serve(
    state: Arc<Mutex<FakeState>>,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
    handle: impl FnOnce(&mut FakeState, &[(String, String)]) -> (Answer, bool),
) -> Response {
    let form = parse_form(body);
    let header_of = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let key = header_of(header::HeaderName::from_static("idempotency-key"));
    let authorization = header_of(header::AUTHORIZATION);
    let (answer, delay) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(RecordedRequest {
            path: path.clone(),
            form: form.clone(),
            idempotency_key: key.clone(),
            authorization: authorization.clone(),
        });
        let answer = if authorization
            .as_deref()
            .is_none_or(|a| !a.starts_with("Bearer sk_"))
        {
            (
                StatusCode::UNAUTHORIZED,
                error_json(
                    "invalid_request_error",
                    None,
                    "Invalid API Key provided",
                    None,
                ),
            )
        } else if s.down || s.fail_next > 0 {
            s.fail_next = s.fail_next.saturating_sub(1);
            let status = if s.down {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::from_u16(s.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            };
            (
                status,
                error_json("api_error", None, "An unknown error occurred", None),
            )
        } else {
            match key.as_ref().and_then(|k| s.idempotent.get(k)) {
                Some(stored) if stored.path == path && stored.form == form => {
                    (stored.status, stored.body.clone())
                }
                Some(_) => (
                    StatusCode::BAD_REQUEST,
                    error_json(
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be used with the same \
                         parameters they were first used with.",
                        None,
                    ),
                ),
                None => {
                    let (answer, keep) = handle(&mut s, &form);
                    if let (Some(k), true) = (&key, keep) {
                        s.idempotent.insert(
                            k.clone(),
                            Stored {
                                path: path.clone(),
                                form: form.clone(),
                                status: answer.0,
                                body: answer.1.clone(),
                            },
                        );
                    }
                    answer
                }
            }
        };
        (answer, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = answer;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A parameter error: not stored under the idempotency key (Stripe keeps no result for a
/// request that failed validation).
fn invalid_param(param: &str, code: &str, message: &str) -> (Answer, bool) {
    (
        (
            StatusCode::BAD_REQUEST,
            error_json(
                "invalid_request_error",
                Some(code),
                message,
                Some(("param", json!(param))),
            ),
        ),
        false,
    )
}

async fn create_intent(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        state,
        "/v1/payment_intents".into(),
        &headers,
        &body,
        |s, form| {
            let Some(amount) = first(form, "amount").and_then(|a| a.parse::<i64>().ok()) else {
                return invalid_param(
                    "amount",
                    "parameter_missing",
                    "Missing required param: amount.",
                );
            };
            if amount < 1 {
                return invalid_param(
                    "amount",
                    "parameter_invalid_integer",
                    "This value must be greater than or equal to 1.",
                );
            }
            let Some(currency) = first(form, "currency").map(str::to_owned) else {
                return invalid_param(
                    "currency",
                    "parameter_missing",
                    "Missing required param: currency.",
                );
            };
            let id = s.fresh_id("pi");
            let intent = FakeIntent {
                client_secret: format!("{id}_secret_{}", s.next_id * 7919),
                id,
                amount,
                currency,
                status: "requires_payment_method".into(),
                metadata: metadata_of(form),
                amount_refunded: 0,
            };
            let body = intent_json(&intent);
            s.intents.push(intent);
            ((StatusCode::OK, body), true)
        },
    )
    .await
}

async fn cancel_intent(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/cancel");
    serve(state, path, &headers, &body, move |s, _form| {
        let Some(intent) = s.intents.iter_mut().find(|i| i.id == id) else {
            return (
                (
                    StatusCode::NOT_FOUND,
                    error_json(
                        "invalid_request_error",
                        Some("resource_missing"),
                        &format!("No such payment_intent: '{id}'"),
                        Some(("param", json!("intent"))),
                    ),
                ),
                true,
            );
        };
        if matches!(intent.status.as_str(), "canceled" | "succeeded") {
            let message = format!(
                "You cannot cancel this PaymentIntent because it has a status of {}. Only a \
                 PaymentIntent with one of the following statuses may be canceled: \
                 requires_payment_method, requires_capture, requires_confirmation, \
                 requires_action, processing.",
                intent.status
            );
            let embedded = intent_json(intent);
            return (
                (
                    StatusCode::BAD_REQUEST,
                    error_json(
                        "invalid_request_error",
                        Some("payment_intent_unexpected_state"),
                        &message,
                        Some(("payment_intent", embedded)),
                    ),
                ),
                true,
            );
        }
        intent.status = "canceled".into();
        ((StatusCode::OK, intent_json(intent)), true)
    })
    .await
}

async fn create_refund(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, "/v1/refunds".into(), &headers, &body, |s, form| {
        let Some(pi) = first(form, "payment_intent").map(str::to_owned) else {
            return invalid_param(
                "payment_intent",
                "parameter_missing",
                "One of the following params should be provided for this request: \
                 payment_intent or charge.",
            );
        };
        let Some(intent) = s.intent(&pi).cloned() else {
            return invalid_param(
                "payment_intent",
                "resource_missing",
                &format!("No such payment_intent: '{pi}'"),
            );
        };
        if intent.status != "succeeded" {
            return (
                (
                    StatusCode::BAD_REQUEST,
                    error_json(
                        "invalid_request_error",
                        None,
                        &format!(
                            "This PaymentIntent ({pi}) does not have a successful charge to \
                             refund."
                        ),
                        None,
                    ),
                ),
                true,
            );
        }
        if intent.amount_refunded >= intent.amount {
            return (
                (
                    StatusCode::BAD_REQUEST,
                    error_json(
                        "invalid_request_error",
                        Some("charge_already_refunded"),
                        "Charge has already been refunded.",
                        None,
                    ),
                ),
                true,
            );
        }
        let amount = intent.amount - intent.amount_refunded;
        let refund = FakeRefund {
            id: s.fresh_id("re"),
            payment_intent: pi.clone(),
            amount,
            currency: intent.currency.clone(),
            metadata: metadata_of(form),
        };
        if let Some(i) = s.intents.iter_mut().find(|i| i.id == pi) {
            i.amount_refunded += amount;
        }
        let body = refund_json(&refund);
        s.refunds.push(refund);
        ((StatusCode::OK, body), true)
    })
    .await
}

async fn not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            error_json(
                "invalid_request_error",
                None,
                "Unrecognized request URL. Please see https://stripe.com/docs.",
                None,
            )
            .to_string(),
        ))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
