//! Unit and property tests of the signature scheme, including fixed vectors from Stripe's SDK
//! tests (cited where used).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0)
        .single()
        .expect("valid test instant")
}

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::new(s).expect("non-blank test secret")
}

fn check(
    header: &str,
    body: &[u8],
    secrets: &[WebhookSecret],
    now: i64,
    tolerance: i64,
) -> Result<VerifiedSignature, SignatureError> {
    verify(
        Some(header),
        body,
        secrets,
        at(now),
        Duration::seconds(tolerance),
    )
}

// ---------------------------------------------------------------------------------------
// Fixed vectors from Stripe's SDK tests.
// ---------------------------------------------------------------------------------------

/// stripe/stripe-dotnet, `src/StripeTests/Resources/event_test_signature.json` (LF line ends,
/// with the final newline), used by `src/StripeTests/Services/Events/EventUtilityTest.cs`.
const DOTNET_EVENT: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

/// stripe/stripe-dotnet, `src/StripeTests/Services/Events/EventUtilityTest.cs`: the header,
/// secret and timestamp for [`DOTNET_EVENT`].
const DOTNET_HEADER: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
const DOTNET_SECRET: &str = "webhook_secret";
const DOTNET_T: i64 = 1_533_204_620;

/// stripe/stripe-dotnet, `src/Stripe.Tests.XUnit/events/event.json` (without a final
/// newline): a body Stripe itself delivered in a test webhook, with the `Stripe-Signature`
/// and secret recorded in `src/Stripe.Tests.XUnit/events/when_constructing_an_event.cs`.
const STRIPE_SENT_EVENT: &str = r#"{
  "id": "evt_1ADKLLLWlyqCpbLp0qRyqExL",
  "object": "event",
  "api_version": "2017-04-06",
  "created": 1493329207,
  "data": {
    "object": {
      "id": "ii_1ACxoELWlyqCpbLpBSzyGWHX",
      "object": "invoiceitem",
      "amount": 1000,
      "currency": "usd",
      "customer": "cus_AY3wPzBBv9DU2H",
      "date": 1493242586,
      "description": "Test Invoice Item",
      "discountable": false,
      "invoice": "in_1ADKLKLWlyqCpbLpMhrRBk7u",
      "livemode": false,
      "metadata": {
        "A": "Value-A",
        "B": "Value-B"
      },
      "period": {
        "start": 1493242586,
        "end": 1493242586
      },
      "plan": null,
      "proration": false,
      "quantity": null,
      "subscription": null
    },
    "previous_attributes": {
      "invoice": null
    }
  },
  "livemode": false,
  "pending_webhooks": 2,
  "request": null,
  "type": "invoiceitem.updated"
}"#;
const STRIPE_SENT_HEADER: &str = "t=1493329224,v1=09b8e30b483570b410390cdac6327c036937e84a6316008a0143db833ac21a09,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
const STRIPE_SENT_SECRET: &str = "whsec_H68eTX02a4bCbiQOOoSAsIytOvuWZrQC";
const STRIPE_SENT_T: i64 = 1_493_329_224;

#[test]
fn dotnet_vector_verifies_within_tolerance() {
    let ok = check(
        DOTNET_HEADER,
        DOTNET_EVENT.as_bytes(),
        &[secret(DOTNET_SECRET)],
        DOTNET_T + 100,
        300,
    );
    assert_eq!(
        ok,
        Ok(VerifiedSignature {
            signed_at: at(DOTNET_T),
            secret_index: 0
        })
    );
}

#[test]
fn dotnet_vector_is_reproduced_by_sign() {
    let header = sign(
        &secret(DOTNET_SECRET),
        at(DOTNET_T),
        DOTNET_EVENT.as_bytes(),
    );
    // Our header is the vector without its v0 element.
    assert_eq!(Some(header.as_str()), DOTNET_HEADER.split(",v0=").next());
}

#[test]
fn dotnet_vector_refuses_outdated_timestamp() {
    // EventUtilityTest.RejectOutdatedTimestamp: now = t + tolerance + 100.
    let err = check(
        DOTNET_HEADER,
        DOTNET_EVENT.as_bytes(),
        &[secret(DOTNET_SECRET)],
        DOTNET_T + 400,
        300,
    );
    assert_eq!(
        err,
        Err(SignatureError::TimestampOutsideTolerance {
            signed_at: at(DOTNET_T)
        })
    );
}

#[test]
fn dotnet_vector_refuses_changed_body() {
    // EventUtilityTest.RejectIncorrectSignature.
    let body = format!("{DOTNET_EVENT}this_changes_the_json");
    let err = check(
        DOTNET_HEADER,
        body.as_bytes(),
        &[secret(DOTNET_SECRET)],
        DOTNET_T,
        300,
    );
    assert_eq!(err, Err(SignatureError::NoMatchingSignature));
}

#[test]
fn dotnet_vector_refuses_body_with_crlf_line_ends() {
    // The fixture is signed with LF line ends; the raw body must not be normalised.
    let body = DOTNET_EVENT.replace('\n', "\r\n");
    let err = check(
        DOTNET_HEADER,
        body.as_bytes(),
        &[secret(DOTNET_SECRET)],
        DOTNET_T,
        300,
    );
    assert_eq!(err, Err(SignatureError::NoMatchingSignature));
}

#[test]
fn dotnet_incorrect_header_values_are_refused() {
    // EventUtilityTest.ValidateSignatureHandlesIncorrectHeaderValues.
    let malformed = |d| Err(SignatureError::Malformed(d));
    let cases = [
        (
            "t=,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef",
            malformed(HeaderDefect::BadTimestamp),
        ),
        ("t,v1=,v0=", malformed(HeaderDefect::ElementWithoutValue)),
        ("t,v1=,v0", malformed(HeaderDefect::ElementWithoutValue)),
        ("t,v1=,", malformed(HeaderDefect::ElementWithoutValue)),
        ("t,,", malformed(HeaderDefect::ElementWithoutValue)),
        (",,", malformed(HeaderDefect::MissingTimestamp)),
        ("t", malformed(HeaderDefect::ElementWithoutValue)),
    ];
    for (header, want) in cases {
        assert_eq!(
            check(header, b"{}", &[secret(DOTNET_SECRET)], DOTNET_T, 300),
            want,
            "{header}"
        );
    }
}

#[test]
fn a_signature_made_by_stripe_verifies() {
    let ok = check(
        STRIPE_SENT_HEADER,
        STRIPE_SENT_EVENT.as_bytes(),
        &[secret(STRIPE_SENT_SECRET)],
        STRIPE_SENT_T + 1,
        300,
    );
    assert_eq!(ok.map(|v| v.signed_at), Ok(at(STRIPE_SENT_T)));
    let header = sign(
        &secret(STRIPE_SENT_SECRET),
        at(STRIPE_SENT_T),
        STRIPE_SENT_EVENT.as_bytes(),
    );
    assert_eq!(
        Some(header.as_str()),
        STRIPE_SENT_HEADER.split(",v0=").next()
    );
}

/// The cases of stripe/stripe-go `webhook/client_test.go` (`TestTokenNew`) and
/// stripe/stripe-python `tests/test_webhook.py` (`TestWebhookSignature`), at a fixed `now`.
#[test]
fn stripe_library_test_cases() {
    let s = secret("whsec_test_secret");
    let body = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
    let now = 1_700_000_000;
    let header = sign(&s, at(now), body);
    let one = std::slice::from_ref(&s);

    assert!(check(&header, body, one, now, 300).is_ok());
    // An unreadable extra signature is ignored.
    assert!(check(&format!("{header},v1=bad_signature"), body, one, now, 300).is_ok());
    // Empty header: not signed.
    assert_eq!(check("", body, one, now, 300), Err(SignatureError::Missing));
    assert_eq!(
        check(" \t", body, one, now, 300),
        Err(SignatureError::Missing)
    );
    // Bad formats.
    for bad in [
        "v1,t=1",
        "t=",
        "bad_header",
        "i'm not even a real signature header",
    ] {
        assert!(
            matches!(
                check(bad, body, one, now, 300),
                Err(SignatureError::Malformed(_))
            ),
            "{bad}"
        );
    }
    // Only a v0 signature (the scheme is not ours).
    let v0 = header.replace("v1=", "v0=");
    assert_eq!(
        check(&v0, body, one, now, 300),
        Err(SignatureError::NoMatchingSignature)
    );
    // A fake signature.
    let fake = format!("t={now},v1=deadbeef");
    assert_eq!(
        check(&fake, body, one, now, 300),
        Err(SignatureError::NoMatchingSignature)
    );
    // Tolerance: signed 15 s ago fails with 10 s and passes with 20 s.
    let old = sign(&s, at(now - 15), body);
    assert!(matches!(
        check(&old, body, one, now, 10),
        Err(SignatureError::TimestampOutsideTolerance { .. })
    ));
    assert!(check(&old, body, one, now, 20).is_ok());
}

// ---------------------------------------------------------------------------------------
// Rotation, tolerance edges, white space, limits.
// ---------------------------------------------------------------------------------------

#[test]
fn rotation_any_secret_matches_any_signature() {
    let old = secret("whsec_old");
    let new = secret("whsec_new");
    let other = secret("whsec_other");
    let body = b"{\"id\":\"evt_rot\"}";
    let t = 1_700_000_000;
    // Stripe rolling its secret: one header, two v1.
    let both = sign_all(&[old.clone(), new.clone()], at(t), body);
    assert_eq!(both.matches(",v1=").count(), 2);
    for (secrets, index) in [
        (vec![old.clone()], 0),
        (vec![new.clone()], 0),
        (vec![other.clone(), new.clone()], 1),
    ] {
        assert_eq!(
            check(&both, body, &secrets, t, 300).map(|v| v.secret_index),
            Ok(index)
        );
    }
    assert_eq!(
        check(&both, body, std::slice::from_ref(&other), t, 300),
        Err(SignatureError::NoMatchingSignature)
    );
    // Us rolling ours: one v1, two secrets held; the first matching secret is reported.
    let single = sign(&new, at(t), body);
    assert_eq!(
        check(&single, body, &[old.clone(), new.clone()], t, 300).map(|v| v.secret_index),
        Ok(1)
    );
    assert_eq!(
        check(&single, body, &[], t, 300),
        Err(SignatureError::NoMatchingSignature)
    );
    // The matching v1 may come anywhere among several.
    let sig_new = &single["t=1700000000,v1=".len()..];
    let many = format!(
        "t={t},v1={},v0=ignored,v1={sig_new},v1={}",
        "0".repeat(64),
        "f".repeat(64)
    );
    assert!(check(&many, body, &[new], t, 300).is_ok());
}

#[test]
fn tolerance_is_inclusive_and_two_sided() {
    let s = secret("whsec_t");
    let t = 1_700_000_000;
    let header = sign(&s, at(t), b"x");
    let one = std::slice::from_ref(&s);
    assert!(check(&header, b"x", one, t + 300, 300).is_ok());
    assert!(check(&header, b"x", one, t - 300, 300).is_ok());
    for now in [t + 301, t - 301] {
        assert_eq!(
            check(&header, b"x", one, now, 300),
            Err(SignatureError::TimestampOutsideTolerance { signed_at: at(t) })
        );
    }
    // Sub-second: 300.5 s late is outside.
    let late = at(t + 300) + Duration::milliseconds(500);
    assert!(verify(Some(&header), b"x", one, late, DEFAULT_TOLERANCE).is_err());
    // A negative tolerance refuses even an exact match.
    assert!(check(&header, b"x", one, t, -1).is_err());
}

#[test]
fn stale_forgery_reports_the_signature_not_the_timestamp() {
    let s = secret("whsec_order");
    let header = format!("t=1,v1={}", "a".repeat(64));
    assert_eq!(
        check(&header, b"x", &[s], 1_700_000_000, 300),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn white_space_and_order_are_tolerated() {
    let s = secret("whsec_ws");
    let t = 1_700_000_000;
    let header = sign(&s, at(t), b"body");
    let sig = &header["t=1700000000,v1=".len()..];
    let one = std::slice::from_ref(&s);
    for variant in [
        format!("t={t}, v1={sig}"),
        format!(" t = {t} ,\tv1 = {sig} "),
        format!("v1={sig},t={t}"),
        format!("t={t},v1={sig},"),
        format!("t=000{t},v1={sig}"),
        format!("t={t},v0=abc,x=,=y,v2=a=b,v1={sig}"),
    ] {
        assert!(check(&variant, b"body", one, t, 300).is_ok(), "{variant}");
    }
}

#[test]
fn uppercase_hex_never_matches() {
    // Stripe compares against the lowercase hex digest; accepting uppercase would also let
    // a case flip of a signature byte still verify.
    let s = secret("whsec_case");
    let header = sign(&s, at(1_700_000_000), b"b");
    assert_eq!(
        check(
            &header
                .to_uppercase()
                .replace("T=", "t=")
                .replace("V1=", "v1="),
            b"b",
            &[s],
            1_700_000_000,
            300
        ),
        Err(SignatureError::NoMatchingSignature)
    );
}

#[test]
fn timestamp_and_length_limits() {
    let s = secret("whsec_lim");
    let one = std::slice::from_ref(&s);
    let malformed = |d| Err(SignatureError::Malformed(d));
    assert_eq!(
        check("t=1,t=1", b"", one, 1, 300),
        malformed(HeaderDefect::DuplicateTimestamp)
    );
    for bad in [
        "t=-1",
        "t=+1",
        "t=1.5",
        "t=1e9",
        "t=１",
        "t=9999999999999999999",
        "t=999999999999999999",
    ] {
        assert_eq!(
            check(bad, b"", one, 1, 300),
            malformed(HeaderDefect::BadTimestamp),
            "{bad}"
        );
    }
    let long = format!("t=1,v0={}", "a".repeat(MAX_HEADER_LEN));
    assert_eq!(
        check(&long, b"", one, 1, 300),
        malformed(HeaderDefect::TooLong)
    );
    // Exactly at the limit is read.
    let at_limit = format!("t=1,v0={}", "a".repeat(MAX_HEADER_LEN - "t=1,v0=".len()));
    assert_eq!(
        SignatureHeader::parse(&at_limit).map(|h| h.timestamp()),
        Ok(1)
    );
}

#[test]
fn parse_reads_bytes_that_are_not_utf8() {
    let h = SignatureHeader::parse(&b"t=5,\xff\xfe=\x80,v1=\xc3\xa9"[..])
        .expect("unknown keys are ignored");
    assert_eq!((h.timestamp(), h.signatures().len()), (5, 0));
    assert_eq!(
        SignatureHeader::parse(&b"t=\xff"[..]),
        Err(SignatureError::Malformed(HeaderDefect::BadTimestamp))
    );
}

#[test]
fn secrets_do_not_leak_through_debug_or_errors() {
    let s = secret("whsec_super_secret_value");
    let shown = format!("{s:?} {:?}", vec![s.clone()]);
    assert!(!shown.contains("super_secret"), "{shown}");
    let err = check("t=1,v1=00", b"", &[s], 1, 300).expect_err("no match");
    assert!(!format!("{err} {err:?}").contains("super_secret"));
}

#[test]
fn secret_lists_and_blank_secrets() {
    assert_eq!(
        WebhookSecret::parse_list("a,b , ,c").map(|v| v.len()),
        Ok(3)
    );
    assert!(WebhookSecret::parse_list("").is_err());
    assert!(WebhookSecret::new("").is_err());
    // A secret is used verbatim, prefix included.
    let with = sign(&secret("whsec_abc"), at(1), b"");
    let without = sign(&secret("abc"), at(1), b"");
    assert_ne!(with, without);
}

#[test]
fn error_kinds_are_distinct_and_convert_into_the_crate_error() {
    let errors = [
        SignatureError::Missing,
        SignatureError::Malformed(HeaderDefect::TooLong),
        SignatureError::TimestampOutsideTolerance { signed_at: at(0) },
        SignatureError::NoMatchingSignature,
    ];
    let kinds: std::collections::BTreeSet<_> = errors.iter().map(SignatureError::kind).collect();
    assert_eq!(kinds.len(), errors.len());
    let e: Error = SignatureError::NoMatchingSignature.into();
    assert_eq!(e, Error::BadSignature(SignatureError::NoMatchingSignature));
    assert!(!e.is_transient());
}

#[test]
fn display_is_the_canonical_header() {
    let raw = format!(" v1 = {} , t = 0042 , v0=x", "ab".repeat(32));
    let h = SignatureHeader::parse(&raw).expect("parses");
    assert_eq!(h.to_string(), format!("t=42,v1={}", "ab".repeat(32)));
    assert_eq!(SignatureHeader::parse(&h.to_string()), Ok(h));
}

// ---------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------

/// Realistic signing instants: 2001..2286 (10-digit Unix seconds).
fn unix_seconds() -> impl Strategy<Value = i64> {
    1_000_000_000_i64..9_999_999_999
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// sign -> verify round-trips for any secret, body and instant.
    #[test]
    fn sign_then_verify_round_trips(key in "[ -~]{1,40}", body in proptest::collection::vec(any::<u8>(), 0..300), t in unix_seconds(), skew in -300_i64..=300) {
        prop_assume!(!key.trim().is_empty());
        let s = secret(&key);
        let header = sign(&s, at(t), &body);
        let ok = verify(Some(&header), &body, &[s], at(t + skew), DEFAULT_TOLERANCE);
        prop_assert_eq!(ok, Ok(VerifiedSignature { signed_at: at(t), secret_index: 0 }));
    }

    /// Any single-byte change of the body is refused.
    #[test]
    fn changed_body_is_refused(body in proptest::collection::vec(any::<u8>(), 1..200), index in any::<prop::sample::Index>(), flip in 1_u8..=255, t in unix_seconds()) {
        let s = secret("whsec_prop");
        let header = sign(&s, at(t), &body);
        let mut changed = body.clone();
        let i = index.index(changed.len());
        changed[i] ^= flip;
        prop_assert_eq!(verify(Some(&header), &changed, &[s], at(t), DEFAULT_TOLERANCE), Err(SignatureError::NoMatchingSignature));
    }

    /// Any single-byte change inside the `t` value or the `v1` value is refused (the header
    /// may then be malformed or simply not match, but it never verifies).
    #[test]
    fn changed_header_byte_is_refused(body in proptest::collection::vec(any::<u8>(), 0..100), t in unix_seconds(), index in any::<prop::sample::Index>(), replacement in any::<u8>()) {
        let s = secret("whsec_prop");
        let header = sign(&s, at(t), &body).into_bytes();
        // Value bytes: after "t=" up to the comma, and after ",v1=".
        let comma = header.iter().position(|&b| b == b',').expect("t=…,v1=…");
        let positions: Vec<usize> = (2..comma).chain(comma + 4..header.len()).collect();
        let i = positions[index.index(positions.len())];
        prop_assume!(header[i] != replacement);
        let mut changed = header.clone();
        changed[i] = replacement;
        // A replaced leading digit that becomes '0' or white space still names another instant,
        // so every change is a different (t, signature) pair.
        prop_assert!(verify(Some(&changed[..]), &body, &[s], at(t), Duration::MAX).is_err());
    }

    /// The parser never panics, and whatever it accepts re-renders to a header it reads back
    /// the same way.
    #[test]
    fn parser_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(h) = SignatureHeader::parse(&raw[..]) {
            prop_assert_eq!(SignatureHeader::parse(&h.to_string()), Ok(h));
        }
    }

    /// The same on header-like strings, which reach far more of the grammar than random bytes.
    #[test]
    fn parser_never_panics_on_header_like_text(raw in "((t|v1|v0| t|x)?(=| = |==)?[0-9a-f ]{0,70},?){0,6}") {
        let _ = verify(Some(&raw), b"{}", &[secret("whsec_prop")], at(1_700_000_000), DEFAULT_TOLERANCE);
        if let Ok(h) = SignatureHeader::parse(&raw) {
            prop_assert_eq!(SignatureHeader::parse(&h.to_string()), Ok(h));
        }
    }
}
