//! The idempotency middleware over [`booking_core::idempotency`], on every `POST` under
//! `/v1`.
//!
//! The key comes from the `Idempotency-Key` header, the scope is the authenticated
//! principal and the fingerprint covers method, path and canonical JSON body. A started
//! request runs in its own task; a final answer (2xx, and 4xx other than 401, 408 and 429)
//! is stored and replayed byte for byte with `Idempotent-Replayed: true`, anything else
//! (5xx) is abandoned so that a retry runs again at once. So is a request that ends without
//! an answer: a handler that panics, or a request dropped before its task answered (the
//! timeout layer gave up, the client disconnected), whose task is then stopped as a crash
//! would stop it; the retry finds what the first attempt created through its request
//! reference ([`request_ref`]). API tokens in a response are kept out of the
//! stored copy and derived again on replay ([`crate::secrets`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use booking_core::idempotency::{LeaseId, StoredResponse, request_ref};
use booking_core::{
    Actor, BookingContext, ClientId, Decision, FieldError, Fingerprint, IdempotencyKey,
    ProfessionalId, Scope,
};
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::AppState;
use crate::auth::Caller;
use crate::extract::read_body;
use crate::problem::{Problem, ProblemCode};

/// The longest `Retry-After` suggested for a request in flight.
const RETRY_AFTER_MAX_SECS: u64 = 2;

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header marking a replay.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The idempotent request a handler runs in (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// The caller's scope.
    pub scope: Scope,
    /// The key.
    pub key: IdempotencyKey,
    /// The request's fingerprint.
    pub fingerprint: Fingerprint,
    /// When the key's record was first created (see [`request_ref`]).
    pub first_seen: DateTime<Utc>,
    /// The lease this attempt holds on the key's record.
    pub lease: LeaseId,
}

/// What the claim of a new booking's key read in the same step (a request extension, only
/// on `POST /v1/bookings` by a client, for a fresh claim).
#[derive(Debug, Clone)]
pub struct PrefetchedBooking(pub BookingContext);

/// Marks a response whose final answer the handler already stored with the change it
/// reports (a response extension): the middleware must not store it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerStored;

/// The client and professional of a `POST /v1/bookings` body, when the caller is a client
/// and the body names a professional: the claim of the key then reads what the booking
/// needs in the same step. Anything else (including a body the handler will refuse) takes
/// the plain path.
fn booking_target(
    method: &axum::http::Method,
    path: &str,
    actor: Actor,
    body: &[u8],
) -> Option<(ClientId, ProfessionalId)> {
    #[derive(serde::Deserialize)]
    struct Target<'a> {
        #[serde(borrow)]
        professional_id: Option<std::borrow::Cow<'a, str>>,
    }
    let Actor::Client(client) = actor else {
        return None;
    };
    if method != axum::http::Method::POST || path != "/v1/bookings" {
        return None;
    }
    let target: Target<'_> = serde_json::from_slice(body).ok()?;
    let professional = target.professional_id?.trim().parse().ok()?;
    Some((client, professional))
}

impl IdempotentRequest {
    /// The reference stored on what the request creates, so a retry after a crash finds it.
    pub fn request_ref(&self) -> String {
        request_ref(&self.scope, &self.key, &self.fingerprint, self.first_seen)
    }
}

/// Whether a response is a final answer worth replaying.
fn is_final(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error()
            && !matches!(
                status,
                StatusCode::UNAUTHORIZED
                    | StatusCode::REQUEST_TIMEOUT
                    | StatusCode::TOO_MANY_REQUESTS
            ))
}

/// Middleware: see the module docs.
pub async fn idempotent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(Caller(actor)) = req.extensions().get::<Caller>().copied() else {
        return Problem::unauthorized("a valid bearer token is required").into_response();
    };
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => {
            return Problem::new(
                ProblemCode::IdempotencyKeyMissing,
                "this endpoint requires an `Idempotency-Key` header",
            )
            .into_response();
        }
        Some(v) => match v.to_str().ok().map(IdempotencyKey::parse) {
            Some(Ok(k)) => k,
            _ => {
                return Problem::validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )])
                .into_response();
            }
        },
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let fingerprint = Fingerprint::of_request(parts.method.as_str(), parts.uri.path(), &bytes);
    let scope = Scope::new(actor.scope_name());
    let begun = match booking_target(&parts.method, parts.uri.path(), actor, &bytes) {
        Some((client, professional)) => {
            state
                .engine()
                .begin_booking_request(&scope, &key, fingerprint, client, professional)
                .await
        }
        None => state
            .engine()
            .begin_request(&scope, &key, fingerprint)
            .await
            .map(|d| (d, None)),
    };
    let (decision, prefetched) = match begun {
        Ok(b) => b,
        Err(e) => return Problem::from(e).into_response(),
    };
    match decision {
        Decision::Replay {
            response,
            first_seen,
        } => {
            metrics::counter!("idempotency_replays_total").increment(1);
            let reference = request_ref(&scope, &key, &fingerprint, first_seen);
            match crate::secrets::restore(&state, &reference, response).await {
                Ok(stored) => replay(stored),
                Err(problem) => problem.into_response(),
            }
        }
        Decision::InFlight { retry_after } => {
            metrics::counter!("idempotency_in_flight_total").increment(1);
            // The lease bounds how long a crashed attempt blocks the key, but most requests
            // finish in milliseconds: suggest a short wait (at most the lease's remainder).
            let secs = u64::try_from(retry_after.num_seconds())
                .unwrap_or(1)
                .clamp(1, RETRY_AFTER_MAX_SECS);
            Problem {
                retry_after: Some(secs),
                ..Problem::new(
                    ProblemCode::IdempotencyRequestInFlight,
                    "a request with this idempotency key is still being processed; retry later",
                )
            }
            .into_response()
        }
        Decision::Mismatch => {
            metrics::counter!("idempotency_mismatches_total").increment(1);
            Problem::new(
                ProblemCode::IdempotencyKeyReused,
                "this idempotency key was used with a different request",
            )
            .into_response()
        }
        Decision::Started { lease, first_seen } => {
            let ctx = IdempotentRequest {
                scope,
                key,
                fingerprint,
                first_seen,
                lease,
            };
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(ctx.clone());
            if let Some(context) = prefetched {
                req.extensions_mut().insert(PrefetchedBooking(context));
            }
            let claim = Claim {
                state: state.clone(),
                scope: ctx.scope.clone(),
                key: ctx.key.clone(),
                lease,
                task: None,
            };
            let task = tokio::spawn(
                run_and_record(state, ctx, lease, next, req).instrument(tracing::Span::current()),
            );
            claim.run(task).await
        }
    }
}

/// A started request: its task, and the key it claimed. If the task does not end with a
/// response (the handler panicked), or this guard is dropped before it does (the timeout
/// layer gave up on the request, or the client went away), the key is abandoned at once,
/// as after a 5xx, instead of staying locked for the whole lease.
struct Claim {
    state: AppState,
    scope: Scope,
    key: IdempotencyKey,
    lease: LeaseId,
    /// The running task; `None` once it ended and its outcome was handled.
    task: Option<JoinHandle<Response>>,
}

impl Claim {
    /// Waits for `task` and returns its response, or a 500 (with the key abandoned) if it
    /// panicked.
    async fn run(mut self, task: JoinHandle<Response>) -> Response {
        let joined = self.task.insert(task).await;
        self.task = None;
        match joined {
            Ok(res) => res,
            Err(e) => {
                abandon(&self.state, &self.scope, &self.key, self.lease).await;
                Problem::internal(&format!("request task failed: {e}")).into_response()
            }
        }
    }
}

impl Drop for Claim {
    /// The request was dropped while its task ran: stop the task (as a crash would, which
    /// the engine's retries repair), then, once it has stopped, abandon the key unless the
    /// task had finished and recorded its own outcome.
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, scope, key, lease) = (
            self.state.clone(),
            self.scope.clone(),
            self.key.clone(),
            self.lease,
        );
        runtime.spawn(async move {
            if task.await.is_err() {
                abandon(&state, &scope, &key, lease).await;
            }
        });
    }
}

/// Releases a claimed key without an answer, so that a retry runs again at once.
async fn abandon(state: &AppState, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) {
    if let Err(e) = state.engine().abandon_request(scope, key, lease).await {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

async fn run_and_record(
    state: AppState,
    ctx: IdempotentRequest,
    lease: LeaseId,
    next: Next,
    req: Request,
) -> Response {
    let res = next.run(req).await;
    if res.extensions().get::<AnswerStored>().is_some() {
        return res;
    }
    let engine = state.engine();
    if !is_final(res.status()) {
        abandon(&state, &ctx.scope, &ctx.key, lease).await;
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            abandon(&state, &ctx.scope, &ctx.key, lease).await;
            return Problem::internal(&format!("response body failed: {e}")).into_response();
        }
    };
    let stored = stored_response(parts.status, &parts.headers, crate::secrets::redact(&bytes));
    match engine
        .complete_request(&ctx.scope, &ctx.key, lease, &stored)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!("idempotency lease lost before the response was stored"),
        Err(e) => tracing::warn!(error = %e, "could not store an idempotent response"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A response as stored for replay: its status, the headers a replay repeats
/// (`Content-Type`, `Location`) and its body.
pub fn stored_response(status: StatusCode, headers: &HeaderMap, body: Vec<u8>) -> StoredResponse {
    let headers = [header::CONTENT_TYPE, header::LOCATION]
        .iter()
        .filter_map(|name| {
            let v = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    StoredResponse {
        status: status.as_u16(),
        headers,
        body,
    }
}

/// The response a stored answer stands for, as first sent.
pub fn live_response(stored: StoredResponse) -> Response {
    let mut res = Response::new(Body::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            res.headers_mut().insert(n, v);
        }
    }
    res
}

/// The stored response, with `Idempotent-Replayed: true`.
fn replay(stored: StoredResponse) -> Response {
    let mut res = live_response(stored);
    res.headers_mut().insert(
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderValue::from_static("true"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_answers() {
        for s in [200, 201, 400, 403, 404, 409, 413, 422] {
            assert!(is_final(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [401, 408, 429, 500, 502, 503] {
            assert!(!is_final(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
