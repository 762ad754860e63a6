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

mod code;

pub use code::ProblemCode;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status: the code's own ([`ProblemCode::status`]), except where
    /// [`ensure_problem`] keeps the status of a bare error response.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. [`ProblemCode::SlotUnavailable`].
    pub code: ProblemCode,
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
    /// A problem with `code`, sent with the code's status.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::NotFound, detail)
    }

    /// 400 `malformed_request`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::MalformedRequest, detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Unauthorized, detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Forbidden, detail)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            ProblemCode::PayloadTooLarge,
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
            ..Self::new(ProblemCode::ValidationFailed, detail)
        }
    }

    /// 500 `internal`; the cause goes to the log (inside the request's span, which carries
    /// the request id), never to the client.
    pub fn internal(cause: &str) -> Self {
        tracing::error!(cause, "internal error");
        Self::new(
            ProblemCode::Internal,
            "an internal error occurred; it has been logged with the request id",
        )
    }

    /// The JSON body.
    pub fn body_bytes(&self) -> Vec<u8> {
        let body = ProblemDoc {
            type_: self.code.type_uri(),
            title: self.code.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            errors: &self.errors,
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(entity) => Problem::not_found(format!("{entity} not found")),
            Error::SlotUnavailable => Problem::new(
                ProblemCode::SlotUnavailable,
                "the requested time overlaps another booking",
            ),
            Error::OutsideAvailability(msg) => Problem::new(ProblemCode::OutsideAvailability, msg),
            Error::InvalidState(msg) => Problem::new(ProblemCode::InvalidState, msg),
            Error::AlreadyExists(entity) => Problem::new(
                ProblemCode::AlreadyExists,
                format!("{entity} already exists"),
            ),
            Error::Forbidden(msg) => Problem::forbidden(msg),
            Error::Invalid(errors) => Problem::validation(errors),
            Error::Unavailable(msg) => {
                tracing::warn!(cause = %msg, "store unavailable");
                Problem {
                    retry_after: Some(1),
                    ..Problem::new(
                        ProblemCode::StoreUnavailable,
                        "the store is temporarily unavailable; retry shortly",
                    )
                }
            }
            Error::PaymentProvider(msg) => {
                tracing::warn!(cause = %msg, "payment provider unavailable");
                Problem::new(
                    ProblemCode::PaymentProviderUnavailable,
                    "the payment provider could not be reached; no slot is held, retry shortly",
                )
            }
            Error::BadSignature(e) => Problem::new(
                ProblemCode::InvalidSignature,
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
            ProblemCode::RequestTimeout,
            "the request took too long and was abandoned",
        ),
        StatusCode::NOT_FOUND => Problem::not_found("no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            ProblemCode::MethodNotAllowed,
            "the method is not allowed on this resource",
        ),
        StatusCode::UNAUTHORIZED => Problem::unauthorized("a valid bearer token is required"),
        s if s.is_server_error() => Problem::internal(&format!("bare {s} response")),
        // Another 4xx of a layer or the framework keeps its status.
        s => Problem::new(
            ProblemCode::MalformedRequest,
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
        ProblemCode::MethodNotAllowed,
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
                ProblemCode::NotFound,
            ),
            (Error::SlotUnavailable, 409, ProblemCode::SlotUnavailable),
            (
                Error::OutsideAvailability("x".into()),
                422,
                ProblemCode::OutsideAvailability,
            ),
            (
                Error::InvalidState("x".into()),
                409,
                ProblemCode::InvalidState,
            ),
            (Error::Forbidden("x".into()), 403, ProblemCode::Forbidden),
            (Error::invalid("a", "b"), 422, ProblemCode::ValidationFailed),
            (
                Error::Unavailable("db down".into()),
                503,
                ProblemCode::StoreUnavailable,
            ),
            (
                Error::Internal("secret sql".into()),
                500,
                ProblemCode::Internal,
            ),
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
