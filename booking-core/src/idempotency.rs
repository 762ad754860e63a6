//! Idempotent requests, decided purely: key validation, scope, request fingerprint, and the
//! `begin` decision over a stored record.
//!
//! A request with an `Idempotency-Key` first *begins*: the store looks up the record for
//! `(scope, key)` and calls [`decide`]. The outcomes are
//!
//! * [`Decision::Started`]: the caller owns a lease and runs the request, then
//!   [completes](crate::store::IdempotencyStore::complete) it with the final response or
//!   [abandons](crate::store::IdempotencyStore::abandon) it (5xx, crash): a retry runs again;
//! * [`Decision::Replay`]: the stored final response is returned unchanged;
//! * [`Decision::InFlight`]: another attempt holds the lease; retry after it;
//! * [`Decision::Mismatch`]: the key was used for a different request.
//!
//! A crashed attempt never completes; its lease runs out after [`IdempotencyPolicy::lease`]
//! and the next retry starts afresh. Records live [`IdempotencyPolicy::ttl`], then a purge
//! deletes them.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A validated idempotency key: 1..=255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value. The quoted form `"abc"` (IETF httpapi draft) means `abc`.
    ///
    /// ```
    /// use booking_core::IdempotencyKey;
    /// assert_eq!(IdempotencyKey::parse("\"abc\"").unwrap(), IdempotencyKey::parse("abc").unwrap());
    /// assert!(IdempotencyKey::parse("").is_err());
    /// assert!(IdempotencyKey::parse("has space").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self> {
        let inner = raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(raw);
        let ok = !inner.is_empty()
            && inner.len() <= 255
            && inner.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if ok {
            Ok(Self(inner.to_owned()))
        } else {
            Err(Error::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ))
        }
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a key belongs to: keys of different principals never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// A scope named after the authenticated principal, e.g. `client:0190...`.
    pub fn new(principal: impl Into<String>) -> Self {
        Self(principal.into())
    }

    /// The scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 over method, path and the canonical JSON form of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl Fingerprint {
    /// Fingerprints a request. The body is canonicalised (object keys sorted, no
    /// insignificant white space), so `{"a":1,"b":2}` and `{ "b": 2, "a": 1 }` agree.
    /// A body that is not JSON is hashed as it is.
    ///
    /// ```
    /// use booking_core::Fingerprint;
    /// let a = Fingerprint::of_request("POST", "/v1/bookings", br#"{"a":1,"b":[2,3]}"#);
    /// let b = Fingerprint::of_request("POST", "/v1/bookings", b" { \"b\": [2, 3], \"a\": 1 } ");
    /// assert_eq!(a, b);
    /// assert_ne!(a, Fingerprint::of_request("POST", "/v1/clients", br#"{"a":1,"b":[2,3]}"#));
    /// ```
    pub fn of_request(method: &str, path: &str, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(method.to_ascii_uppercase().as_bytes());
        h.update(b"\n");
        h.update(path.as_bytes());
        h.update(b"\n");
        if body.iter().all(u8::is_ascii_whitespace) {
            h.update(b"-");
        } else {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => {
                    h.update(b"j");
                    let mut out = String::with_capacity(body.len());
                    canonical_json(&v, &mut out);
                    h.update(out.as_bytes());
                }
                Err(_) => {
                    h.update(b"r");
                    h.update(body);
                }
            }
        }
        Self(h.finalize().into())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Writes `v` as JSON with object keys in sorted order and no white space.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(k) {
                    canonical_json(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(D::Error::custom)?;
        v.try_into()
            .map_err(|_| D::Error::custom("fingerprint must be 32 bytes"))
    }
}

/// A reference to the request that created something, stored on the booking so that a
/// retry of the same request finds it.
///
/// It covers scope, key, fingerprint and `first_seen`, the instant the key's record was
/// created (see [`Decision::Started`]). Retries within the record's life (including one
/// that takes over a crashed attempt's lease) share it; reusing the key after the record
/// expired is a new request with a new reference, so it never resurrects an old booking.
///
/// ```
/// use booking_core::{Fingerprint, IdempotencyKey, Scope, idempotency::request_ref};
/// let t = chrono::Utc::now();
/// let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
/// let k = IdempotencyKey::parse("k1").unwrap();
/// let a = Scope::new("client:a");
/// assert_eq!(request_ref(&a, &k, &fp, t), request_ref(&a, &k, &fp, t));
/// assert_ne!(request_ref(&a, &k, &fp, t), request_ref(&Scope::new("client:b"), &k, &fp, t));
/// assert_ne!(request_ref(&a, &k, &fp, t), request_ref(&a, &k, &fp, t + chrono::Duration::days(1)));
/// ```
pub fn request_ref(
    scope: &Scope,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    first_seen: DateTime<Utc>,
) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_str().as_bytes());
    h.update([0]);
    h.update(key.as_str().as_bytes());
    h.update([0]);
    h.update(fingerprint.0);
    h.update(first_seen.timestamp_micros().to_be_bytes());
    hex::encode(h.finalize())
}

/// A final response stored for replay, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers worth replaying (e.g. `content-type`, `location`), in order.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

/// Identifies one attempt's lease, so that only the attempt that owns the lease can complete
/// or abandon the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub Uuid);

impl LeaseId {
    /// A fresh lease id.
    pub fn new_at(now: DateTime<Utc>) -> Self {
        Self(crate::domain::EventId::new_at(now).as_uuid())
    }
}

/// The state of one idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    /// An attempt is running; it owns the record until `locked_until`.
    InFlight {
        /// The owning attempt.
        lease: LeaseId,
        /// When the lease runs out and another attempt may take over.
        locked_until: DateTime<Utc>,
    },
    /// The request finished with a final response.
    Completed(StoredResponse),
}

/// One stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Owner.
    pub scope: Scope,
    /// Key.
    pub key: IdempotencyKey,
    /// Fingerprint of the request the key was first used with.
    pub fingerprint: Fingerprint,
    /// In flight or completed.
    pub state: RecordState,
    /// When the key was first used.
    pub created_at: DateTime<Utc>,
    /// When the purge may delete the record; an expired record counts as absent.
    pub expires_at: DateTime<Utc>,
}

/// How long leases and records last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// How long an attempt owns an in-flight record before a retry may take over.
    pub lease: Duration,
    /// How long a record is kept.
    pub ttl: Duration,
}

impl Default for IdempotencyPolicy {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            ttl: Duration::hours(24),
        }
    }
}

/// What a `begin` call decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the request; the caller owns `lease`.
    Started {
        /// The lease to pass to `complete` or `abandon`.
        lease: LeaseId,
        /// When the key's record was first created: the same for every attempt within the
        /// record's life (see [`request_ref`]).
        first_seen: DateTime<Utc>,
    },
    /// Return this stored response unchanged.
    Replay {
        /// The stored final response.
        response: StoredResponse,
        /// When the key's record was first created, as in [`Decision::Started`]: the
        /// request's [`request_ref`] can be rebuilt from it (e.g. to re-derive a secret that
        /// was kept out of the stored response).
        first_seen: DateTime<Utc>,
    },
    /// Another attempt is running; retry after this long.
    InFlight {
        /// Time until the other attempt's lease runs out (at least one second).
        retry_after: Duration,
    },
    /// The key was first used with a different request.
    Mismatch,
}

/// Decides a `begin` over the record found for `(scope, key)`, if any.
///
/// Returns the decision and, for [`Decision::Started`], the record to store (replacing any
/// existing one). Stores call this inside their critical section or transaction.
///
/// ```
/// use booking_core::idempotency::*;
/// use chrono::{TimeZone, Utc};
/// let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
/// let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
/// let (scope, key) = (Scope::new("client:1"), IdempotencyKey::parse("k").unwrap());
/// let policy = IdempotencyPolicy::default();
/// let (d, rec) = decide(None, &scope, &key, fp, now, &policy);
/// assert!(matches!(d, Decision::Started { .. }));
/// let (again, _) = decide(rec.as_ref(), &scope, &key, fp, now, &policy);
/// assert!(matches!(again, Decision::InFlight { .. }));
/// ```
pub fn decide(
    existing: Option<&IdempotencyRecord>,
    scope: &Scope,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
    now: DateTime<Utc>,
    policy: &IdempotencyPolicy,
) -> (Decision, Option<IdempotencyRecord>) {
    let live = existing.filter(|r| r.expires_at > now);
    if let Some(rec) = live {
        if rec.fingerprint != fingerprint {
            return (Decision::Mismatch, None);
        }
        match &rec.state {
            RecordState::Completed(resp) => {
                let replay = Decision::Replay {
                    response: resp.clone(),
                    first_seen: rec.created_at,
                };
                return (replay, None);
            }
            RecordState::InFlight { locked_until, .. } if *locked_until > now => {
                let wait = (*locked_until - now).max(Duration::seconds(1));
                return (Decision::InFlight { retry_after: wait }, None);
            }
            RecordState::InFlight { .. } => {} // lease ran out: take over below
        }
    }
    let lease = LeaseId::new_at(now);
    // A record never expires while its lease runs, whatever the configured TTL.
    let ttl = policy.ttl.max(policy.lease);
    let record = IdempotencyRecord {
        scope: scope.clone(),
        key: key.clone(),
        fingerprint,
        state: RecordState::InFlight {
            lease,
            locked_until: now + policy.lease,
        },
        created_at: live.map_or(now, |r| r.created_at),
        expires_at: live.map_or(now + ttl, |r| r.expires_at.max(now + policy.lease)),
    };
    let first_seen = record.created_at;
    (Decision::Started { lease, first_seen }, Some(record))
}

/// Whether `record` is still owned by `lease` (so `complete`/`abandon` by that attempt apply).
pub fn owns(record: &IdempotencyRecord, lease: LeaseId) -> bool {
    matches!(record.state, RecordState::InFlight { lease: l, .. } if l == lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn setup() -> (
        Scope,
        IdempotencyKey,
        Fingerprint,
        DateTime<Utc>,
        IdempotencyPolicy,
    ) {
        (
            Scope::new("client:x"),
            IdempotencyKey::parse("key-1").unwrap(),
            Fingerprint::of_request("POST", "/v1/bookings", br#"{"a":1}"#),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
            IdempotencyPolicy::default(),
        )
    }

    #[test]
    fn key_rules() {
        assert!(IdempotencyKey::parse(&"a".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"a".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("\"\"").is_err());
        assert!(IdempotencyKey::parse("tab\t").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
        assert_eq!(IdempotencyKey::parse("\"x\"").unwrap().as_str(), "x");
    }

    #[test]
    fn replay_mismatch_lease_and_expiry() {
        let (scope, key, fp, now, policy) = setup();
        let (_, rec) = decide(None, &scope, &key, fp, now, &policy);
        let mut rec = rec.unwrap();
        // Another body with the same key.
        let other = Fingerprint::of_request("POST", "/v1/bookings", br#"{"a":2}"#);
        assert_eq!(
            decide(Some(&rec), &scope, &key, other, now, &policy).0,
            Decision::Mismatch
        );
        // Lease runs out: a retry takes over with a new lease, keeping created_at.
        let later = now + policy.lease;
        let (d, taken) = decide(Some(&rec), &scope, &key, fp, later, &policy);
        let Decision::Started { lease, first_seen } = d else {
            panic!("expected Started")
        };
        assert_eq!(
            first_seen, now,
            "a takeover keeps the first attempt's reference"
        );
        let taken = taken.unwrap();
        assert!(owns(&taken, lease));
        assert!(!owns(&rec, lease));
        assert_eq!(taken.created_at, now);
        // Completed: replay.
        let resp = StoredResponse {
            status: 201,
            headers: vec![],
            body: b"{}".to_vec(),
        };
        rec.state = RecordState::Completed(resp.clone());
        assert_eq!(
            decide(Some(&rec), &scope, &key, fp, later, &policy).0,
            Decision::Replay {
                response: resp,
                first_seen: now
            }
        );
        // Expired record counts as absent, even with another fingerprint.
        let after_ttl = rec.expires_at;
        assert!(matches!(
            decide(Some(&rec), &scope, &key, other, after_ttl, &policy).0,
            Decision::Started { .. }
        ));
    }

    #[test]
    fn non_json_bodies_and_empty_bodies_are_distinct() {
        let a = Fingerprint::of_request("POST", "/p", b"");
        let b = Fingerprint::of_request("POST", "/p", b"{}");
        let c = Fingerprint::of_request("POST", "/p", b"not json");
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(a, Fingerprint::of_request("post", "/p", b"  "));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), a);
    }

    #[test]
    fn keys_and_scopes_print_as_their_text() {
        let key = IdempotencyKey::parse("\"k-1\"").unwrap();
        assert_eq!(key.to_string(), "k-1");
        let scope = Scope::new("client:a");
        assert_eq!(scope.as_str(), "client:a");
        assert_eq!(scope.to_string(), "client:a");
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_white_space() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": [1, {"y": 2, "x": null}], "a": "s", "c": {} }"#)
                .unwrap();
        let mut out = String::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, r#"{"a":"s","b":[1,{"x":null,"y":2}],"c":{}}"#);
    }

    #[test]
    fn fingerprint_hex_is_the_sha256_in_lower_case() {
        let fp = Fingerprint::of_request("POST", "/p", b"");
        let hex = fp.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, hex::encode(fp.0));
        assert_ne!(fp.0, [0; 32]);
    }

    #[test]
    fn request_ref_depends_on_every_part() {
        let (scope, key, fp, now, _) = setup();
        let r = request_ref(&scope, &key, &fp, now);
        assert_eq!(r.len(), 64, "hex of a SHA-256");
        assert_eq!(r, request_ref(&scope, &key, &fp, now));
        let other_fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
        let other_key = IdempotencyKey::parse("key-2").unwrap();
        for other in [
            request_ref(&Scope::new("client:y"), &key, &fp, now),
            request_ref(&scope, &other_key, &fp, now),
            request_ref(&scope, &key, &other_fp, now),
            request_ref(&scope, &key, &fp, now + Duration::microseconds(1)),
        ] {
            assert_ne!(other, r);
        }
    }

    #[test]
    fn default_policy_is_a_minute_lease_and_a_day_of_records() {
        let policy = IdempotencyPolicy::default();
        assert_eq!(policy.lease, Duration::seconds(60));
        assert_eq!(policy.ttl, Duration::hours(24));
    }

    #[test]
    fn a_new_record_is_leased_and_kept_for_the_ttl() {
        let (scope, key, fp, now, policy) = setup();
        let (d, rec) = decide(None, &scope, &key, fp, now, &policy);
        let rec = rec.unwrap();
        let Decision::Started { lease, first_seen } = d else {
            panic!("expected Started, got {d:?}")
        };
        assert_eq!(first_seen, now);
        assert_eq!(
            rec.state,
            RecordState::InFlight {
                lease,
                locked_until: now + policy.lease
            }
        );
        assert_eq!((rec.created_at, rec.expires_at), (now, now + policy.ttl));
        assert_eq!((&rec.scope, &rec.key, rec.fingerprint), (&scope, &key, fp));
        // A TTL shorter than the lease still outlives the lease.
        let short = IdempotencyPolicy {
            lease: Duration::seconds(60),
            ttl: Duration::seconds(10),
        };
        let rec = decide(None, &scope, &key, fp, now, &short).1.unwrap();
        assert_eq!(rec.expires_at, now + short.lease);
    }

    #[test]
    fn in_flight_asks_to_retry_when_the_lease_runs_out_and_at_least_after_a_second() {
        let (scope, key, fp, now, policy) = setup();
        let rec = decide(None, &scope, &key, fp, now, &policy).1.unwrap();
        let wait = |at| match decide(Some(&rec), &scope, &key, fp, at, &policy).0 {
            Decision::InFlight { retry_after } => retry_after,
            d => panic!("expected InFlight, got {d:?}"),
        };
        assert_eq!(wait(now), policy.lease);
        assert_eq!(wait(now + Duration::seconds(20)), Duration::seconds(40));
        let almost = now + policy.lease - Duration::milliseconds(300);
        assert_eq!(wait(almost), Duration::seconds(1));
    }

    #[test]
    fn a_takeover_keeps_the_record_alive_for_the_new_lease() {
        let (scope, key, fp, now, _) = setup();
        let policy = IdempotencyPolicy {
            lease: Duration::seconds(60),
            ttl: Duration::seconds(90),
        };
        let rec = decide(None, &scope, &key, fp, now, &policy).1.unwrap();
        assert_eq!(rec.expires_at, now + Duration::seconds(90));
        let later = now + policy.lease;
        let taken = decide(Some(&rec), &scope, &key, fp, later, &policy)
            .1
            .unwrap();
        assert_eq!(taken.created_at, now);
        assert_eq!(taken.expires_at, later + policy.lease);
        // A takeover early in a long TTL keeps the record's original expiry.
        let long = IdempotencyPolicy::default();
        let rec = decide(None, &scope, &key, fp, now, &long).1.unwrap();
        let later = now + long.lease;
        let taken = decide(Some(&rec), &scope, &key, fp, later, &long)
            .1
            .unwrap();
        assert_eq!(taken.expires_at, rec.expires_at);
    }

    #[test]
    fn a_record_counts_until_just_before_it_expires() {
        let (scope, key, fp, now, policy) = setup();
        let mut rec = decide(None, &scope, &key, fp, now, &policy).1.unwrap();
        rec.state = RecordState::Completed(StoredResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        });
        let just_before = rec.expires_at - Duration::microseconds(1);
        assert!(matches!(
            decide(Some(&rec), &scope, &key, fp, just_before, &policy).0,
            Decision::Replay { .. }
        ));
        let (d, fresh) = decide(Some(&rec), &scope, &key, fp, rec.expires_at, &policy);
        let Decision::Started { first_seen, .. } = d else {
            panic!("expected Started, got {d:?}")
        };
        assert_eq!(
            first_seen, rec.expires_at,
            "an expired record starts afresh"
        );
        assert_eq!(fresh.unwrap().created_at, rec.expires_at);
    }
}
