//! RFC 9457 problem details: the one place where errors become HTTP responses.
//!
//! Every error response of the server is `application/problem+json` with `type`, `title`,
//! `status`, `detail` and a stable machine-readable `code`; validation problems add an
//! `errors: [{field, message}]` list. [`Problem::from`] maps the engine's
//! [`booking_core::Error`]; [`ensure_problem`] turns any bare error response produced by a
//! layer (body limit, timeout, framework rejections) into one as well.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use booking_core::{Error, FieldError};
use serde::Serialize;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `slot_unavailable`.
    pub code: &'static str,
    /// Short summary of the problem type (the same for every occurrence of `code`).
    pub title: &'static str,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// Field problems (`validation_failed` only).
    pub errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ProblemDoc<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl Problem {
    /// A problem with the title that belongs to `code`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            title: title_of(code),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 400 `malformed_request`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {} bytes", crate::BODY_LIMIT),
        )
    }

    /// 422 `validation_failed` with its field list.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = if errors.is_empty() {
            "the request is invalid".to_owned()
        } else {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                detail,
            )
        }
    }

    /// 500 `internal`; the cause goes to the log (inside the request's span, which carries
    /// the request id), never to the client.
    pub fn internal(cause: &str) -> Self {
        tracing::error!(cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged with the request id",
        )
    }

    /// The `type` URI of a code.
    pub fn type_uri(code: &str) -> String {
        format!("urn:booking-engine:problem:{code}")
    }

    /// The JSON body.
    pub fn body_bytes(&self) -> Vec<u8> {
        let body = ProblemDoc {
            type_: Self::type_uri(self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

fn title_of(code: &str) -> &'static str {
    match code {
        "not_found" => "Not found",
        "slot_unavailable" => "Slot unavailable",
        "outside_availability" => "Outside availability",
        "invalid_state" => "Invalid state",
        "already_exists" => "Already exists",
        "forbidden" => "Forbidden",
        "validation_failed" => "Validation failed",
        "malformed_request" => "Malformed request",
        "unauthorized" => "Unauthorized",
        "idempotency_key_missing" => "Idempotency key missing",
        "idempotency_key_reused" => "Idempotency key reused",
        "idempotency_request_in_flight" => "Request in flight",
        "api_token_unrecoverable" => "API token unrecoverable",
        "payload_too_large" => "Payload too large",
        "method_not_allowed" => "Method not allowed",
        "request_timeout" => "Request timeout",
        "store_unavailable" => "Store unavailable",
        "payment_provider_unavailable" => "Payment provider unavailable",
        "invalid_signature" => "Invalid signature",
        "internal" => "Internal error",
        _ => "Error",
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(entity) => Problem::not_found(format!("{entity} not found")),
            Error::SlotUnavailable => Problem::new(
                StatusCode::CONFLICT,
                "slot_unavailable",
                "the requested time overlaps another booking",
            ),
            Error::OutsideAvailability(msg) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "outside_availability",
                msg,
            ),
            Error::InvalidState(msg) => Problem::new(StatusCode::CONFLICT, "invalid_state", msg),
            Error::AlreadyExists(entity) => Problem::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{entity} already exists"),
            ),
            Error::Forbidden(msg) => Problem::forbidden(msg),
            Error::Invalid(errors) => Problem::validation(errors),
            Error::Unavailable(msg) => {
                tracing::warn!(cause = %msg, "store unavailable");
                Problem {
                    retry_after: Some(1),
                    ..Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "store_unavailable",
                        "the store is temporarily unavailable; retry shortly",
                    )
                }
            }
            Error::PaymentProvider(msg) => {
                tracing::warn!(cause = %msg, "payment provider unavailable");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "payment_provider_unavailable",
                    "the payment provider could not be reached; no slot is held, retry shortly",
                )
            }
            Error::BadSignature(e) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_signature",
                format!("the Stripe-Signature header was refused: {e}"),
            ),
            Error::Internal(msg) => Problem::internal(&msg),
            other => Problem::internal(&other.to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.body_bytes()));
        *res.status_mut() = self.status;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Whether a response already carries a problem document.
fn is_problem(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// Middleware: turns any error response that is not yet problem+json (a layer's 413 or
/// 408, a framework rejection) into one, keeping its status and `Allow`/`Retry-After`.
pub async fn ensure_problem(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&res) {
        return res;
    }
    let problem = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(),
        StatusCode::REQUEST_TIMEOUT => Problem::new(
            status,
            "request_timeout",
            "the request took too long and was abandoned",
        ),
        StatusCode::NOT_FOUND => Problem::not_found("no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method_not_allowed",
            "the method is not allowed on this resource",
        ),
        StatusCode::UNAUTHORIZED => Problem::unauthorized("a valid bearer token is required"),
        s if s.is_server_error() => Problem::internal(&format!("bare {s} response")),
        s => Problem::new(
            s,
            "malformed_request",
            s.canonical_reason().unwrap_or("bad request"),
        ),
    };
    let mut out = Problem { status, ..problem }.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Fallback for unknown routes: 404 problem.
pub async fn route_not_found() -> Problem {
    Problem::not_found("no such resource")
}

/// Fallback for a known path with a method it does not support: 405 problem.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the method is not allowed on this resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_error_to_its_code() {
        let cases = [
            (
                Error::NotFound(booking_core::Entity::Booking),
                404,
                "not_found",
            ),
            (Error::SlotUnavailable, 409, "slot_unavailable"),
            (
                Error::OutsideAvailability("x".into()),
                422,
                "outside_availability",
            ),
            (Error::InvalidState("x".into()), 409, "invalid_state"),
            (Error::Forbidden("x".into()), 403, "forbidden"),
            (Error::invalid("a", "b"), 422, "validation_failed"),
            (
                Error::Unavailable("db down".into()),
                503,
                "store_unavailable",
            ),
            (Error::Internal("secret sql".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let p = Problem::from(e);
            assert_eq!(p.status.as_u16(), status);
            assert_eq!(p.code, code);
            let body = String::from_utf8(p.body_bytes()).unwrap();
            assert!(
                !body.contains("secret sql") && !body.contains("db down"),
                "{body}"
            );
        }
    }
}
