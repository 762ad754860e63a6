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
use std::time::{Duration, Instant};

use booking_core::{Actor, Principal, TokenHash};

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

/// A short-lived, bounded cache of token hash -> principal, so that an authenticated request
/// does not cost a database round trip for its token every time.
///
/// Only successful look-ups are cached (an unknown token is asked again each time, so a
/// token created a moment ago works at once), keyed by the token's SHA-256 (the cache holds
/// no token). Tokens are never reissued to another subject and the API deletes none, so an
/// entry can only go stale if a subject is removed from the database by hand; entries live
/// [`PrincipalCache::TTL`] to bound even that.
#[derive(Debug, Default)]
pub struct PrincipalCache {
    entries: std::sync::Mutex<std::collections::HashMap<TokenHash, (Principal, Instant)>>,
}

impl PrincipalCache {
    /// How long an entry is trusted.
    pub const TTL: Duration = Duration::from_secs(30);
    /// The most entries kept; past it the cache starts over.
    pub const CAPACITY: usize = 100_000;

    fn get(&self, token: &TokenHash, now: Instant) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        let (principal, at) = entries.get(token)?;
        (now.saturating_duration_since(*at) < Self::TTL).then_some(*principal)
    }

    fn put(&self, token: TokenHash, principal: Principal, now: Instant) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < Self::TTL);
                if entries.len() >= Self::CAPACITY {
                    entries.clear();
                }
            }
            entries.insert(token, (principal, now));
        }
    }
}

/// Resolves the bearer token of a request to an [`Actor`].
pub async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(
            "an `Authorization: Bearer <token>` header is required",
        ));
    };
    let hash = TokenHash::of(token);
    if digest_eq(&hash, state.admin_token_hash()) {
        return Ok(Actor::Admin);
    }
    let cache = state.principals();
    if let Some(principal) = cache.get(&hash, Instant::now()) {
        return Ok(Actor::from(principal));
    }
    match state.engine().authenticate(token).await {
        Ok(Some(principal)) => {
            cache.put(hash, principal, Instant::now());
            Ok(Actor::from(principal))
        }
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
    fn principal_cache_expires_and_stays_bounded() {
        let cache = PrincipalCache::default();
        let t0 = Instant::now();
        let p = Principal::Client(booking_core::ClientId::from_uuid(uuid::Uuid::from_u128(1)));
        let h = TokenHash::of("a");
        assert_eq!(cache.get(&h, t0), None);
        cache.put(h, p, t0);
        assert_eq!(cache.get(&h, t0 + Duration::from_secs(1)), Some(p));
        assert_eq!(cache.get(&TokenHash::of("b"), t0), None);
        assert_eq!(cache.get(&h, t0 + PrincipalCache::TTL), None);
        for i in 0..PrincipalCache::CAPACITY + 1 {
            cache.put(TokenHash::of(&i.to_string()), p, t0);
        }
        assert!(cache.entries.lock().unwrap().len() <= PrincipalCache::CAPACITY);
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
