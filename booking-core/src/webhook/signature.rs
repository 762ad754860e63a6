//! Webhook signatures in Stripe's `v1` scheme, used in both directions: verifying the
//! `Stripe-Signature` header of an inbound Stripe event and signing the `Booking-Signature`
//! header of an outbound delivery.
//!
//! A signature header looks like
//!
//! ```text
//! t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v0=6ffbb59b…
//! ```
//!
//! `t` is the signing instant in Unix seconds. Each `v1` is the lowercase hex
//! HMAC-SHA256 of `"{t}.{raw body}"` keyed with the UTF-8 bytes of a signing secret (the whole
//! `whsec_…` string). Stripe sends one `v1` per active secret, so during a secret rotation a
//! header carries several; a receiver may hold several secrets too ([`WebhookSecret::parse_list`]).
//!
//! [`verify`] accepts a request when some `v1` matches the HMAC of the body under some secret
//! (compared in constant time) **and** `t` lies within the tolerance of `now`, in either
//! direction. The order of the checks is deliberate: the timestamp is judged only for an
//! authentic signature, so [`SignatureError::TimestampOutsideTolerance`] always means "a real
//! but stale (or replayed, or clock-skewed) delivery", never a forgery.
//!
//! # Parsing rules
//!
//! These follow Stripe's own libraries where they agree and pick the stricter reading where
//! they differ; [`SignatureHeader::parse`] never panics and does work linear in the input,
//! which is capped at [`MAX_HEADER_LEN`] bytes.
//!
//! * Elements are separated by `,`; ASCII white space around an element, its key and its value
//!   is ignored (stripe-ruby splits on `,\s*`; HTTP allows optional white space), and empty
//!   elements (a trailing comma) are skipped.
//! * Every non-empty element must be `key=value`, split at the first `=` (stripe-go refuses an
//!   element without `=` as an invalid header).
//! * Exactly one `t`, made of 1 to 18 ASCII digits; its value is what is signed, rendered in
//!   decimal, as every Stripe library does (so `t=0042` signs `42.`). A missing or repeated `t`
//!   is malformed.
//! * A `v1` that is not 64 lowercase hex digits can never match and is ignored (stripe-go skips
//!   undecodable signatures; the other libraries compare against the lowercase hex digest).
//! * Any other key (`v0`, a future scheme) is ignored.
//!
//! Stripe's Python, Ruby, Go and Node libraries refuse only timestamps that are too *old*;
//! stripe-php and stripe-dotnet refuse a timestamp too far in the future as well, and so does
//! [`verify`]: a signature from the future is as suspicious as a stale one.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

#[cfg(test)]
mod tests;

/// How far the signing instant may lie from `now`, as Stripe's libraries default to: 300 s.
pub const DEFAULT_TOLERANCE: Duration = Duration::seconds(300);

/// The longest header [`SignatureHeader::parse`] reads, in bytes. A real header is under
/// 300 bytes (one `t`, one or two `v1`, perhaps a `v0`); anything near this is an attack.
pub const MAX_HEADER_LEN: usize = 4096;

/// The only scheme this module signs and verifies.
const SCHEME: &[u8] = b"v1";

/// The most digits a `t` value may have: any 18-digit number fits an `i64`.
const MAX_TIMESTAMP_DIGITS: usize = 18;

type HmacSha256 = Hmac<Sha256>;

/// A webhook signing secret. Its `Debug` form never shows the secret, and it has no
/// `Display`, `PartialEq` or serde implementation that could leak or compare it carelessly.
///
/// ```
/// use booking_core::WebhookSecret;
/// let secret = WebhookSecret::new("whsec_test_secret").unwrap();
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
/// assert!(WebhookSecret::new("  ").is_err());
/// ```
#[derive(Clone)]
pub struct WebhookSecret(Box<str>);

impl WebhookSecret {
    /// A secret as configured. Blank secrets are refused, as Stripe's libraries refuse them.
    /// The secret is used exactly as given (including any `whsec_` prefix), as Stripe does.
    pub fn new(secret: impl Into<String>) -> Result<Self> {
        let secret = secret.into();
        if secret.trim().is_empty() {
            return Err(Error::invalid(
                "secret",
                "a webhook secret must not be blank",
            ));
        }
        Ok(Self(secret.into_boxed_str()))
    }

    /// Several secrets from one comma-separated setting (e.g. `STRIPE_WEBHOOK_SECRETS`, which
    /// holds two secrets while one is being rotated). White space around each secret is
    /// dropped; at least one secret is required.
    ///
    /// ```
    /// use booking_core::WebhookSecret;
    /// assert_eq!(WebhookSecret::parse_list("whsec_old, whsec_new").unwrap().len(), 2);
    /// assert!(WebhookSecret::parse_list(" , ").is_err());
    /// ```
    pub fn parse_list(value: &str) -> Result<Vec<Self>> {
        let secrets: Vec<Self> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::new)
            .collect::<Result<_>>()?;
        if secrets.is_empty() {
            return Err(Error::invalid(
                "secrets",
                "at least one webhook secret is required",
            ));
        }
        Ok(secrets)
    }

    /// The HMAC state after absorbing `"{t}."`, ready for the body.
    fn mac_for(&self, timestamp: i64) -> HmacSha256 {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(self.0.as_bytes())
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac
    }

    /// The `v1` signature of `body` signed at `timestamp` (Unix seconds).
    fn signature(&self, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac_for(timestamp);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a signature header could not be read (see the [module docs](self) for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderDefect {
    /// Longer than [`MAX_HEADER_LEN`] bytes.
    TooLong,
    /// An element with no `=` in it, such as `t` or `v1`.
    ElementWithoutValue,
    /// No `t=` element.
    MissingTimestamp,
    /// More than one `t=` element.
    DuplicateTimestamp,
    /// A `t` value that is not 1 to 18 ASCII digits or not a representable instant.
    BadTimestamp,
}

impl fmt::Display for HeaderDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderDefect::TooLong => return write!(f, "longer than {MAX_HEADER_LEN} bytes"),
            HeaderDefect::ElementWithoutValue => "an element is not of the form key=value",
            HeaderDefect::MissingTimestamp => "no t= element",
            HeaderDefect::DuplicateTimestamp => "more than one t= element",
            HeaderDefect::BadTimestamp => "t= is not a Unix time in seconds",
        })
    }
}

/// Every way a signed request can be refused. Each variant is one thing a server logs and
/// counts ([`SignatureError::kind`]); none of them says anything about the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The request has no signature header, or a blank one.
    #[error("the request has no signature header")]
    Missing,
    /// The signature header cannot be read.
    #[error("malformed signature header: {0}")]
    Malformed(HeaderDefect),
    /// A signature matches, but it was made too long before (or after) `now`.
    #[error("the signature timestamp {signed_at} is outside the tolerance")]
    TimestampOutsideTolerance {
        /// The `t` of the header.
        signed_at: DateTime<Utc>,
    },
    /// No `v1` signature matches the body under any of the secrets.
    #[error("no v1 signature matches the body under any signing secret")]
    NoMatchingSignature,
}

impl SignatureError {
    /// A stable `snake_case` label for logs and metrics: `missing`, `malformed`,
    /// `timestamp_outside_tolerance` or `no_matching_signature`.
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed(_) => "malformed",
            SignatureError::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
            SignatureError::NoMatchingSignature => "no_matching_signature",
        }
    }
}

/// A parsed signature header: the signing instant and the readable `v1` signatures, in header
/// order. Its `Display` form is the canonical header (`t=…,v1=…,v1=…`).
///
/// ```
/// use booking_core::SignatureHeader;
/// let h = SignatureHeader::parse("t=1700000000, v0=abc, v1=bad").unwrap();
/// assert_eq!(h.timestamp(), 1_700_000_000);
/// assert!(h.signatures().is_empty()); // `bad` can never match; v0 is not our scheme
/// assert!(SignatureHeader::parse("v1=00").is_err()); // no t=
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    signed_at: DateTime<Utc>,
    signatures: Vec<[u8; 32]>,
}

impl SignatureHeader {
    /// Reads a header value. Never panics; work is linear in the input and the input is
    /// capped at [`MAX_HEADER_LEN`] bytes. A header without any readable `v1` parses (it is
    /// well-formed) but verifies as [`SignatureError::NoMatchingSignature`].
    pub fn parse<H: AsRef<[u8]> + ?Sized>(raw: &H) -> Result<Self, SignatureError> {
        let raw = raw.as_ref();
        if raw.len() > MAX_HEADER_LEN {
            return Err(SignatureError::Malformed(HeaderDefect::TooLong));
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for element in raw.split(|&b| b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                continue;
            }
            let Some(eq) = element.iter().position(|&b| b == b'=') else {
                return Err(SignatureError::Malformed(HeaderDefect::ElementWithoutValue));
            };
            let key = element[..eq].trim_ascii();
            let value = element[eq + 1..].trim_ascii();
            if key == b"t" {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed(HeaderDefect::DuplicateTimestamp));
                }
                timestamp = Some(parse_unix_seconds(value)?);
            } else if key == SCHEME
                && let Some(signature) = decode_lower_hex(value)
            {
                signatures.push(signature);
            }
        }
        let (timestamp, signed_at) =
            timestamp.ok_or(SignatureError::Malformed(HeaderDefect::MissingTimestamp))?;
        Ok(Self {
            timestamp,
            signed_at,
            signatures,
        })
    }

    /// The `t` value: the signing instant in Unix seconds.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The signing instant.
    pub fn signed_at(&self) -> DateTime<Utc> {
        self.signed_at
    }

    /// The readable `v1` signatures, in header order.
    pub fn signatures(&self) -> &[[u8; 32]] {
        &self.signatures
    }

    /// The index of the first secret under which some `v1` signature matches `body`.
    /// Each secret's HMAC is computed once; every comparison is constant-time.
    fn matching_secret(&self, body: &[u8], secrets: &[WebhookSecret]) -> Option<usize> {
        secrets.iter().position(|secret| {
            let mut mac = secret.mac_for(self.timestamp);
            mac.update(body);
            self.signatures
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        })
    }
}

impl fmt::Display for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}", self.timestamp)?;
        for signature in &self.signatures {
            write!(f, ",v1={}", hex::encode(signature))?;
        }
        Ok(())
    }
}

/// What [`verify`] established about an accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// When the sender signed it (the header's `t`).
    pub signed_at: DateTime<Utc>,
    /// The index, in the `secrets` given to [`verify`], of the secret that matched: during a
    /// rotation this tells when the old secret has stopped being used.
    pub secret_index: usize,
}

/// Verifies a signed request: `header` is the raw signature header value (`None` when the
/// request has none; an `http::HeaderValue` works as it is), `raw_body` the body exactly as
/// received, `secrets` every secret currently accepted, `now` the current instant and
/// `tolerance` how far `t` may lie from `now` in either direction ([`DEFAULT_TOLERANCE`]; a
/// negative tolerance refuses everything).
///
/// The body must be the bytes on the wire: a re-serialised JSON value will not verify.
///
/// ```
/// use booking_core::webhook::{DEFAULT_TOLERANCE, SignatureError, sign, verify};
/// use booking_core::WebhookSecret;
/// use chrono::{Duration, TimeZone, Utc};
///
/// let secrets = WebhookSecret::parse_list("whsec_old,whsec_new").unwrap();
/// let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
/// let body = br#"{"id":"evt_1"}"#;
/// let header = sign(&secrets[1], t, body);
///
/// let ok = verify(Some(&header), body, &secrets, t + Duration::seconds(5), DEFAULT_TOLERANCE).unwrap();
/// assert_eq!(ok.secret_index, 1);
/// assert_eq!(
///     verify(Some(&header), b"{}", &secrets, t, DEFAULT_TOLERANCE),
///     Err(SignatureError::NoMatchingSignature)
/// );
/// assert!(matches!(
///     verify(Some(&header), body, &secrets, t + Duration::minutes(6), DEFAULT_TOLERANCE),
///     Err(SignatureError::TimestampOutsideTolerance { .. })
/// ));
/// assert_eq!(verify(None::<&str>, body, &secrets, t, DEFAULT_TOLERANCE), Err(SignatureError::Missing));
/// ```
pub fn verify<H: AsRef<[u8]> + ?Sized>(
    header: Option<&H>,
    raw_body: &[u8],
    secrets: &[WebhookSecret],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<VerifiedSignature, SignatureError> {
    let raw = header
        .map(AsRef::as_ref)
        .filter(|h| !h.trim_ascii().is_empty())
        .ok_or(SignatureError::Missing)?;
    let parsed = SignatureHeader::parse(raw)?;
    let secret_index = parsed
        .matching_secret(raw_body, secrets)
        .ok_or(SignatureError::NoMatchingSignature)?;
    if (now - parsed.signed_at).abs() > tolerance {
        return Err(SignatureError::TimestampOutsideTolerance {
            signed_at: parsed.signed_at,
        });
    }
    Ok(VerifiedSignature {
        signed_at: parsed.signed_at,
        secret_index,
    })
}

/// Signs `body` at `signed_at` (truncated to whole seconds) with one secret and returns the
/// header value `t=<unix>,v1=<hex>`, exactly as Stripe signs its webhooks. (An instant before
/// 1970 gives a negative `t`, which no verifier accepts.)
///
/// ```
/// use booking_core::{WebhookSecret, webhook::sign};
/// use chrono::{TimeZone, Utc};
/// let secret = WebhookSecret::new("whsec_test_secret").unwrap();
/// let header = sign(&secret, Utc.timestamp_opt(1_700_000_000, 0).unwrap(), b"{}");
/// assert!(header.starts_with("t=1700000000,v1="));
/// assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
/// ```
pub fn sign(secret: &WebhookSecret, signed_at: DateTime<Utc>, body: &[u8]) -> String {
    sign_all(std::slice::from_ref(secret), signed_at, body)
}

/// Signs `body` with each of `secrets`, one `v1` per secret in the given order, as Stripe does
/// while a secret is being rotated: receivers holding either secret accept the delivery.
/// With no secrets the header carries only `t=`, which no receiver accepts.
pub fn sign_all(secrets: &[WebhookSecret], signed_at: DateTime<Utc>, body: &[u8]) -> String {
    let timestamp = signed_at.timestamp();
    SignatureHeader {
        timestamp,
        signed_at: DateTime::from_timestamp(timestamp, 0).unwrap_or(signed_at),
        signatures: secrets
            .iter()
            .map(|secret| secret.signature(timestamp, body))
            .collect(),
    }
    .to_string()
}

/// `t` values: 1 to 18 ASCII digits naming an instant chrono can represent.
fn parse_unix_seconds(value: &[u8]) -> Result<(i64, DateTime<Utc>), SignatureError> {
    let bad = SignatureError::Malformed(HeaderDefect::BadTimestamp);
    if value.is_empty()
        || value.len() > MAX_TIMESTAMP_DIGITS
        || !value.iter().all(u8::is_ascii_digit)
    {
        return Err(bad);
    }
    let seconds = value
        .iter()
        .fold(0_i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    let at = DateTime::from_timestamp(seconds, 0).ok_or(bad)?;
    Ok((seconds, at))
}

/// 64 lowercase hex digits as 32 bytes; anything else is `None`.
fn decode_lower_hex(value: &[u8]) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if value.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (byte, pair) in out.iter_mut().zip(value.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}
