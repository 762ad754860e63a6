//! The HTTP routes. Handlers parse, call one engine use case and render; every error goes
//! through [`crate::problem::Problem`].

pub mod bookings;
pub mod clients;
pub mod ops;
pub mod professionals;
pub mod subscriptions;
pub mod webhooks;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use booking_core::Actor;
use serde::Serialize;

use crate::problem::Problem;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut res = Response::new(Body::from(bytes));
            *res.status_mut() = status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => Problem::internal(&format!("serialising a response: {e}")).into_response(),
    }
}

/// 403 unless the caller is the admin.
pub fn require_admin(actor: Actor) -> Result<(), Problem> {
    match actor {
        Actor::Admin => Ok(()),
        _ => Err(Problem::forbidden("only the admin may do this")),
    }
}

/// A fresh API token, or 500 if the system has no randomness.
pub fn new_token() -> Result<String, Problem> {
    crate::auth::generate_token()
        .map_err(|e| Problem::internal(&format!("no randomness for a token: {e}")))
}
