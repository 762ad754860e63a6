//! API tokens that are never at rest: derived from the request, kept out of stored
//! responses, derived again on replay.
//!
//! `POST /v1/clients` and `POST /v1/professionals` answer with the new subject's API token
//! once, and a replay of that request must answer with the very same bytes (see
//! `docs/http/idempotency.md`), yet no usable token may be stored anywhere. So:
//!
//! * the token is not random but derived: `bk_` + base64url(HMAC-SHA256(token secret,
//!   `"api-token:" || request_ref`)), where `request_ref` is the idempotent request's
//!   reference ([`IdempotentRequest::request_ref`](crate::idempotency::IdempotentRequest::request_ref)): the same for every attempt of one
//!   request within its key's life, different for any other request. The store keeps only
//!   the token's SHA-256, as before, with the request reference beside it, so that a
//!   retry after a 5xx or a crash finds the subject its first attempt created (and derives
//!   the same token for it);
//! * before the idempotency layer stores a final response, [`redact`] replaces the value of
//!   its `"api_token"` field with a placeholder; on replay, [`restore`] derives the token
//!   again and puts it back, byte for byte.
//!
//! The token secret is `BOOKING_TOKEN_SECRET` (see [`crate::config`]). Unset, each process
//! draws a random one at start-up: replays within one process work, but a replay or retry
//! served by another process (a restart, a second instance) cannot derive the token. When
//! the secret changed since the first attempt (rotation), the derived token no longer
//! belongs to the subject: both paths detect that ([`ensure_owner`]) and answer 409
//! `api_token_unrecoverable` instead of a token that does not work.
//!
//! The database alone yields no token: it holds token hashes and request references, and a
//! token takes the secret too. Keep the secret out of the database and its backups.

use std::fmt;

use base64::Engine as _;
use booking_core::Principal;
use booking_core::idempotency::StoredResponse;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::AppState;
use crate::problem::{Problem, ProblemCode};

/// The JSON key whose string value is a secret, as the server renders it (compact JSON):
/// a string value cannot contain an unescaped `"`, so these bytes only ever start that key.
const FIELD: &[u8] = b"\"api_token\":\"";

/// What a stored response holds instead of the token.
const PLACEHOLDER: &[u8] = b"<redacted: derived again on replay>";

/// The key API tokens are derived with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TokenSecret {
    /// `None`: no randomness was available for a per-process secret; creates fail (500),
    /// as they did before tokens were derived.
    mac: Option<Hmac<Sha256>>,
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl TokenSecret {
    /// A secret from configuration bytes (any length; HMAC hashes long keys).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::<Sha256>::new_from_slice(secret).ok(),
        }
    }

    /// The configured secret, or a random one for this process when `configured` is
    /// `None` (see the module docs for what that means for replays).
    pub fn from_setting(configured: Option<&str>) -> Self {
        match configured {
            Some(s) => Self::new(s.as_bytes()),
            None => {
                let mut bytes = [0u8; 32];
                match getrandom::fill(&mut bytes) {
                    Ok(()) => Self::new(&bytes),
                    Err(e) => {
                        tracing::error!(error = %e, "no randomness for a token secret");
                        Self { mac: None }
                    }
                }
            }
        }
    }

    /// The API token of the subject created by the request `request_ref`.
    pub fn api_token(&self, request_ref: &str) -> Result<String, Problem> {
        let mut mac = self
            .mac
            .clone()
            .ok_or_else(|| Problem::internal("no token secret: the system had no randomness"))?;
        mac.update(b"api-token:");
        mac.update(request_ref.as_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(format!(
            "bk_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        ))
    }
}

/// 409 `api_token_unrecoverable`: the subject exists, but its token cannot be derived any
/// more.
fn unrecoverable(subject: &str) -> Problem {
    tracing::warn!(%subject, "an API token could not be derived again (token secret changed)");
    Problem::new(
        ProblemCode::ApiTokenUnrecoverable,
        format!(
            "{subject} was created by this request, but its API token cannot be derived any \
             more: the server's token secret (BOOKING_TOKEN_SECRET) changed since. Create it \
             again with a new Idempotency-Key"
        ),
    )
}

/// Succeeds if `token` is the API token of `owner`; otherwise 409
/// `api_token_unrecoverable` (the token secret changed since `owner` was created).
pub async fn ensure_owner(state: &AppState, token: &str, owner: Principal) -> Result<(), Problem> {
    if state.engine().authenticate(token).await? == Some(owner) {
        return Ok(());
    }
    let subject = match owner {
        Principal::Client(id) => format!("client {id}"),
        Principal::Professional(id) => format!("professional {id}"),
    };
    Err(unrecoverable(&subject))
}

/// Where the string value after each [`FIELD`] in `body` lies (start, end; `end` is the
/// closing quote).
fn secret_values(body: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&body[from..], FIELD) {
        let start = from + at + FIELD.len();
        let mut i = start;
        let mut escaped = false;
        while i < body.len() && (escaped || body[i] != b'"') {
            escaped = !escaped && body[i] == b'\\';
            i += 1;
        }
        if i >= body.len() {
            break; // unterminated: not JSON the server wrote
        }
        out.push((start, i));
        from = i + 1;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Replaces the value of every `"api_token"` field in `value` by `with`.
fn replace_values(body: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut copied = 0;
    for (start, end) in secret_values(body) {
        out.extend_from_slice(&body[copied..start]);
        out.extend_from_slice(with);
        copied = end;
    }
    out.extend_from_slice(&body[copied..]);
    out
}

/// The body to store for replay: `body` with every API token replaced by a placeholder.
/// Other bodies are returned unchanged.
pub fn redact(body: &[u8]) -> Vec<u8> {
    replace_values(body, PLACEHOLDER)
}

/// The response to replay: a stored response whose token was [redacted](redact) gets the
/// token derived again for the request whose reference is `request_ref` (see
/// [`IdempotentRequest::request_ref`](crate::idempotency::IdempotentRequest::request_ref); after checking that it still is the subject's, see
/// [`ensure_owner`]); any other response is returned unchanged.
pub async fn restore(
    state: &AppState,
    request_ref: &str,
    mut stored: StoredResponse,
) -> Result<StoredResponse, Problem> {
    let redacted = secret_values(&stored.body)
        .iter()
        .any(|&(start, end)| &stored.body[start..end] == PLACEHOLDER);
    if !redacted {
        return Ok(stored);
    }
    let token = state.token_secret().api_token(request_ref)?;
    let id = subject_id(&stored.body)
        .ok_or_else(|| Problem::internal("a stored response with a token names no subject"))?;
    match state.engine().authenticate(&token).await? {
        Some(owner) if principal_id(owner) == id => {}
        _ => return Err(unrecoverable(&format!("subject {id}"))),
    }
    stored.body = replace_values(&stored.body, token.as_bytes());
    Ok(stored)
}

/// The `id` of the subject a stored create response is about.
fn subject_id(body: &[u8]) -> Option<uuid::Uuid> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("id")?.as_str()?.parse().ok()
}

fn principal_id(p: Principal) -> uuid::Uuid {
    match p {
        Principal::Client(id) => id.as_uuid(),
        Principal::Professional(id) => id.as_uuid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_tokens_depend_on_secret_and_request() {
        let a = TokenSecret::new(b"0123456789abcdef0123456789abcdef");
        let t = a.api_token("ref-1").unwrap();
        assert!(t.starts_with("bk_") && t.len() == 46, "{t}");
        assert_eq!(a.api_token("ref-1").unwrap(), t);
        assert_ne!(a.api_token("ref-2").unwrap(), t);
        let b = TokenSecret::new(b"another secret, rotated");
        assert_ne!(b.api_token("ref-1").unwrap(), t);
        assert_ne!(
            TokenSecret::from_setting(None).api_token("ref-1").unwrap(),
            TokenSecret::from_setting(None).api_token("ref-1").unwrap(),
            "unset: a random secret per process"
        );
        assert!(!format!("{a:?}").contains("0123"));
        assert!(TokenSecret { mac: None }.api_token("r").is_err());
    }

    #[test]
    fn redaction_round_trips_byte_for_byte() {
        let token = "bk_AbC-_0123456789abcdefghijklmnopqrstuvwxyzABCD";
        // A name that tries to look like the field is escaped JSON, hence left alone.
        let body = serde_json::to_vec(&serde_json::json!({
            "id": "0190",
            "name": "\"api_token\":\"x\"",
            "api_token": token,
        }))
        .unwrap();
        let stored = redact(&body);
        let text = String::from_utf8(stored.clone()).unwrap();
        assert!(!text.contains(token), "{text}");
        assert!(text.contains("<redacted"), "{text}");
        assert!(text.contains(r#"\"api_token\":\"x\""#), "{text}");
        assert_eq!(replace_values(&stored, token.as_bytes()), body);
        // Bodies without a token are untouched.
        for other in [&b"{\"id\":\"1\"}"[..], b"", b"\"api_token\":\"unterminated"] {
            assert_eq!(redact(other), other);
        }
    }
}
