//! Bearer-token authentication.
//!
//! The admin token comes from the configuration and is compared in constant time (over
//! SHA-256 digests). Client and professional tokens are looked up by hash through
//! [`booking_core::BookingEngine::authenticate`]; the server never stores a token.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use booking_core::{Actor, TokenHash};

use crate::AppState;
use crate::problem::Problem;

/// The authenticated caller, available to handlers of authenticated routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Actor);

/// A fresh API token: `bk_` and 32 bytes from the operating system's CSPRNG, base64url.
///
/// Fails only if the operating system cannot provide randomness.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "bk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Compares two digests without an early exit.
pub(crate) fn digest_eq(a: &TokenHash, b: &TokenHash) -> bool {
    a.0.iter()
        .zip(b.0.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The token of an `Authorization: Bearer <token>` header, if well-formed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(detail: &str) -> Response {
    let mut res = Problem::unauthorized(detail).into_response();
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

/// Resolves the bearer token of a request to an [`Actor`].
pub async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(
            "an `Authorization: Bearer <token>` header is required",
        ));
    };
    if digest_eq(&TokenHash::of(token), state.admin_token_hash()) {
        return Ok(Actor::Admin);
    }
    match state.engine().authenticate(token).await {
        Ok(Some(principal)) => Ok(Actor::from(principal)),
        Ok(None) => Err(unauthorized("the bearer token is not valid")),
        Err(e) => Err(Problem::from(e).into_response()),
    }
}

/// Middleware for authenticated routes: 401 without a valid token, otherwise the
/// [`Caller`] is put into the request's extensions.
pub async fn require_caller(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match resolve(&state, req.headers()).await {
        Ok(actor) => {
            req.extensions_mut().insert(Caller(actor));
            next.run(req).await
        }
        Err(res) => res,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or_else(|| unauthorized("a valid bearer token is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(a.starts_with("bk_") && a.len() == 46, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        assert!(digest_eq(&TokenHash::of("x"), &TokenHash::of("x")));
        assert!(!digest_eq(&TokenHash::of("x"), &TokenHash::of("y")));
    }
}
